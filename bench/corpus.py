"""The synthetic corpus: deterministic, incompressible blob content, the repositories →
tags → images table, and seeding it (or a rebuild of some tags) into a registry."""

import hashlib
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from registries import CHUNK, KIB, MIB, NS, conn, log, probe, reset_conns, with_digest


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


def seed_scale(port, n, per_repo=10, threads=8):
    """`n` tags over n/per_repo repositories bench/scale-NNNN, each tag its own small
    image (a 256 KiB layer shared by all, mounted into each repository, and a config of
    its own), for the tag-scaling and far-away runs."""
    t0 = time.monotonic()
    key, size = f"{NS}/scale/layer", 256 * KIB
    d = digest_of(key, size)
    repos = [f"{NS}/scale-{i:04d}" for i in range(n // per_repo)]
    push_blob(port, repos[0], key, size, d)

    def repo(r):
        name = repos[r]
        if r:
            mount_blob(port, name, d, repos[0])
        for t_ in range(per_repo):
            i = r * per_repo + t_
            config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"i": str(i)}},
                                 "rootfs": {"type": "layers", "diff_ids": [d]}}).encode()
            cdig = "sha256:" + hashlib.sha256(config).hexdigest()
            push_bytes(port, name, config, cdig)
            manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                                   "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": cdig},
                                   "layers": [{"mediaType": DOCKER_LAYER, "size": size, "digest": d}]}).encode()
            put_manifest(port, name, f"t{t_:02d}", manifest, DOCKER_MANIFEST)

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(repo, range(len(repos))))
    reset_conns()
    log(f"seeded the scale corpus: {n} tags over {len(repos)} repositories in {time.monotonic() - t0:.1f}s")


def large_image(size):
    """The far-away profile's large image: one layer of `size` bytes (deterministic,
    incompressible) in a repository of its own per size."""
    key = f"{NS}/large/layer-{size}"
    return {"repo": f"{NS}/large-{size // MIB}m", "tag": "v1", "layer_key": key, "size": size}


def seed_large(port, size):
    """Pushes the large image unless the registry has it already (--reuse-source); returns
    large_image(size) with the layer's and the manifest's digests."""
    t0 = time.monotonic()
    im = large_image(size)
    layer = digest_of(im["layer_key"], size)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"bench.key": im["layer_key"]}},
                         "rootfs": {"type": "layers", "diff_ids": [layer]}}, sort_keys=True).encode()
    cdig = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                           "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": cdig},
                           "layers": [{"mediaType": DOCKER_LAYER, "size": size, "digest": layer}]}, indent=3).encode()
    im.update(layer=layer, manifest="sha256:" + hashlib.sha256(manifest).hexdigest())
    status, _ = probe(port, "HEAD", f"/v2/{im['repo']}/manifests/{im['manifest']}", {"Accept": DOCKER_MANIFEST})
    if status == 200:
        log(f"large image {im['repo']}:{im['tag']} already in the source")
        return im
    push_blob(port, im["repo"], im["layer_key"], size, layer)
    push_bytes(port, im["repo"], config, cdig)
    put_manifest(port, im["repo"], im["tag"], manifest, DOCKER_MANIFEST)
    reset_conns()
    log(f"seeded {im['repo']}:{im['tag']}, one {size / MIB:.0f} MiB layer, in {time.monotonic() - t0:.1f}s")
    return im


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

