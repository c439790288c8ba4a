#!/usr/bin/env python3
"""image-migrator benchmark: two local registries on tmpfs, a synthetic corpus, and
side-by-side runs of the streaming limit, skopeo sync and image-migrator.

Run through bench/run (which builds the release binary first). Everything lives under
$BENCH_ROOT (default /dev/shm/image-migrator-bench); registries listen on 127.0.0.1 only.
Each measured phase restarts both registries with a fresh log file, so the request
counts of a phase are exactly the access-log lines of that phase (minus the bench's
own readiness probes, sent with User-Agent "bench-probe").
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

KIB = 1024
MIB = 1024 * KIB
CHUNK = 1 * MIB
PROBE_UA = "bench-probe"
NS = "bench"

# One random MiB; every chunk of every blob is this block with a 32-byte prefix unique to
# (blob, chunk index), so content is deterministic, incompressible and cheap to generate.
BLOCK = random.Random(1).randbytes(CHUNK)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- content


def chunks(key, size):
    """The content of blob `key`, in chunks of at most 1 MiB."""
    i = 0
    left = size
    while left > 0:
        n = min(CHUNK, left)
        prefix = hashlib.sha256(f"{key}/{i}".encode()).digest()
        chunk = prefix + BLOCK[32:]
        yield chunk[:n] if n < CHUNK else chunk
        left -= n
        i += 1


def digest_of(key, size):
    h = hashlib.sha256()
    for c in chunks(key, size):
        h.update(c)
    return "sha256:" + h.hexdigest()


def log_uniform(rng, lo, hi):
    import math

    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# --------------------------------------------------------------------------- corpus


def corpus_spec(small, revision=None):
    """Repositories → tags → images (each image: arch, layer keys+sizes). Deterministic.

    `revision` (a dict repo → set of tags) gives those tags a new top layer and config,
    as a rebuild would.
    """
    rng = random.Random(42)
    revision = revision or {}
    n_repos = 8 if small else 36
    n_tags = 3 if small else 5
    base = {
        "amd64": ("base-amd64", (6 if small else 48) * MIB),
        "arm64": ("base-arm64", (5 if small else 44) * MIB),
    }
    big = (
        {1: ("model-a", 24 * MIB)}
        if small
        else {3: ("model-a", 300 * MIB), 17: ("model-b", 200 * MIB)}
    )
    deps_hi = 8 * MIB if small else 64 * MIB
    app_hi = 2 * MIB if small else 8 * MIB
    kinds = ["docker", "oci", "docker", "oci-index", "docker", "oci", "docker-index"]
    repos = []
    for r in range(n_repos):
        name = f"{NS}/app-{r:02d}"
        kind = kinds[r % len(kinds)]
        archs = ["amd64", "arm64"] if kind.endswith("index") else ["amd64"]
        deps = {
            a: big.get(r) if a == "amd64" and r in big else (f"{name}/deps-{a}", log_uniform(rng, 1 * MIB, deps_hi))
            for a in archs
        }
        tags = {}
        for t in range(n_tags):
            tag = f"v1.{t}"
            rev = "r2" if tag in revision.get(name, ()) else "r1"
            images = []
            for a in archs:
                layers = [base[a], deps[a]]
                app_size = log_uniform(rng, 4 * KIB, app_hi)
                layers.append((f"{name}/{tag}/app-{a}/{rev}", app_size))
                n_small = rng.randint(0, 3)
                for s in range(n_small):
                    layers.append((f"{name}/{tag}/etc{s}-{a}", log_uniform(rng, 1 * KIB, 64 * KIB)))
                images.append({"arch": a, "layers": layers, "config_key": f"{name}/{tag}/config-{a}/{rev}"})
            tags[tag] = images
        repos.append({"name": name, "kind": kind, "tags": tags})
    return repos


def mutated_tags(small):
    """The tags the "changed" phase rebuilds: a few, across kinds."""
    if small:
        return {f"{NS}/app-00": {"v1.2"}, f"{NS}/app-03": {"v1.0"}}
    return {
        f"{NS}/app-00": {"v1.4"},
        f"{NS}/app-01": {"v1.0"},
        f"{NS}/app-03": {"v1.2"},
        f"{NS}/app-06": {"v1.1"},
        f"{NS}/app-10": {"v1.3"},
        f"{NS}/app-20": {"v1.4"},
    }


# --------------------------------------------------------------------------- HTTP


class Conn:
    """A keep-alive HTTP/1.1 connection to one registry (one per thread)."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method, url, body=None, headers=None):
        headers = dict(headers or {})
        headers.setdefault("User-Agent", "bench-seed")
        if body is None and method in ("PUT", "POST", "PATCH"):
            headers.setdefault("Content-Length", "0")
        self.c.request(method, url, body=body, headers=headers)
        return self.c.getresponse()

    def simple(self, method, url, body=None, headers=None, ok=(200, 201, 202)):
        r = self.request(method, url, body, headers)
        data = r.read()
        if r.status not in ok:
            raise RuntimeError(f"{method} {url}: {r.status} {data[:300]!r}")
        return r, data


