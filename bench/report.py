"""RESULTS.md: the machine, the corpus, one row per measured run, the issue's targets
checked against the rows, and the hand-written analysis kept below its marker."""

import os
import platform
import subprocess
import time

from registries import MIB, log



def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def targets(b):
    """The issue's targets (issue 15), per transport, then the scale and far-away runs."""
    out = []
    for prefix in ("", "tls "):
        if any(r["phase"].startswith(prefix + "cold") for r in b.rows) and (prefix or any(r["phase"] == "cold" for r in b.rows)):
            out += targets_of(b, prefix)
    out += scale_section(b)
    out += far_section(b)
    out += far_large_section(b)
    return out


def mark(ok):
    """A target's verdict as the report prints it."""
    return "met" if ok else "**not met**"


def round_verdicts(b, prefix):
    """Issue 27's targets, over every round of a --repeat run: the cold sync's median against
    the streaming limit's, the no-op's slowest round against skopeo's median, and (with
    --ocync) the trusted no-op against ocync's no-op."""

    def walls(phase, tool):
        return sorted(r["wall"] for r in b.rows if r["phase"] == prefix + phase and r["tool"] == tool)

    def median(ws):
        return ws[len(ws) // 2] if len(ws) % 2 else (ws[len(ws) // 2 - 1] + ws[len(ws) // 2]) / 2

    out = []
    lims = sorted(r["wall"] for r in b.rows if r["phase"] == prefix + "limit" and r["tool"].startswith("stream"))
    cold, noop = walls("cold", "image-migrator"), walls("no-op", "image-migrator")
    trusted = walls("no-op, trusted", "image-migrator --immutable-tags")
    sk_noop = walls("no-op", "skopeo sync")
    oc_cold, oc_noop = walls("cold", "ocync sync"), walls("no-op", "ocync sync")
    oc_trusted = walls("no-op, trusted", "ocync sync, immutable_tags")
    n = f"{len(cold)} round{'s' if len(cold) != 1 else ''}"
    if cold and lims:
        x = median(cold) / median(lims)
        out.append(f"- cold sync vs streaming limit, medians of {n}: {median(cold):.3f}s / {median(lims):.3f}s = {x:.2f}× "
                   f"(issue 27: ≤ 1.15×: {mark(x <= 1.15)}; slowest cold against fastest limit {cold[-1] / lims[0]:.2f}×)")
        pairs = paired_ratios(b, prefix)
        if pairs:
            out.append(f"- cold sync vs streaming limit, each round's pair (the limit run right before): "
                       f"{', '.join(f'{r:.2f}×' for r in pairs)}; median {median(sorted(pairs)):.2f}×")
    if noop and sk_noop:
        x = noop[-1] / median(sk_noop)
        out.append(f"- no-op, slowest of {n} vs skopeo's median: {noop[-1]:.3f}s / {median(sk_noop):.3f}s = {x:.3f}× "
                   f"(issue 27: ≤ 0.14×: {mark(x <= 0.14)})")
    if cold and oc_cold:
        out.append(f"- cold sync vs ocync, medians: {median(cold):.3f}s / {median(oc_cold):.3f}s = {median(cold) / median(oc_cold):.2f}×")
    if noop and oc_noop:
        out.append(f"- no-op vs ocync, medians: {median(noop):.3f}s / {median(oc_noop):.3f}s = {median(noop) / median(oc_noop):.2f}×")
    if trusted and oc_noop:
        x = trusted[-1] / median(oc_noop)
        out.append(f"- no-op with --immutable-tags, slowest of {n} vs ocync's no-op median: {trusted[-1]:.3f}s / {median(oc_noop):.3f}s "
                   f"= {x:.2f}× (issue 27: ≤ 0.5×: {mark(x <= 0.5)})")
    if trusted and oc_trusted:
        out.append(f"- no-op with --immutable-tags vs ocync with immutable_tags, medians: {median(trusted):.3f}s / "
                   f"{median(oc_trusted):.3f}s = {median(trusted) / median(oc_trusted):.2f}×")
    return out


def paired_ratios(b, prefix):
    """Each round's cold sync against the limit's stream run just before it (bench.py runs
    them back to back), in round order."""
    ratios, limit = [], None
    for r in b.rows:
        if r["phase"] == prefix + "limit" and r["tool"].startswith("stream"):
            limit = r["wall"] if limit is None else min(limit, r["wall"])
        elif r["phase"] == prefix + "cold" and r["tool"] == "image-migrator" and limit:
            ratios.append(r["wall"] / limit)
            limit = None
    return ratios


def targets_of(b, prefix):
    """The main corpus's targets over one transport (prefix "" = HTTP, "tls " = HTTPS)."""

    def row(phase, tool):
        # With --repeat, the fastest run of each kind (the least disturbed by other load).
        rows = [r for r in b.rows if r["phase"] == prefix + phase and r["tool"] == tool]
        return min(rows, key=lambda r: r["wall"]) if rows else None

    lims = [r for r in b.rows if r["phase"] == prefix + "limit" and r["tool"].startswith("stream")]
    lim = min(lims, key=lambda r: r["wall"]) if lims else None
    im = {p: row(p, "image-migrator") for p in ("cold", "no-op", "changed")}
    sk = {p: row(p, "skopeo sync") for p in ("cold", "no-op", "changed")}
    name = "HTTPS (throw-away CA)" if prefix else "plain HTTP"
    out = ["", f"### Against the targets: {name}", "", "(Fastest run of each kind when a kind ran more than once.)", ""]

    def ratio(a, b_):
        return f"{a['wall'] / b_['wall']:.2f}×" if a and b_ else "n/a"

    if im["cold"] and lim:
        x = im["cold"]["wall"] / lim["wall"]
        out.append(f"- cold sync vs streaming limit: {im['cold']['wall']:.1f}s / {lim['wall']:.1f}s = {x:.2f}× (target ≤ 1.2×: {mark(x <= 1.2)})")
    if im["cold"]:
        d = im["cold"]["dst"]
        # New to a repository: uploaded, or mounted from another repository.
        new_blobs = d["blob_puts"] + d["mounted"]
        budget = 2 * new_blobs + d["manifest_puts"] + 2 * b.corpus["repos"]
        out.append(
            f"- cold target requests: {d['requests']} for {new_blobs} blobs new to their repository ({d['blob_puts']} uploaded, "
            f"{d['mounted']} mounted), {d['manifest_puts']} manifests, {b.corpus['repos']} repositories "
            f"(target ≤ {budget}: {mark(d['requests'] <= budget)}; of them {d['blob_heads']} blob HEADs and "
            f"{d['uploads_started']} plain upload POSTs sent before the self-mount probe answered, {d['manifest_heads']} manifest HEADs, "
            f"{d['tag_lists']} tag lists, {d['pings']} pings)"
        )
    for p, cap in (("cold", 1 / 3), ("no-op", 0.14)):
        if im[p] and sk[p]:
            x = im[p]["wall"] / sk[p]["wall"]
            out.append(f"- {p} sync vs skopeo: {im[p]['wall']:.2f}s / {sk[p]['wall']:.2f}s = {x:.2f}× (target ≤ {cap:.2f}×: {mark(x <= cap)})")
    if im["changed"] and sk["changed"]:
        out.append(f"- changed tags vs skopeo: {im['changed']['wall']:.2f}s / {sk['changed']['wall']:.2f}s = {ratio(im['changed'], sk['changed'])}")
    out += round_verdicts(b, prefix)
    # This corpus over this transport only (the scale and far-away runs have their own).
    corpus_phases = {prefix + p for p in ("cold", "no-op", "changed", "cold --proc sweep")}
    ims = [r for r in b.rows if r["tool"].startswith("image-migrator") and r["phase"] in corpus_phases]
    if ims:
        cold_like = [r for r in ims if r["phase"].startswith(prefix + "cold")]
        dups = max(r["dup_blob_gets"] for r in ims)
        gets = [r["src"]["blob_gets"] for r in cold_like]
        out.append(
            f"- source blob GETs in cold runs: {sorted(set(gets))} for {b.corpus['blobs']} unique blobs; duplicate GETs in any run: {dups} "
            f"(target: equal, none: {mark(dups == 0 and all(g == b.corpus['blobs'] for g in gets))})"
        )
        rss = max(r["rss_mib"] or 0 for r in ims)
        out.append(f"- peak RSS of image-migrator over this corpus's runs: {rss:.1f} MiB with a {b.corpus['largest'] / MIB:.0f} MiB layer (target < 64 MiB: {mark(rss < 64)})")
        if im["no-op"]:
            req = im["no-op"]["src"]["requests"] + im["no-op"]["dst"]["requests"]
            budget = 2 * b.corpus["tags"] + b.corpus["repos"] + 2
            out.append(
                f"- no-op requests: {req} for {b.corpus['tags']} tags in {b.corpus['repos']} repositories "
                f"({req / b.corpus['tags']:.2f}/tag; target ≤ 2/tag + 1 tag list/repository + 2 pings = {budget}: {mark(req <= budget)})"
            )
    return out


def scale_rows(b):
    return sorted((r for r in b.rows if " tags: " in r["phase"] and not r["phase"].startswith(("far", "tls far"))
                   and r["tool"] == "image-migrator"), key=lambda r: r["tags"])


def scale_section(b):
    rows = scale_rows(b)
    if not rows:
        return []
    out = ["", "### Scale: small images, 10 tags per repository", "",
           "| tags | run | wall s | s per 1,000 tags | tool CPU ms per tag | requests/tag (src+dst) | peak RSS MiB | threads 1st/2nd half | fds 1st/2nd half | exit |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        kind = r["phase"].split(": ")[1]
        g = r.get("growth") or {}
        th = "/".join(map(str, g.get("threads", ()))) or "?"
        fd = "/".join(map(str, g.get("fds", ()))) or "?"
        req = (r["src"]["requests"] + r["dst"]["requests"]) / r["tags"]
        out.append(f"| {r['tags']} | {kind} | {r['wall']:.1f} | {1000 * r['wall'] / r['tags']:.2f} "
                   f"| {1000 * (r['cpu'] or 0) / r['tags']:.2f} | {req:.2f} "
                   f"| {r['rss_mib'] or 0:.1f} | {th} | {fd} | {r['rc']} |")
    out.append("")
    out += linearity(rows)
    out += trusted_lines(b, rows)
    rss = max(r["rss_mib"] or 0 for r in rows)
    out.append(f"- peak RSS over the scale runs: {rss:.1f} MiB (target ≤ 64 MiB: {'met' if rss <= 64 else '**not met**'})")
    return out


def trusted_lines(b, rows):
    """The no-op of a mirror whose tags are all trusted (`--immutable-tags '.*'`) beside the
    plain no-op at the same scale point."""
    plain = {r["tags"]: r for r in rows if r["phase"].endswith("no-op")}
    out = []
    for r in b.rows:
        if r["phase"].endswith("no-op, trusted") and r["tags"] in plain:
            p = plain[r["tags"]]
            req = lambda x: x["src"]["requests"] + x["dst"]["requests"]  # noqa: E731
            out.append(f"- no-op at {r['tags']:,} tags with `--immutable-tags '.*'`: {r['wall']:.1f} s, "
                       f"tool CPU {r['cpu'] or 0:.1f} s, {req(r)} requests "
                       f"(plain no-op: {p['wall']:.1f} s, {p['cpu'] or 0:.1f} s, {req(p)} requests)")
    return out


def linearity(rows):
    """Cost per tag beyond the smallest scale point against the cost per tag up to it, for
    wall time (which depends on the registries and the machine too) and for the tool's own
    CPU (which is the tool's alone); memory as KiB per tag beyond the smallest point."""
    out = []
    for kind in ("cold", "no-op"):
        pts = {r["tags"]: r for r in rows if r["phase"].endswith(kind)}
        if len(pts) < 2:
            continue
        low, high = min(pts), max(pts)
        # s per 1,000 tags and ms per tag are both 1,000 × seconds / tags.
        for what, unit, key in (("wall", "s per 1,000 tags", "wall"), ("tool CPU", "ms per tag", "cpu")):
            a, b = pts[low][key] or 0, pts[high][key] or 0
            first, beyond = 1000 * a / low, 1000 * (b - a) / (high - low)
            x = beyond / first if first else float("inf")
            out.append(f"- {kind}, {what}: {first:.2f} {unit} for the first {low:,}, {beyond:.2f} beyond, up to {high:,} "
                       f"(ratio {x:.2f}, target ≤ 1.1: {'met' if x <= 1.1 else '**not met**'})")
        ra, rb = pts[low]["rss_mib"] or 0, pts[high]["rss_mib"] or 0
        out.append(f"- {kind}, peak RSS: {ra:.1f} MiB at {low:,} tags, {rb:.1f} at {high:,} "
                   f"({1024 * (rb - ra) / (high - low):.2f} KiB per tag beyond)")
    return out


def far_section(b):
    rows = [r for r in b.rows if "far (" in r["phase"]]
    if not rows:
        return []
    out = ["", "### Far-away profile", ""]
    by = {(r["phase"].split(": ")[1], r["tool"]): r for r in rows}
    for kind in ("cold", "no-op"):
        im, sk = by.get((kind, "image-migrator")), by.get((kind, "skopeo sync"))
        if im and sk:
            x = im["wall"] / sk["wall"]
            out.append(f"- {kind}: image-migrator {im['wall']:.1f} s vs skopeo {sk['wall']:.1f} s = {x:.2f}× "
                       f"(target ≤ 0.33×: {'met' if x <= 1 / 3 else '**not met**'})")
    rtt = b.args.rtt_ms / 1000
    for r in rows:
        out.append(f"- {r['phase']} / {r['tool']}: {r['src']['requests'] + r['dst']['requests']} requests, "
                   f"wall {r['wall']:.1f} s = {r['wall'] / rtt:.0f} round trips of {b.args.rtt_ms} ms on the critical path")
    return out


def far_large_section(b):
    """The large layer through the far-away proxies, with and without a cut: time, bytes
    the source sent the tool, and whether the target ended up with the image."""
    rows = [r for r in b.rows if r.get("large")]
    if not rows:
        return []
    size = rows[0]["large"]["size"]
    # The same tool's run over an intact link: what a cut adds to it is read again.
    intact = {r["tool"].split()[0]: r["large"]["served"] for r in rows if not r["large"]["cut"]}
    out = ["", f"### Far away with a {size / MIB:,.0f} MiB layer cut mid-stream", "",
           "*From the source*: bytes the source-side proxy forwarded to the tool (headers, manifest, config and TLS "
           "records included); *read again*: beyond the same tool's run without a cut; *layer GETs*: status and bytes "
           "of each GET of the layer in the source's access log (a GET that was cut logs what the registry wrote "
           "into the proxy, which reads ahead of the tool, not what reached the tool).", "",
           "| tool | link | wall s | tool CPU s | from source MiB | read again MiB | layer GETs (status: MiB) | peak RSS MiB | result | load |",
           "|---|---|---:|---:|---:|---:|---|---:|---|---:|"]
    for r in rows:
        g = r["large"]
        link = f"cut at {g['cuts'][0] / MIB:,.1f} MiB" if g["cuts"] else ("no cut" if not g["cut"] else "cut armed, not reached")
        if g.get("first_rc"):
            link += f"; failed (exit {g['first_rc']}), run once more"
        ok = r["rc"] == 0 and g["whole"]
        base = intact.get(r["tool"].split()[0])
        again = f"{(g['served'] - base) / MIB:,.2f}" if ok and g["cut"] and base is not None else "—"
        gets = ", ".join(f"{st}: {n / MIB:,.1f}" for st, n in g["gets"]) or "none"
        result = "copied, digests verified at the target" if ok else f"**failed** (exit {r['rc']}, image at the target: {g['whole']})"
        out.append(f"| {r['tool']} | {link} | {r['wall']:.1f} | {r['cpu'] or 0:.1f} | {g['served'] / MIB:,.1f} | {again} | {gets} "
                   f"| {r['rss_mib'] or 0:.1f} | {result} | {r['load'][0]} |")
    return out


def plot(b, path):
    """time and peak RSS against tags (PNG); skipped when matplotlib is missing."""
    rows = scale_rows(b)
    if not rows:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot (bench/run installs it in a venv)")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, style in (("cold", "o-"), ("no-op", "s--")):
        pts = [(r["tags"], r["wall"], r["rss_mib"] or 0) for r in rows if r["phase"].endswith(kind)]
        if pts:
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], style, label=kind)
            ax2.plot([p[0] for p in pts], [p[2] for p in pts], style, label=kind)
    ax1.set(xlabel="tags", ylabel="wall time, s", title="image-migrator: time against tags")
    ax2.axhline(64, color="grey", linestyle=":", label="64 MiB target")
    # The target line stays in view however far below it the runs are.
    top = max([64] + [r["rss_mib"] or 0 for r in rows]) * 1.15
    ax2.set(xlabel="tags", ylabel="peak RSS, MiB", title="image-migrator: memory against tags", ylim=(0, top))
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"small images, 10 tags/repository, {rows[0].get('transport', 'http')}; load {rows[-1]['load'][0]} on 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    log(f"wrote {path}")
    return True


