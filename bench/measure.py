"""What is measured: the streaming limit (bare reads, writes and source→target streams
of every blob) and the tools (skopeo sync, image-migrator) run under /usr/bin/time."""

import hashlib
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from corpus import DOCKER_MANIFEST, corpus_spec, push_blob, push_bytes
from registries import CHUNK, NS, TLS, conn, probe, reset_conns, with_digest



def limit_read(port, blobs, n):
    def one(item):
        d, (key, size, repo) = item
        c = conn(port)
        r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"User-Agent": "bench-limit"})
        buf = bytearray(CHUNK)
        got = 0
        while True:
            k = r.readinto(buf)
            if not k:
                break
            got += k
        assert r.status == 200 and got == size, (r.status, got, size)

    run_pool(one, blobs, n)


def limit_write(port, blobs, n):
    def one(item):
        d, (key, size, repo) = item
        push_any(port, repo, d, key, size)

    run_pool(one, blobs, n)


def push_any(port, repo, d, key, size):
    if "/config-" in key:
        # Config blobs are JSON the seeder built; the write limit sends random bytes of the
        # same size under a digest of their own (same request pattern, same byte count).
        data = hashlib.sha256(key.encode()).digest() * (size // 32 + 1)
        data = data[:size]
        push_bytes(port, repo, data, "sha256:" + hashlib.sha256(data).hexdigest())
    else:
        push_blob(port, repo, key, size, d)


def limit_stream(src_port, dst_port, blobs, n):
    def one(item):
        d, (key, size, repo) = item
        s = conn(src_port)
        t = conn(dst_port)
        r, _ = t.simple("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        loc = r.getheader("Location")
        g = s.request("GET", f"/v2/{repo}/blobs/{d}", headers={"User-Agent": "bench-limit"})
        assert g.status == 200

        def body():
            buf = bytearray(CHUNK)
            mv = memoryview(buf)
            while True:
                k = g.readinto(buf)
                if not k:
                    return
                yield mv[:k]

        t.simple(
            "PUT",
            with_digest(loc, d),
            body=body(),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream", "User-Agent": "bench-limit"},
            ok=(201,),
        )

    run_pool(one, blobs, n)


def run_pool(fn, blobs, n):
    # Largest first, so the longest stream does not start last.
    items = sorted(blobs.items(), key=lambda kv: -kv[1][1])
    with ThreadPoolExecutor(n) as ex:
        for f in [ex.submit(fn, it) for it in items]:
            f.result()
    reset_conns()


# --------------------------------------------------------------------------- tools


def timed(cmd, cwd, env=None, rss_file=None):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak RSS KiB, exit code).
    Also samples the tool's threads and open file descriptors every 0.2 s (timed.growth:
    the maximum in the first and in the second half of the run)."""
    rss_file = rss_file or os.path.join(cwd, "time.txt")
    t0 = time.monotonic()
    with open(os.path.join(cwd, "stdout.txt"), "w") as out, open(os.path.join(cwd, "stderr.txt"), "w") as err:
        p = subprocess.Popen(["/usr/bin/time", "-v", "-o", rss_file] + cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        samples = []

        def sample():
            while p.poll() is None:
                s = sample_threads_fds(p.pid)
                if s:
                    samples.append((time.monotonic() - t0, *s))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        p.wait()
    wall = time.monotonic() - t0
    sampler.join()
    rss = 0
    cpu = 0.0
    with open(rss_file) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1])
            if "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.split(":")[1])
    timed.cpu = cpu
    first = [s for s in samples if s[0] < wall / 2]
    second = [s for s in samples if s[0] >= wall / 2]
    timed.growth = None
    if first and second:
        timed.growth = dict(
            threads=(max(s[1] for s in first), max(s[1] for s in second)),
            fds=(max(s[2] for s in first), max(s[2] for s in second)),
        )
    return wall, rss, p.returncode


def sample_threads_fds(time_pid):
    """(threads, open fds) of the deepest descendant of /usr/bin/time (the tool)."""
    pid = time_pid
    for _ in range(4):
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            return None
        if not kids:
            break
        pid = kids[0]
    if pid == time_pid:
        return None
    try:
        threads = int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("Threads:")).split()[1])
        return threads, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


def repos_of(small):
    return [r["name"] for r in corpus_spec(small)]


def skopeo_files(work, repos, src_port):
    """skopeo's sync.yaml: every tag of each repository (TLS verified with the bench CA)."""
    os.makedirs(work, exist_ok=True)
    if TLS["context"]:
        lines = [f"127.0.0.1:{src_port}:", "  tls-verify: true", f"  cert-dir: {TLS['ca_dir']}", "  images:"]
    else:
        lines = [f"127.0.0.1:{src_port}:", "  tls-verify: false", "  images:"]
    lines += [f"    {name}: []" for name in repos]
    with open(os.path.join(work, "sync.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def skopeo_cmd(work, dst_port, cache_dir):
    # skopeo keeps a blob-info cache (known locations → mount candidates) in
    # /var/lib/containers/cache; each skopeo series gets a private, initially empty one
    # (bind-mounted in a private mount namespace), reused by its no-op/changed runs.
    os.makedirs(cache_dir, exist_ok=True)
    dest_tls = f"--dest-cert-dir {TLS['ca_dir']}" if TLS["context"] else "--dest-tls-verify=false"
    inner = (
        f"mount --bind {cache_dir} /var/lib/containers/cache && exec skopeo sync --all --preserve-digests "
        f"--src yaml --dest docker {dest_tls} {work}/sync.yaml 127.0.0.1:{dst_port}/{NS}"
    )
    return ["unshare", "-m", "sh", "-c", inner]


def ocync_files(work, repos, src_port, dst_port, immutable=False):
    """ocync's config.yaml (registries by URL, every tag of each repository; over TLS the
    bench CA comes from SSL_CERT_FILE, see ocync_env), its warm cache beside it as ocync
    keeps it; `immutable`: every tag trusted never to change (`immutable_tags: "*"`)."""
    os.makedirs(work, exist_ok=True)
    scheme = "https" if TLS["context"] else "http"
    lines = [
        "registries:",
        f'  source: {{ url: "{scheme}://127.0.0.1:{src_port}" }}',
        f'  target: {{ url: "{scheme}://127.0.0.1:{dst_port}" }}',
        "defaults:",
        "  source: source",
        "  targets: target",
        "  artifacts: { enabled: false }",
        "  tags: { glob: '*'" + (", immutable_tags: '*'" if immutable else "") + " }",
        "mappings:",
    ]
    lines += [f"  - {{ from: {name}, to: {name} }}" for name in repos]
    with open(os.path.join(work, "config.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def ocync_cmd(binary, work):
    return [binary, "sync", "-c", os.path.join(work, "config.yaml")]


def ocync_env():
    """ocync (reqwest with rustls' platform verifier) trusts the bench CA through SSL_CERT_FILE."""
    env = dict(os.environ)
    if TLS["context"]:
        env["SSL_CERT_FILE"] = TLS["ca"]
    return env


def im_files(work, repos, src_port, dst_port):
    """auth.json (insecure: plain HTTP; over TLS nothing: the CA goes to --ca-file) and
    images.json with one whole-repository rule per repository, in order."""
    os.makedirs(work, exist_ok=True)
    auth = {} if TLS["context"] else {f"127.0.0.1:{src_port}": {"insecure": True}, f"127.0.0.1:{dst_port}": {"insecure": True}}
    with open(os.path.join(work, "auth.json"), "w") as f:
        json.dump(auth, f, indent=2)
    rules = ",\n".join(f'  "127.0.0.1:{src_port}/{name}": "127.0.0.1:{dst_port}/{name}"' for name in repos)
    with open(os.path.join(work, "images.json"), "w") as f:
        f.write("{\n" + rules + "\n}\n")


def im_cmd(binary, work, proc=None, extra=()):
    cmd = [binary, "sync", "--report", os.path.join(work, "report.json"), *extra]
    if proc:
        cmd += ["--proc", str(proc)]
    if TLS["context"]:
        cmd += ["--ca-file", TLS["ca"]]
    return cmd


def skopeo_copy_cmd(work, src_port, dst_port, image, cache_dir, retry_times=0):
    """skopeo copy of one image, source to target, with a private, empty blob-info cache
    (as skopeo_cmd); `retry_times` is skopeo's --retry-times (its default: 0)."""
    os.makedirs(cache_dir, exist_ok=True)
    if TLS["context"]:
        tls = f"--src-cert-dir {TLS['ca_dir']} --dest-cert-dir {TLS['ca_dir']}"
    else:
        tls = "--src-tls-verify=false --dest-tls-verify=false"
    ref = f"{image['repo']}:{image['tag']}"
    inner = (
        f"mount --bind {cache_dir} /var/lib/containers/cache && exec skopeo copy --preserve-digests "
        f"--retry-times {retry_times} {tls} docker://127.0.0.1:{src_port}/{ref} docker://127.0.0.1:{dst_port}/{ref}"
    )
    return ["unshare", "-m", "sh", "-c", inner]


def copied_whole(port, image):
    """Whether the registry on `port` holds the image under its tag with the source's
    manifest digest and its layer at full size (the registry checked the layer's digest
    when it was uploaded)."""
    status, h = probe(port, "HEAD", f"/v2/{image['repo']}/manifests/{image['tag']}", {"Accept": DOCKER_MANIFEST})
    if status != 200 or h.get("docker-content-digest") != image["manifest"]:
        return False
    status, h = probe(port, "HEAD", f"/v2/{image['repo']}/blobs/{image['layer']}")
    return status == 200 and int(h.get("content-length", -1)) == image["size"]