def path_of(location):
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")


def with_digest(location, digest):
    p = path_of(location)
    return p + ("&" if "?" in p else "?") + "digest=" + digest


_local = threading.local()


def conn(port):
    key = f"c{port}"
    c = getattr(_local, key, None)
    if c is None:
        c = Conn(port)
        setattr(_local, key, c)
    return c


def push_blob(port, repo, key, size, digest):
    c = conn(port)
    r, _ = c.simple("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
    loc = r.getheader("Location")
    c.simple(
        "PUT",
        with_digest(loc, digest),
        body=chunks(key, size),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        ok=(201,),
    )


def push_bytes(port, repo, data, digest):
    c = conn(port)
    r, _ = c.simple("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
    c.simple(
        "PUT",
        with_digest(r.getheader("Location"), digest),
        body=data,
        headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
        ok=(201,),
    )


def mount_blob(port, repo, digest, frm):
    c = conn(port)
    r, _ = c.simple("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={frm}", ok=(201, 202))
    if r.status == 202:
        raise RuntimeError(f"mount of {digest} into {repo} refused")


def put_manifest(port, repo, ref, data, media_type):
    conn(port).simple(
        "PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": media_type}, ok=(201,)
    )


# --------------------------------------------------------------------------- seeding


def seed(port, small, root, revision=None, threads=4):
    """Pushes the corpus (or, with `revision`, the rebuilt tags) to the registry on `port`.
    Returns the unique-blob table {digest: (key, size, first_repo)}."""
    t0 = time.monotonic()
    spec = corpus_spec(small, revision)
    cache_path = os.path.join(root, "digests.json")
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}

    # Layer blobs: unique by key; first repository that uses each.
    layer_first = {}
    for repo in spec:
        for images in repo["tags"].values():
            for im in images:
                for key, size in im["layers"]:
                    layer_first.setdefault(key, (size, repo["name"]))

    def dig(key, size):
        return cache.get(f"{key}:{size}") or digest_of(key, size)

    with ThreadPoolExecutor(threads) as ex:
        digests = dict(zip(layer_first, ex.map(lambda k: dig(k, layer_first[k][0]), layer_first)))
    cache.update({f"{k}:{layer_first[k][0]}": d for k, d in digests.items()})
    with open(cache_path, "w") as f:
        json.dump(cache, f)

    # Which blobs exist where in the registry already (seed of a revision: most do).
    state_path = os.path.join(root, "seeded.json")
    present = {}
    if revision and os.path.exists(state_path):
        present = {k: set(v) for k, v in json.load(open(state_path)).items()}

    to_push = [(k, s, r) for k, (s, r) in layer_first.items() if digests[k] not in present]
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda a: push_blob(port, a[2], a[0], a[1], digests[a[0]]), to_push))
    for k, (s, r) in layer_first.items():
        present.setdefault(digests[k], set()).add(r)

    blobs = {digests[k]: (k, s, r) for k, (s, r) in layer_first.items()}

    lock = threading.Lock()  # guards `present`, shared by the repository threads

    def push_repo(repo):
        name = repo["name"]
        oci = repo["kind"].startswith("oci")
        pushed = 0
        for tag, images in repo["tags"].items():
            if revision is not None and tag not in revision.get(name, ()):
                continue
            children = []
            for im in images:
                layer_descs = []
                for key, size in im["layers"]:
                    d = digests[key]
                    with lock:
                        frm = None if name in present[d] else sorted(present[d])[0]
                    if frm is not None:
                        mount_blob(port, name, d, frm)
                        with lock:
                            present[d].add(name)
                    layer_descs.append({"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": size, "digest": d})
                config = json.dumps(
                    {
                        "architecture": im["arch"],
                        "os": "linux",
                        "config": {"Labels": {"bench.key": im["config_key"]}},
                        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layer_descs]},
                    },
                    sort_keys=True,
                ).encode()
                cdig = "sha256:" + hashlib.sha256(config).hexdigest()
                push_bytes(port, name, config, cdig)
                blobs[cdig] = (im["config_key"], len(config), name)
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config), "digest": cdig},
                    "layers": layer_descs,
                }
                mbytes = json.dumps(manifest, indent=3).encode()
                mdig = "sha256:" + hashlib.sha256(mbytes).hexdigest()
                mt = manifest["mediaType"]
                if repo["kind"].endswith("index"):
                    put_manifest(port, name, mdig, mbytes, mt)
                    children.append(
                        {"mediaType": mt, "size": len(mbytes), "digest": mdig, "platform": {"architecture": im["arch"], "os": "linux"}}
                    )
                else:
                    put_manifest(port, name, tag, mbytes, mt)
                pushed += 1
            if children:
                index = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST, "manifests": children}
                ibytes = json.dumps(index, indent=3).encode()
                put_manifest(port, name, tag, ibytes, index["mediaType"])
        return pushed

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(push_repo, spec))
    with open(state_path, "w") as f:
        json.dump({k: sorted(v) for k, v in present.items()}, f)
    # Config blobs of every revision ever seeded count as blobs of the corpus.
    blobs_path = os.path.join(root, "blobs.json")
    old = json.load(open(blobs_path)) if os.path.exists(blobs_path) else {}
    old.update({d: list(v) for d, v in blobs.items()})
    with open(blobs_path, "w") as f:
        json.dump(old, f)
    n_tags = sum(len(r["tags"]) for r in spec)
    total = sum(v[1] for v in blobs.values())
    if revision:
        log(f"rebuilt {sum(len(v) for v in revision.values())} tags ({len(to_push)} new layers) in {time.monotonic() - t0:.1f}s")
    else:
        log(
            f"seeded corpus: {len(spec)} repos, {n_tags} tags, "
            f"{len(blobs)} unique blobs, {total / MIB:.0f} MiB in {time.monotonic() - t0:.1f}s"
        )
    return blobs