def write_results(b, a):
    out = a.results
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
    c = b.corpus
    corpus = ("Not run (`--only-far-large`)." if c is None else
              f"{c['repos']} repositories, {c['tags']} tags, {c['blobs']} unique blobs, "
              f"{c['bytes'] / MIB:.0f} MiB of unique blob data (largest {c['largest'] / MIB:.0f} MiB, smallest "
              f"{c['smallest']} B); one base layer per architecture shared by every image; Docker v2s2 and OCI "
              f"manifests, Docker manifest lists and OCI indexes (amd64+arm64). Seeded in {c['seed_s']:.1f}s. "
              f"The *changed* phase rebuilds {b.changed} tags (new top layer and config).")
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
        f"{sh('docker-registry --version')}; Python {platform.python_version()}; {sh('openssl version')}",
        "- registries: two `docker-registry serve` processes on 127.0.0.1, storage on tmpfs "
        f"({b.root}), restarted before every measured run (fresh log, cold in-memory cache)",
        "",
        "## Corpus",
        "",
        corpus,
        "",
        "## Results",
        "",
        "Requests are counted from the registries' access logs for that run only. *blob GETs* and "
        "*blob bytes* are on the source; *dup* = blob GETs beyond one per digest; *mounts* = "
        "successful/attempted cross-repository mounts on the target; *self_mounts* (request mix) = mounts from the target repository itself, image-migrator's \"have it? else open an upload\" request.",
        "",
        "| phase | tool | wall s | CPU s: tool / src reg / dst reg | peak RSS MiB | src req | dst req | req/tag | blob GETs | dup | blob MiB | mounts | exit | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in b.rows:
        s, t = r["src"], r["dst"]
        tags = r.get("tags") or (c["tags"] if c else 1)
        req_tag = "" if r["phase"] == "limit" else f"{(s['requests'] + t['requests']) / tags:.1f}"
        rss = "" if r["rss_mib"] is None else f"{r['rss_mib']:.1f}"
        lines.append(
            f"| {r['phase']} | {r['tool']} | {r['wall']:.2f} | {r['cpu'] or 0:.1f} / {r['reg_cpu'][0]:.1f} / {r['reg_cpu'][1]:.1f} | {rss} "
            f"| {s['requests']} | {t['requests']} | {req_tag} | {s['blob_gets']} | {r['dup_blob_gets']} "
            f"| {s['blob_bytes'] / MIB:.0f} | {t['mounted']}/{t['mounts']} | {r['rc']} | {r['note']} (load {r['load'][0]}) |"
        )
    lines += targets(b)
    png = os.path.splitext(out)[0] + "-scale.png"
    try:
        plotted = plot(b, png)
    except Exception as e:  # noqa: BLE001 - a missing plot must not lose the results
        log(f"no plot: {e}")
        plotted = False
    if plotted:
        lines += ["", f"![time and memory against tags]({os.path.basename(png)})"]
    lines += ["", "Request mix per run (source / target):", ""]
    keys = ["pings", "tag_lists", "manifest_heads", "manifest_gets", "manifest_puts", "blob_heads", "blob_gets",
            "uploads_started", "blob_puts", "patches", "mounts", "self_mounts", "errors"]
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


