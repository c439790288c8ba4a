# shellcheck shell=bash
# Shared helpers for the ci/ scripts. Source it; do not execute it.
#
#   ensure_docker          - make sure a Docker daemon answers (installing and
#                            starting one if needed) and that the tools the
#                            integration tests need (skopeo, umoci,
#                            docker-registry)
#                            are installed.
#   ensure_registry_image  - export IMAGE_MIGRATOR_TEST_REGISTRY, the image the
#                            tests start registries from: registry:2 when it is
#                            present or pullable, else a local image built from
#                            Debian's docker-registry (distribution 2.8.2).

# The image a locally built test registry gets.
IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE="${IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE:-image-migrator/test-registry:2.8.2}"

ci_log() { printf '[ci] %s\n' "$*" >&2; }

# Run a command as root (directly, or through sudo when available).
ci_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        ci_log "need root to run: $*"
        return 1
    fi
}

_ci_apt_updated=0
# ci_apt_install PKG... - install Debian packages non-interactively.
ci_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        ci_log "apt-get not found; cannot install: $*"
        return 1
    fi
    if [ "$_ci_apt_updated" -eq 0 ]; then
        ci_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _ci_apt_updated=1
    fi
    ci_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"
}

# ci_ensure_command CMD PACKAGE - install PACKAGE when CMD is missing.
ci_ensure_command() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1; then
        ci_log "$cmd not found; installing Debian package $pkg"
        ci_apt_install "$pkg"
    fi
    command -v "$cmd" >/dev/null 2>&1 || {
        ci_log "$cmd still missing after installing $pkg"
        return 1
    }
}

ensure_docker() {
    if ! docker info >/dev/null 2>&1; then
        if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
            ci_log "docker not installed; installing docker.io"
            ci_apt_install docker.io
        fi
        if ! docker info >/dev/null 2>&1; then
            local log=/tmp/image-migrator-dockerd.log
            ci_log "starting dockerd (log: $log)"
            # setsid: dockerd must outlive this script's process group.
            ci_as_root setsid dockerd >"$log" 2>&1 </dev/null &
            local i
            for i in $(seq 1 60); do
                if docker info >/dev/null 2>&1; then
                    break
                fi
                sleep 1
            done
            if ! docker info >/dev/null 2>&1; then
                ci_log "dockerd did not answer within 60 s; last log lines:"
                tail -n 30 "$log" >&2 || true
                return 1
            fi
            ci_log "dockerd is up after ${i}s"
        fi
    fi
    # skopeo: the tests use it as an independent client for interop checks,
    # and they fail (rather than skip) when it is missing.
    ci_ensure_command skopeo skopeo
    # umoci: a second reader of the OCI layouts `export` writes (airgap_interop).
    ci_ensure_command umoci umoci
    # docker-registry: the binary the local test-registry image is built from
    # (only needed when registry:2 cannot be pulled; that path fails loudly).
    ci_ensure_command docker-registry docker-registry ||
        ci_log "warning: docker-registry unavailable; registry:2 must be pullable"
}

# Build $IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE from Debian's docker-registry,
# with the same interface as registry:2 (entrypoint, config path, port,
# volume), so REGISTRY_* environment overrides work the same way.
_ci_build_local_registry_image() {
    local image=$IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE
    ci_ensure_command docker-registry docker-registry
    local bin
    bin=$(command -v docker-registry)
    bin=$(readlink -f "$bin")

    local ctx
    ctx=$(mktemp -d /tmp/image-migrator-registry-ctx.XXXXXX)
    mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/docker/registry" \
        "$ctx/rootfs/var/lib/registry" "$ctx/rootfs/tmp"
    chmod 1777 "$ctx/rootfs/tmp"
    cp "$bin" "$ctx/rootfs/usr/bin/docker-registry"

    # Copy every shared object ldd names, at the path the loader expects.
    local lib
    while read -r lib; do
        [ -n "$lib" ] || continue
        mkdir -p "$ctx/rootfs$(dirname "$lib")"
        cp -L "$lib" "$ctx/rootfs$lib"
    done < <(ldd "$bin" | grep -oE '/[^ ]+' | sort -u)

    # registry:2's default configuration, plus delete enabled.
    cat >"$ctx/rootfs/etc/docker/registry/config.yml" <<'EOF'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF

    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
EXPOSE 5000
VOLUME /var/lib/registry
ENTRYPOINT ["/usr/bin/docker-registry", "serve"]
CMD ["/etc/docker/registry/config.yml"]
EOF

    ci_log "building $image from $bin ($(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo '?'))"
    # The classic builder needs no BuildKit and no network for FROM scratch.
    local rc=0
    DOCKER_BUILDKIT=0 docker build -q -t "$image" \
        --label org.opencontainers.image.description="Debian docker-registry packaged like registry:2, for image-migrator tests" \
        "$ctx" >/dev/null || rc=$?
    rm -rf "$ctx"
    return "$rc"
}

ensure_registry_image() {
    local wanted=${IMAGE_MIGRATOR_TEST_REGISTRY:-registry:2}
    if docker image inspect "$wanted" >/dev/null 2>&1; then
        ci_log "test registry image: $wanted (present locally)"
        export IMAGE_MIGRATOR_TEST_REGISTRY=$wanted
        return 0
    fi
    if [ "$wanted" != "$IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE" ]; then
        ci_log "pulling $wanted"
        if timeout 60 docker pull -q "$wanted" >/dev/null 2>&1; then
            ci_log "test registry image: $wanted (pulled)"
            export IMAGE_MIGRATOR_TEST_REGISTRY=$wanted
            return 0
        fi
        ci_log "could not pull $wanted; falling back to $IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE"
    fi
    if ! docker image inspect "$IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE" >/dev/null 2>&1; then
        _ci_build_local_registry_image
    fi
    ci_log "test registry image: $IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE (local build)"
    export IMAGE_MIGRATOR_TEST_REGISTRY=$IMAGE_MIGRATOR_LOCAL_REGISTRY_IMAGE
}