def seed_many(port, repo, n, threads=4):
    """A repository with `n` tags, each its own small image (a shared 256 KiB layer and a
    config of its own), for the tag-scaling runs."""
    key, size = f"{repo}/layer", 256 * KIB
    d = digest_of(key, size)
    push_blob(port, repo, key, size, d)

    def one(i):
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"i": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": [d]}}).encode()
        cdig = "sha256:" + hashlib.sha256(config).hexdigest()
        push_bytes(port, repo, config, cdig)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                               "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": cdig},
                               "layers": [{"mediaType": DOCKER_LAYER, "size": size, "digest": d}]}).encode()
        put_manifest(port, repo, f"t{i:05d}", manifest, DOCKER_MANIFEST)

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, range(n)))
    _local.__dict__.clear()


def current_blobs(small, root):
    """Unique blobs referenced by the current source state {digest: (key, size, repo)}."""
    allb = json.load(open(os.path.join(root, "blobs.json")))
    digests = json.load(open(os.path.join(root, "digests.json")))
    rev_path = os.path.join(root, "revision.json")
    rev = json.load(open(rev_path)) if os.path.exists(rev_path) else None
    spec = corpus_spec(small, {k: set(v) for k, v in rev.items()} if rev else None)
    want = set()
    configs = set()
    for repo in spec:
        for images in repo["tags"].values():
            for im in images:
                want.update(digests[f"{k}:{s}"] for k, s in im["layers"])
                configs.add(im["config_key"])
    return {d: v for d, v in allb.items() if d in want or v[0] in configs}


# --------------------------------------------------------------------------- registries


