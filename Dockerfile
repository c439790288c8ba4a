# image-migrator as a container image: for GitHub container actions, GitLab CI jobs
# (`image:` with `entrypoint: [""]`) and plain `docker run`.
#
# Both bases are build arguments so a machine that cannot pull them can pass local ones
# (ci/image does); the defaults are the official images. VERSION, REVISION (the full
# commit id) and SOURCE become OCI labels, and REVISION the commit `--version` names (the
# build context has no .git); ci/image and the release workflow pass all three.
ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# Dependencies first, in a layer of their own, so source edits rebuild only the crate.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/image-migrator-* target/release/deps/image_migrator-* target/release/deps/libimage_migrator-*
COPY build.rs ./
COPY src ./src
ARG REVISION=""
RUN IMAGE_MIGRATOR_COMMIT="$REVISION" cargo build --release --locked \
 && install -m 0755 target/release/image-migrator /usr/local/bin/image-migrator \
 && /usr/local/bin/image-migrator --version

FROM ${RUNTIME_IMAGE}
# CA roots for HTTPS registries; /bin/sh comes with the base (GitLab runs `sh -c`).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/local/bin/image-migrator /usr/local/bin/image-migrator
COPY action/entrypoint.sh /usr/local/bin/image-migrator-action
ENV SSL_CERT_DIR=/etc/ssl/certs
ARG VERSION=""
ARG REVISION=""
ARG SOURCE="https://github.com/image-migrator/image-migrator"
LABEL org.opencontainers.image.title="image-migrator" \
      org.opencontainers.image.description="Migrate container images between registries from CI pipelines" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
ENTRYPOINT ["/usr/local/bin/image-migrator"]
