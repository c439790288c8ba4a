#!/usr/bin/env python3
"""image-migrator benchmark: two local registries on tmpfs, a synthetic corpus, and
side-by-side runs of the streaming limit, skopeo sync and image-migrator.

Run through bench/run (which builds the release binary first). Everything lives under
$BENCH_ROOT (default /dev/shm/image-migrator-bench); registries listen on 127.0.0.1 only.
Each measured phase restarts both registries with a fresh log file, so the request
counts of a phase are exactly the access-log lines of that phase (minus the bench's
own readiness probes, sent with User-Agent "bench-probe").

Modules, one job each: registries.py (the registry processes, HTTP to them, their access
logs), corpus.py (content, corpus table, seeding), measure.py (the streaming limit and the
tools under /usr/bin/time), report.py (RESULTS.md); this file orchestrates the phases.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time

from corpus import corpus_spec, current_blobs, mutated_tags, seed, seed_large, seed_scale
from measure import (copied_whole, im_cmd, im_files, limit_read, limit_stream, limit_write, ocync_cmd, ocync_env,
                     ocync_files, repos_of, skopeo_cmd, skopeo_copy_cmd, skopeo_files, timed)
from registries import MIB, NS, TLS, DelayProxy, Registry, blob_get_concurrency, blob_gets_of, log, log_stats, make_ca, use_tls
from report import write_results

GIB = 1024 * MIB
# A large-layer run that has not ended after this long is stopped (timeout(1), exit 124).
FAR_LARGE_LIMIT_S = 900

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
        # Where the tools are pointed: the registries, or the delaying proxies in front.
        self.tool_ports = (self.src.port, self.dst.port)
        self.prefix = ""  # "tls " for the runs over HTTPS

    def phase(self, name):
        """Fresh registry processes (fresh logs, cold in-memory caches) for a phase."""
        self.src.stop()
        self.dst.stop()
        self.src.start(name)
        self.dst.start(name)

    def record(self, phase, tool, wall, rss_kib=None, rc=0, note="", tags=None, cpu=None, growth=None, extra=None):
        phase = self.prefix + phase
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
            growth=growth, transport="https" if TLS["context"] else "http", **(extra or {}),
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
        """The limit's read and write halves (how fast each registry alone moves the bytes)."""
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

    def run_limit_stream(self, blobs, n):
        """The streaming limit itself: every blob source→target, largest first, `n` at a time."""
        total = sum(v[1] for v in blobs.values()) / MIB
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
        wall, rss, rc = timed(skopeo_cmd(work, self.tool_ports[1], cache), work)
        return self.record(phase, "skopeo sync", wall, rss, rc, cpu=timed.cpu, tags=tags, growth=timed.growth)

    def run_ocync(self, phase, work, fresh_cache, label="ocync sync"):
        """ocync (a binary given with --ocync) with its config in `work`; its warm cache
        (in `work`, as ocync keeps it next to its config) emptied for a cold run and kept
        for the no-op, as a CronJob would."""
        if fresh_cache:
            for name in os.listdir(work):
                if name != "config.yaml":
                    path = os.path.join(work, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        self.phase(f"{phase}-ocync")
        wall, rss, rc = timed(ocync_cmd(self.args.ocync, work), work, env=ocync_env())
        return self.record(phase, label, wall, rss, rc, cpu=timed.cpu, growth=timed.growth)

    def run_im(self, phase, work, proc=None, label=None, tags=None, extra=()):
        self.phase(f"{phase}-im{proc or ''}")
        wall, rss, rc = timed(im_cmd(self.binary, work, proc, extra), work)
        return self.record(phase, label or "image-migrator", wall, rss, rc, im_summary(work), cpu=timed.cpu, tags=tags,
                           growth=timed.growth)

    def scale_runs(self, a):
        """Cost against the number of tags: N tags over N/10 repositories of small images
        (one corpus seeded once; each point syncs its first N/10 repositories)."""
        if not a.scale:
            return
        self.phase("seed-scale")
        # Seeding 100,000 tags takes minutes: with --reuse-source a kept source that
        # already holds the largest point is used as it is.
        marker = os.path.join(a.root, "scale-seeded.json")
        seeded = json.load(open(marker))["tags"] if os.path.exists(marker) else 0
        reseed = not (a.reuse_source and seeded >= max(a.scale))
        # distribution's storage takes ~16 inodes a tag; a tmpfs has a few million.
        need = 16 * max(a.scale) * (2 if reseed else 1)
        free = os.statvfs(a.root).f_favail
        if free < need:
            raise SystemExit(f"bench: {a.root} has {free} free inodes, {max(a.scale)} tags need ~{need}: "
                             f"mount -o remount,nr_inodes=8000000 /dev/shm, or --root on a disk")
        if reseed:
            seed_scale(self.src.port, max(a.scale), per_repo=10)
            with open(marker, "w") as f:
                json.dump({"tags": max(a.scale)}, f)
        for n in sorted(a.scale):
            repos = [f"{NS}/scale-{i:04d}" for i in range(n // 10)]
            work = os.path.join(self.root, "work", f"scale-{n}")
            im_files(work, repos, self.src.port, self.dst.port)
            self.dst.wipe()
            self.run_im(f"{n} tags: cold", work, tags=n)
            self.run_im(f"{n} tags: no-op", work, tags=n)
            # A mirror whose tags are all trusted never to change: tag lists only.
            self.run_im(f"{n} tags: no-op, trusted", work, tags=n, extra=["--immutable-tags", ".*"],
                        label="image-migrator --immutable-tags")
            if not a.skip_skopeo and n <= a.skopeo_scale_max:
                skopeo_files(work, repos, self.src.port)
                self.run_skopeo(f"{n} tags: no-op", work, fresh_cache=True, tags=n)

    def far_runs(self, a):
        """The far-away profile: every byte to and from both registries delayed by
        a.rtt_ms / 2 each way, on the first a.far tags of the scale corpus."""
        if not a.far:
            return
        one_way = a.rtt_ms / 2000
        proxies = (DelayProxy(self.src.port + 10, self.src.port, one_way), DelayProxy(self.dst.port + 10, self.dst.port, one_way))
        self.tool_ports = tuple(p.port for p in proxies)
        try:
            repos = [f"{NS}/scale-{i:04d}" for i in range(a.far // 10)]
            work = os.path.join(self.root, "work", "far")
            im_files(work, repos, *self.tool_ports)
            skopeo_files(work, repos, self.tool_ports[0])
            label = f"far ({a.rtt_ms} ms RTT), {a.far} tags"
            self.dst.wipe()
            self.run_im(f"{label}: cold", work, tags=a.far)
            self.run_im(f"{label}: no-op", work, tags=a.far)
            if not a.skip_skopeo:
                self.dst.wipe()
                self.run_skopeo(f"{label}: cold", work, fresh_cache=True, tags=a.far)
                self.run_skopeo(f"{label}: no-op", work, fresh_cache=False, tags=a.far)
        finally:
            self.tool_ports = (self.src.port, self.dst.port)
            for p in proxies:
                p.close()

    def far_large_runs(self, a):
        """The far-away profile's large layer: one image of one `a.far_large_gib` GiB layer,
        copied through the delaying proxies by image-migrator and skopeo copy, once over an
        intact link and once with the source's connection cut when it has carried half of
        the layer (once per run). Counts the bytes the source proxy forwarded to the tool."""
        size = int(a.far_large_gib * GIB)
        if size <= 0:
            return
        self.phase("seed-large")
        image = seed_large(self.src.port, size)
        one_way = a.rtt_ms / 2000
        src, dst = DelayProxy(self.src.port + 10, self.src.port, one_way), DelayProxy(self.dst.port + 10, self.dst.port, one_way)
        work = os.path.join(self.root, "work", "far-large")
        # (tool, skopeo's --retry-times, cut, after a failure run once more as a CI rerun would)
        runs = [("image-migrator", 0, False, False), ("image-migrator", 0, True, False),
                ("skopeo copy", 0, False, False), ("skopeo copy", 0, True, False), ("skopeo copy", 3, True, False),
                ("skopeo copy", 0, True, True)]
        try:
            for tool, retry_times, cut, again in runs * a.repeat:
                if tool == "skopeo copy" and a.skip_skopeo:
                    continue
                label = f"{tool} --retry-times {retry_times}" if retry_times else tool
                label += ", run again on failure" if again else ""
                phase = f"far large ({a.rtt_ms} ms RTT), {size // MIB} MiB layer: {'cut at 50%' if cut else 'no cut'}"
                self.dst.wipe()
                self.phase(f"far-large-{len(self.rows)}")
                src.arm_cut(size // 2 if cut else None)
                if tool == "image-migrator":
                    im_files(work, [image["repo"]], src.port, dst.port)
                    cmd = im_cmd(self.binary, work)
                else:
                    cmd = skopeo_copy_cmd(work, src.port, dst.port, image, os.path.join(work, f"cache-{len(self.rows)}"), retry_times)
                wall, rss, rc = timed(["timeout", str(FAR_LARGE_LIMIT_S), *cmd], work)
                cpu, first_rc = timed.cpu, None
                if again and rc:
                    first_rc = rc
                    src.disarm()
                    wall2, rss2, rc = timed(["timeout", str(FAR_LARGE_LIMIT_S), *cmd], work)
                    wall, rss, cpu = wall + wall2, max(rss, rss2), cpu + timed.cpu
                large = dict(size=size, cut=cut, first_rc=first_rc, cuts=list(src.cuts), served=src.down_bytes,
                             gets=blob_gets_of(self.src.logfile, image["layer"]), whole=copied_whole(self.dst.port, image))
                note = f"{im_summary(work)} attempts={im_attempts(work)}" if tool == "image-migrator" else ""
                if rc:
                    note = f"{note} stderr: …{tail(os.path.join(work, 'stderr.txt'))}".strip()
                self.record(phase, label, wall, rss, rc, note, tags=1, cpu=cpu, extra={"large": large})
                log(f"  served {large['served'] / MIB:.1f} MiB, cuts at {large['cuts']}, GETs {large['gets']}, "
                    f"copied whole: {large['whole']}")
        finally:
            for p in (src, dst):
                p.close()

    def main(self):
        a = self.args
        os.makedirs(self.root, exist_ok=True)
        for f in ("seeded.json", "blobs.json", "revision.json", "rows.json"):
            p = os.path.join(self.root, f)
            if os.path.exists(p) and not a.reuse_source:
                os.remove(p)
        self.dst.wipe()
        if a.only_far_large:
            if not a.reuse_source:
                self.src.wipe()
            ca = make_ca(self.root) if "tls" in a.transports else None
            use_tls(ca)
            self.prefix = "tls " if ca else ""
            self.far_large_runs(a)
            self.corpus, self.changed = None, 0
            write_results(self, a)
            return
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
        ocw = os.path.join(self.root, "work", "ocync")
        ocw_trusted = os.path.join(self.root, "work", "ocync-trusted")
        snap = os.path.join(self.root, "target-after-cold")
        ca = make_ca(self.root) if "tls" in a.transports else None

        for transport in a.transports:
            use_tls(ca if transport == "tls" else None)
            self.prefix = "tls " if transport == "tls" else ""
            skopeo_files(skw, repos_of(self.small), self.src.port)
            im_files(imw, repos_of(self.small), self.src.port, self.dst.port)
            if a.ocync:
                ocync_files(ocw, repos_of(self.small), self.src.port, self.dst.port)
                ocync_files(ocw_trusted, repos_of(self.small), self.src.port, self.dst.port, immutable=True)
            for rep in range(a.repeat):
                if not a.skip_limit:
                    for n in a.streams:
                        self.run_limit(blobs, n)
                if not a.skip_skopeo:
                    self.dst.wipe()
                    self.run_skopeo("cold", skw, fresh_cache=True)
                    self.run_skopeo("no-op", skw, fresh_cache=False)
                if a.ocync:
                    self.dst.wipe()
                    self.run_ocync("cold", ocw, fresh_cache=True)
                    self.run_ocync("no-op", ocw, fresh_cache=False)
                    self.run_ocync("no-op, trusted", ocw_trusted, fresh_cache=False, label="ocync sync, immutable_tags")
                # The streaming limit right before image-migrator's cold run: each round's
                # pair is measured in the same moment of a machine whose speed drifts.
                if not a.skip_limit:
                    for n in a.streams:
                        self.run_limit_stream(blobs, n)
                self.dst.wipe()
                self.run_im("cold", imw)
                self.run_im("no-op", imw)
                # A mirror whose tags are all trusted never to change: tag lists only.
                self.run_im("no-op, trusted", imw, extra=["--immutable-tags", ".*"], label="image-migrator --immutable-tags")
            if transport == a.transports[0]:
                self.dst.snapshot(snap)
                for p in a.procs:
                    self.dst.wipe()
                    self.run_im("cold --proc sweep", imw, proc=p, label=f"image-migrator --proc {p}")

        # Scale and far-away runs over TLS when it is measured (real registries speak it).
        use_tls(ca)
        self.prefix = "tls " if ca else ""
        self.scale_runs(a)
        self.far_runs(a)
        self.far_large_runs(a)
        if a.skip_changed:
            self.changed = 0
            write_results(self, a)
            return
        # Rebuild a few tags in the source, then sync from the post-cold target state.
        use_tls(None if a.transports[0] == "http" else ca)
        self.prefix = "" if a.transports[0] == "http" else "tls "
        skopeo_files(skw, repos_of(self.small), self.src.port)
        im_files(imw, repos_of(self.small), self.src.port, self.dst.port)
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


def im_summary(work):
    """The counts of image-migrator's report in `work`, for a row's note."""
    try:
        summary = json.load(open(os.path.join(work, "report.json")))["summary"]
    except Exception as e:  # noqa: BLE001
        return f"no report: {e}"
    return (
        f"copied={summary['copied']} unchanged={summary['unchanged']} failed={summary['failed']} "
        f"blobs={summary['blobs_transferred']} mounted={summary['blobs_mounted']} present={summary['blobs_skipped']}"
    )


def im_attempts(work):
    """The most attempts any image of image-migrator's report in `work` took (a resumed
    download is one more attempt)."""
    try:
        return max(r["attempts"] for r in json.load(open(os.path.join(work, "report.json")))["results"])
    except Exception:  # noqa: BLE001
        return "?"


def tail(path, n=200):
    """The last `n` characters of a file, on one line, upload states (long opaque tokens in
    upload URLs) shortened."""
    try:
        with open(path, errors="replace") as f:
            text = re.sub(r"_state=[^\s\"&]*", "_state=…", f.read())
    except OSError:
        return ""
    return text[-n:].replace("\n", " ").strip()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", action="store_true", help="a ~100 MiB corpus for quick trials")
    p.add_argument("--root", default=os.environ.get("BENCH_ROOT", "/dev/shm/image-migrator-bench"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "5101")))
    p.add_argument("--binary", required=True)
    p.add_argument("--streams", type=lambda v: [int(x) for x in v.split(",") if x], default=[8, 16],
                   help="parallel streams of the limit runs (each value is run; the fastest stream run is the limit)")
    p.add_argument("--procs", type=lambda v: [int(x) for x in v.split(",") if x], default=[2, 4, 8, 16])
    p.add_argument("--repeat", type=int, default=1, help="runs of each kind (main corpus and large layer)")
    p.add_argument("--scale", type=lambda v: [int(x) for x in v.split(",") if x], default=[1000, 5000, 20000, 100000],
                   help="tag counts of the tag-scaling runs (N small images over N/10 repositories; seeding 100,000 tags takes ~9 min once, kept with --keep --reuse-source)")
    p.add_argument("--skopeo-scale-max", type=int, default=1000, help="largest scale point skopeo's no-op runs at")
    p.add_argument("--transports", type=lambda v: [x for x in v.split(",") if x], default=["http", "tls"],
                   help="http, tls or both (the first one also runs --procs and the changed phase)")
    p.add_argument("--far", type=int, default=50, help="tags of the far-away profile (0: skip)")
    p.add_argument("--rtt-ms", type=int, default=100, help="round trip added by the far-away proxies")
    p.add_argument("--far-large-gib", type=float, default=None,
                   help="size in GiB of the far-away profile's large layer, copied with and without a cut mid-stream "
                        "(default: 1, and 0 with --small; 0: skip)")
    p.add_argument("--only-far-large", action="store_true",
                   help="run the large-layer part of the far-away profile alone (no corpus, no other phase)")
    p.add_argument("--ocync", default=os.environ.get("BENCH_OCYNC"),
                   help="an ocync binary to run beside skopeo on the main corpus (cold, no-op, no-op with immutable_tags)")
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
    if a.far_large_gib is None:
        a.far_large_gib = 1.0 if a.only_far_large or not a.small else 0.0
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
            for f in ("seeded.json", "blobs.json", "revision.json", "scale-seeded.json"):
                p = os.path.join(a.root, f)
                if os.path.exists(p):
                    os.remove(p)


if __name__ == "__main__":
    main()