class Registry:
    def __init__(self, root, name, port):
        self.root = root
        self.name = name
        self.port = port
        self.data = os.path.join(root, name, "data")
        self.config = os.path.join(root, name, "config.yml")
        self.proc = None
        self.logfile = None
        self.last_cpu = 0.0
        os.makedirs(os.path.join(root, name), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(
                f"""version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {self.data}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: image-migrator-bench
"""
            )

    def start(self, phase):
        assert self.proc is None
        self.logfile = os.path.join(self.root, "logs", f"{phase}.{self.name}.log")
        os.makedirs(os.path.dirname(self.logfile), exist_ok=True)
        out = open(self.logfile, "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v2/", headers={"User-Agent": PROBE_UA})
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"registry {self.name} did not start; see {self.logfile}")
            time.sleep(0.05)

    def cpu_seconds(self):
        """User+system CPU of the running registry process so far."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError):
            return 0.0

    def stop(self):
        if self.proc is not None:
            self.last_cpu = self.cpu_seconds()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def wipe(self):
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

    def snapshot(self, dest):
        self.stop()
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["cp", "-a", self.data, dest], check=True)

    def restore(self, src):
        self.wipe()
        subprocess.run(["cp", "-a", src, self.data], check=True)


ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"')


COMPLETED = re.compile(r'time="([^"]+)".*msg="response completed.*http.request.method=(\w+).*http.request.uri="([^"]+)".*http.response.duration=(\S+)')


def go_duration(v):
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(ns|µs|us|ms|s|m|h)", v):
        total += float(num) * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def go_time(v):
    # 2026-11-29T01:51:32.676135367Z → seconds (only differences matter)
    hms = v.split("T")[1].rstrip("Z")
    h, m, sec = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec[:12])


def blob_get_concurrency(path):
    """From the registry's info log (end time and duration of every request): mean number
    of blob GETs in flight between the first start and the last end, and the share of that
    span with none in flight."""
    spans = []
    with open(path, errors="replace") as f:
        for line in f:
            if "response completed" not in line:
                continue
            m = COMPLETED.search(line)
            if not m or m.group(2) != "GET" or "/blobs/sha256:" not in m.group(3):
                continue
            end = go_time(m.group(1))
            spans.append((end - go_duration(m.group(4)), end))
    if not spans:
        return None
    start = min(a for a, _ in spans)
    stop = max(b for _, b in spans)
    span = max(stop - start, 1e-9)
    busy = 0.0
    cur_a, cur_b = None, None
    for a, b in sorted(spans):
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                busy += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    busy += cur_b - cur_a
    mean = sum(b - a for a, b in spans) / span
    return f"GETs in flight: mean {mean:.1f}, none {100 * (1 - busy / span):.0f}% of {span:.1f}s"


def log_stats(path):
    s = dict(requests=0, blob_gets=0, blob_bytes=0, blob_heads=0, manifest_gets=0, manifest_heads=0,
             manifest_puts=0, mounts=0, mounted=0, uploads_started=0, blob_puts=0, patches=0, tag_lists=0, pings=0,
             errors=0, blob_get_digests={})
    if not path or not os.path.exists(path):
        return s
    with open(path, errors="replace") as f:
        for line in f:
            m = ACCESS.search(line)
            if not m:
                continue
            method, uri, status, size, ua = m.groups()
            if ua == PROBE_UA:
                continue
            status = int(status)
            size = 0 if size == "-" else int(size)
            s["requests"] += 1
            if status >= 400 and not (status == 404 and method == "HEAD") and status != 401:
                s["errors"] += 1
            path_ = uri.split("?")[0]
            if path_ == "/v2/":
                s["pings"] += 1
            elif "/blobs/uploads/" in path_:
                if method == "POST" and "mount=" in uri:
                    s["mounts"] += 1
                    s["mounted"] += status == 201
                elif method == "POST":
                    s["uploads_started"] += 1
                elif method == "PUT":
                    s["blob_puts"] += 1
                elif method == "PATCH":
                    s["patches"] += 1
            elif "/blobs/" in path_:
                if method == "GET":
                    s["blob_gets"] += 1
                    s["blob_bytes"] += size
                    d = path_.rsplit("/", 1)[1]
                    s["blob_get_digests"][d] = s["blob_get_digests"].get(d, 0) + 1
                elif method == "HEAD":
                    s["blob_heads"] += 1
            elif "/manifests/" in path_:
                if method == "GET":
                    s["manifest_gets"] += 1
                elif method == "HEAD":
                    s["manifest_heads"] += 1
                elif method == "PUT":
                    s["manifest_puts"] += 1
            elif path_.endswith("/tags/list"):
                s["tag_lists"] += 1
    return s


# --------------------------------------------------------------------------- limit


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
    _local.__dict__.clear()


# --------------------------------------------------------------------------- tools


def timed(cmd, cwd, env=None, rss_file=None):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak RSS KiB, exit code)."""
    rss_file = rss_file or os.path.join(cwd, "time.txt")
    t0 = time.monotonic()
    with open(os.path.join(cwd, "stdout.txt"), "w") as out, open(os.path.join(cwd, "stderr.txt"), "w") as err:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", rss_file] + cmd, cwd=cwd, env=env, stdout=out, stderr=err)
    wall = time.monotonic() - t0
    rss = 0
    cpu = 0.0
    with open(rss_file) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1])
            if "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.split(":")[1])
    timed.cpu = cpu
    return wall, rss, p.returncode


def repos_of(small):
    return [r["name"] for r in corpus_spec(small)]


def skopeo_files(work, small, src_port):
    os.makedirs(work, exist_ok=True)
    lines = [f"127.0.0.1:{src_port}:", "  tls-verify: false", "  images:"]
    lines += [f"    {name}: []" for name in repos_of(small)]
    with open(os.path.join(work, "sync.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def skopeo_cmd(work, dst_port, cache_dir):
    # skopeo keeps a blob-info cache (known locations → mount candidates) in
    # /var/lib/containers/cache; each skopeo series gets a private, initially empty one
    # (bind-mounted in a private mount namespace), reused by its no-op/changed runs.
    os.makedirs(cache_dir, exist_ok=True)
    inner = (
        f"mount --bind {cache_dir} /var/lib/containers/cache && exec skopeo sync --all --preserve-digests "
        f"--src yaml --dest docker --dest-tls-verify=false {work}/sync.yaml 127.0.0.1:{dst_port}/{NS}"
    )
    return ["unshare", "-m", "sh", "-c", inner]


def im_files(work, small, src_port, dst_port):
    os.makedirs(work, exist_ok=True)
    auth = {f"127.0.0.1:{src_port}": {"insecure": True}, f"127.0.0.1:{dst_port}": {"insecure": True}}
    with open(os.path.join(work, "auth.json"), "w") as f:
        json.dump(auth, f, indent=2)
    # One whole-repository rule per repository; the key order is the file order.
    rules = ",\n".join(
        f'  "127.0.0.1:{src_port}/{name}": "127.0.0.1:{dst_port}/{name}"' for name in repos_of(small)
    )
    with open(os.path.join(work, "images.json"), "w") as f:
        f.write("{\n" + rules + "\n}\n")


# --------------------------------------------------------------------------- main


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = args.root
        self.small = args.small
        self.src = Registry(self.root, "source", args.port)
        self.dst = Registry(self.root, "target", args.port + 1)
        self.rows = []
        self.binary = args.binary

    def phase(self, name):
        """Fresh registry processes (fresh logs, cold in-memory caches) for a phase."""
        self.src.stop()
        self.dst.stop()
        self.src.start(name)
        self.dst.start(name)

    def record(self, phase, tool, wall, rss_kib=None, rc=0, note="", tags=None, cpu=None):
        self.src.stop()
        self.dst.stop()
        reg_cpu = (self.src.last_cpu, self.dst.last_cpu)
        s = log_stats(self.src.logfile)
        t = log_stats(self.dst.logfile)
        dup = sum(v - 1 for v in s["blob_get_digests"].values() if v > 1)
        conc = blob_get_concurrency(self.src.logfile) if s["blob_gets"] else None
        if conc:
            note = f"{note} {conc}".strip()
        row = dict(
            phase=phase, tool=tool, wall=wall, rss_mib=(rss_kib / 1024 if rss_kib else None), rc=rc, note=note,
            src=s, dst=t, dup_blob_gets=dup, cpu=cpu, reg_cpu=reg_cpu, load=open("/proc/loadavg").read().split()[:3], tags=tags,
        )
        row["src"].pop("blob_get_digests")
        row["dst"].pop("blob_get_digests")
        self.rows.append(row)
        log(
            f"{phase:<22} {tool:<28} {wall:7.2f}s rss={row['rss_mib'] or 0:6.1f}MiB rc={rc} "
            f"src_req={s['requests']} dst_req={t['requests']} blobGET={s['blob_gets']} dup={dup} "
            f"bytes={s['blob_bytes'] / MIB:.0f}MiB mounts={t['mounted']}/{t['mounts']} load={row['load'][0]} "
            f"cpu tool={cpu or 0:.1f}s registries={reg_cpu[0]:.1f}+{reg_cpu[1]:.1f}s {note}"
        )
        with open(os.path.join(self.root, "rows.json"), "w") as f:
            json.dump(self.rows, f, indent=1)
        return row

    @staticmethod
    def self_cpu():
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def run_limit(self, blobs, n):
        total = sum(v[1] for v in blobs.values()) / MIB
        self.dst.wipe()
        self.phase("limit-read")
        t0, c0 = time.monotonic(), self.self_cpu()
        limit_read(self.src.port, blobs, n)
        self.record("limit", f"read source → /dev/null ×{n}", time.monotonic() - t0, note=f"{total:.0f} MiB", cpu=self.self_cpu() - c0)
        self.dst.wipe()
        self.phase("limit-write")
        t0, c0 = time.monotonic(), self.self_cpu()
        limit_write(self.dst.port, blobs, n)
        self.record("limit", f"write → empty target ×{n}", time.monotonic() - t0, note=f"{total:.0f} MiB", cpu=self.self_cpu() - c0)
        self.dst.wipe()
        self.phase("limit-stream")
        t0, c0 = time.monotonic(), self.self_cpu()
        limit_stream(self.src.port, self.dst.port, blobs, n)
        self.record("limit", f"stream source→target ×{n}", time.monotonic() - t0, note=f"{total:.0f} MiB", cpu=self.self_cpu() - c0)

    def run_skopeo(self, phase, work, fresh_cache, tags=None):
        cache = os.path.join(work, "cache")
        if fresh_cache:
            shutil.rmtree(cache, ignore_errors=True)
        self.phase(f"{phase}-skopeo")
        wall, rss, rc = timed(skopeo_cmd(work, self.dst.port, cache), work)
        return self.record(phase, "skopeo sync", wall, rss, rc, cpu=timed.cpu, tags=tags)

    def run_im(self, phase, work, proc=None, label=None, tags=None):
        self.phase(f"{phase}-im{proc or ''}")
        cmd = [self.binary, "sync", "--report", os.path.join(work, "report.json")]
        if proc:
            cmd += ["--proc", str(proc)]
        wall, rss, rc = timed(cmd, work)
        note = ""
        try:
            summary = json.load(open(os.path.join(work, "report.json")))["summary"]
            note += (
                f"copied={summary['copied']} unchanged={summary['unchanged']} failed={summary['failed']} "
                f"blobs={summary['blobs_transferred']} mounted={summary['blobs_mounted']} present={summary['blobs_skipped']}"
            )
        except Exception as e:  # noqa: BLE001
            note += f"no report: {e}"
        return self.record(phase, label or "image-migrator", wall, rss, rc, note, cpu=timed.cpu, tags=tags)

    def scale_runs(self, a):
        """Cost against the number of tags: one repository of N small images per N."""
        for n in a.scale:
            repo = f"{NS}/many-{n}"
            work = os.path.join(self.root, "work", f"many-{n}")
            os.makedirs(work, exist_ok=True)
            with open(os.path.join(work, "auth.json"), "w") as f:
                json.dump({f"127.0.0.1:{self.src.port}": {"insecure": True}, f"127.0.0.1:{self.dst.port}": {"insecure": True}}, f)
            with open(os.path.join(work, "images.json"), "w") as f:
                json.dump({f"127.0.0.1:{self.src.port}/{repo}": f"127.0.0.1:{self.dst.port}/{repo}"}, f)
            self.phase(f"seed-many-{n}")
            t0 = time.monotonic()
            seed_many(self.src.port, repo, n)
            log(f"seeded {repo}: {n} tags in {time.monotonic() - t0:.1f}s")
            self.run_im(f"{n} tags: cold", work, tags=n)
            self.run_im(f"{n} tags: no-op", work, tags=n)
            if not a.skip_skopeo:
                with open(os.path.join(work, "sync.yaml"), "w") as f:
                    f.write(f"127.0.0.1:{self.src.port}:\n  tls-verify: false\n  images:\n    {repo}: []\n")
                self.run_skopeo(f"{n} tags: no-op", work, fresh_cache=True, tags=n)

    def main(self):
        a = self.args
        os.makedirs(self.root, exist_ok=True)
        for f in ("seeded.json", "blobs.json", "revision.json", "rows.json"):
            p = os.path.join(self.root, f)
            if os.path.exists(p) and not a.reuse_source:
                os.remove(p)
        self.dst.wipe()
        t0 = time.monotonic()
        if not a.reuse_source:
            self.src.wipe()
            self.phase("seed")
            seed(self.src.port, self.small, self.root)
        seed_s = time.monotonic() - t0
        blobs = current_blobs(self.small, self.root)
        n_tags = sum(len(r["tags"]) for r in corpus_spec(self.small))
        self.corpus = dict(
            repos=len(corpus_spec(self.small)), tags=n_tags, blobs=len(blobs),
            bytes=sum(v[1] for v in blobs.values()), seed_s=seed_s,
            largest=max(v[1] for v in blobs.values()), smallest=min(v[1] for v in blobs.values()),
        )
        log(f"corpus: {self.corpus}")

        skw = os.path.join(self.root, "work", "skopeo")
        imw = os.path.join(self.root, "work", "im")
        skopeo_files(skw, self.small, self.src.port)
        im_files(imw, self.small, self.src.port, self.dst.port)
        snap = os.path.join(self.root, "target-after-cold")

        for rep in range(a.repeat):
            if not a.skip_limit:
                for n in a.streams:
                    self.run_limit(blobs, n)
            if not a.skip_skopeo:
                self.dst.wipe()
                self.run_skopeo("cold", skw, fresh_cache=True)
                self.run_skopeo("no-op", skw, fresh_cache=False)
            self.dst.wipe()
            self.run_im("cold", imw)
            self.run_im("no-op", imw)
        self.dst.snapshot(snap)

        for p in a.procs:
            self.dst.wipe()
            self.run_im("cold --proc sweep", imw, proc=p, label=f"image-migrator --proc {p}")

        self.scale_runs(a)
        if a.skip_changed:
            self.changed = 0
            write_results(self, a)
            return
        # Rebuild a few tags in the source, then sync from the post-cold target state.
        rev = mutated_tags(self.small)
        with open(os.path.join(self.root, "revision.json"), "w") as f:
            json.dump({k: sorted(v) for k, v in rev.items()}, f)
        self.phase("mutate")
        seed(self.src.port, self.small, self.root, revision=rev)
        self.changed = sum(len(v) for v in rev.values())
        if not a.skip_skopeo:
            self.dst.restore(snap)
            self.run_skopeo("changed", skw, fresh_cache=False)
        self.dst.restore(snap)
        self.run_im("changed", imw)
        self.src.stop()
        self.dst.stop()
        write_results(self, a)


# --------------------------------------------------------------------------- results


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def targets(b):
    """The issue's targets, checked against this run's rows (first row of each kind)."""

    def row(phase, tool):
        # With --repeat, the fastest run of each kind (the least disturbed by other load).
        rows = [r for r in b.rows if r["phase"] == phase and r["tool"] == tool]
        return min(rows, key=lambda r: r["wall"]) if rows else None

    lims = [r for r in b.rows if r["phase"] == "limit" and r["tool"].startswith("stream")]
    lim = min(lims, key=lambda r: r["wall"]) if lims else None
    im = {p: row(p, "image-migrator") for p in ("cold", "no-op", "changed")}
    sk = {p: row(p, "skopeo sync") for p in ("cold", "no-op", "changed")}
    out = ["", "### Against the targets", "", "(Fastest run of each kind when a kind ran more than once.)", ""]

    def ratio(a, b_):
        return f"{a['wall'] / b_['wall']:.2f}×" if a and b_ else "n/a"

    def mark(ok):
        return "met" if ok else "**not met**"

    if im["cold"] and lim:
        x = im["cold"]["wall"] / lim["wall"]
        out.append(f"- cold sync vs streaming limit: {im['cold']['wall']:.1f}s / {lim['wall']:.1f}s = {x:.2f}× (target ≤ 1.5×: {mark(x <= 1.5)})")
    for p, cap in (("cold", 1 / 3), ("no-op", 1 / 4)):
        if im[p] and sk[p]:
            x = im[p]["wall"] / sk[p]["wall"]
            out.append(f"- {p} sync vs skopeo: {im[p]['wall']:.2f}s / {sk[p]['wall']:.2f}s = {x:.2f}× (target ≤ {cap:.2f}×: {mark(x <= cap)})")
    if im["changed"] and sk["changed"]:
        out.append(f"- changed tags vs skopeo: {im['changed']['wall']:.2f}s / {sk['changed']['wall']:.2f}s = {ratio(im['changed'], sk['changed'])}")
    ims = [r for r in b.rows if r["tool"].startswith("image-migrator")]
    if ims:
        cold_like = [r for r in ims if r["phase"].startswith("cold")]
        dups = max(r["dup_blob_gets"] for r in ims)
        gets = [r["src"]["blob_gets"] for r in cold_like]
        out.append(
            f"- source blob GETs in cold runs: {sorted(set(gets))} for {b.corpus['blobs']} unique blobs; duplicate GETs in any run: {dups} "
            f"(target: equal, none: {mark(dups == 0 and all(g == b.corpus['blobs'] for g in gets))})"
        )
        rss = max(r["rss_mib"] or 0 for r in ims)
        out.append(f"- peak RSS of image-migrator over all runs: {rss:.1f} MiB with a {b.corpus['largest'] / MIB:.0f} MiB layer (target < 64 MiB: {mark(rss < 64)})")
        if im["no-op"]:
            req = im["no-op"]["src"]["requests"] + im["no-op"]["dst"]["requests"]
            out.append(
                f"- no-op requests: {req} for {b.corpus['tags']} tags in {b.corpus['repos']} repositories "
                f"({req / b.corpus['tags']:.2f}/tag: one HEAD per tag on each side, plus one tag list per repository and the pings)"
            )
    return out


def write_results(b, a):
    out = a.results
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
    c = b.corpus
    lines = [
        "# image-migrator benchmark results",
        "",
        f"Generated by `{a.command}` at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "",
        "## Machine",
        "",
        f"- CPU: {sh('nproc')} × {cpu}; memory {mem}; kernel {platform.release()}",
        f"- load average at start / end of the run: {a.load_start} / {open('/proc/loadavg').read().split()[:3]}"
        " (the machine is shared with other engineers' builds and tests: timings are noisy)",
        f"- {sh(b.binary + ' --version')} (release build); {sh('skopeo --version')}; "
        f"{sh('docker-registry --version')}; Python {platform.python_version()}",
        "- registries: two `docker-registry serve` processes on 127.0.0.1, storage on tmpfs "
        f"({b.root}), restarted before every measured run (fresh log, cold in-memory cache)",
        "",
        "## Corpus",
        "",
        f"{c['repos']} repositories, {c['tags']} tags, {c['blobs']} unique blobs, "
        f"{c['bytes'] / MIB:.0f} MiB of unique blob data (largest {c['largest'] / MIB:.0f} MiB, smallest "
        f"{c['smallest']} B); one base layer per architecture shared by every image; Docker v2s2 and OCI "
        f"manifests, Docker manifest lists and OCI indexes (amd64+arm64). Seeded in {c['seed_s']:.1f}s. "
        f"The *changed* phase rebuilds {b.changed} tags (new top layer and config).",
        "",
        "## Results",
        "",
        "Requests are counted from the registries' access logs for that run only. *blob GETs* and "
        "*blob bytes* are on the source; *dup* = blob GETs beyond one per digest; *mounts* = "
        "successful/attempted cross-repository mounts on the target.",
        "",
        "| phase | tool | wall s | CPU s: tool / src reg / dst reg | peak RSS MiB | src req | dst req | req/tag | blob GETs | dup | blob MiB | mounts | exit | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in b.rows:
        s, t = r["src"], r["dst"]
        tags = r.get("tags") or c["tags"]
        req_tag = "" if r["phase"] == "limit" else f"{(s['requests'] + t['requests']) / tags:.1f}"
        rss = "" if r["rss_mib"] is None else f"{r['rss_mib']:.1f}"
        lines.append(
            f"| {r['phase']} | {r['tool']} | {r['wall']:.2f} | {r['cpu'] or 0:.1f} / {r['reg_cpu'][0]:.1f} / {r['reg_cpu'][1]:.1f} | {rss} "
            f"| {s['requests']} | {t['requests']} | {req_tag} | {s['blob_gets']} | {r['dup_blob_gets']} "
            f"| {s['blob_bytes'] / MIB:.0f} | {t['mounted']}/{t['mounts']} | {r['rc']} | {r['note']} (load {r['load'][0]}) |"
        )
    lines += targets(b)
    lines += ["", "Request mix per run (source / target):", ""]
    keys = ["pings", "tag_lists", "manifest_heads", "manifest_gets", "manifest_puts", "blob_heads", "blob_gets",
            "uploads_started", "blob_puts", "patches", "mounts", "errors"]
    lines.append("| phase | tool | " + " | ".join(keys) + " |")
    lines.append("|---|---|" + "---:|" * len(keys))
    for r in b.rows:
        lines.append(
            f"| {r['phase']} | {r['tool']} | "
            + " | ".join(f"{r['src'][k]} / {r['dst'][k]}" for k in keys)
            + " |"
        )
    body = "\n".join(lines) + "\n"
    # Keep hand-written analysis below the generated part.
    marker = "<!-- analysis -->"
    if os.path.exists(out):
        old = open(out).read()
        if marker in old:
            body += "\n" + marker + old.split(marker, 1)[1]
    with open(out, "w") as f:
        f.write(body)
    log(f"wrote {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="a ~100 MiB corpus for quick trials")
    p.add_argument("--root", default=os.environ.get("BENCH_ROOT", "/dev/shm/image-migrator-bench"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "5101")))
    p.add_argument("--binary", required=True)
    p.add_argument("--streams", type=lambda v: [int(x) for x in v.split(",") if x], default=[8, 16],
                   help="parallel streams of the limit runs (each value is run; the fastest stream run is the limit)")
    p.add_argument("--procs", type=lambda v: [int(x) for x in v.split(",") if x], default=[2, 4, 8, 16])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--scale", type=lambda v: [int(x) for x in v.split(",") if x], default=[100, 1000],
                   help="tag counts of the tag-scaling runs (one repository of N small images each)")
    p.add_argument("--skip-skopeo", action="store_true")
    p.add_argument("--skip-limit", action="store_true")
    p.add_argument("--skip-changed", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the registries' storage (tmpfs) after the run")
    p.add_argument("--reuse-source", action="store_true",
                   help="skip seeding: use the source kept by a previous run with --keep (trials)")
    p.add_argument("--results", default=None)
    p.add_argument("--command", default=" ".join(sys.argv))
    a = p.parse_args()
    a.load_start = open("/proc/loadavg").read().split()[:3]
    if a.results is None:
        a.results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS-small.md" if a.small else "RESULTS.md")
    b = Bench(a)
    try:
        b.main()
    finally:
        b.src.stop()
        b.dst.stop()
        if not a.keep:
            # The registries' storage is in RAM (a few GiB with the full corpus); logs stay.
            for path in (b.src.data, b.dst.data, os.path.join(a.root, "target-after-cold")):
                shutil.rmtree(path, ignore_errors=True)
            for f in ("seeded.json", "blobs.json", "revision.json"):
                p = os.path.join(a.root, f)
                if os.path.exists(p):
                    os.remove(p)


if __name__ == "__main__":
    main()
