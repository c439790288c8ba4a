"""The registries of the benchmark: `docker-registry serve` processes on 127.0.0.1
(storage on tmpfs, a fresh access log per phase), over plain HTTP or HTTPS with a
throw-away CA, keep-alive connections to them, a proxy that delays every byte (a far-away
registry), and the access-log parsing that turns a phase's log into request counts."""

import http.client
import os
import queue
import socket
import ssl
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

KIB = 1024
MIB = 1024 * KIB
CHUNK = 1 * MIB
PROBE_UA = "bench-probe"
NS = "bench"


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- TLS

# Set by use_tls(): the CA and server certificate every registry (and proxy target) uses.
TLS = {"ca": None, "cert": None, "key": None, "context": None}


def make_ca(root):
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    d = os.path.join(root, "tls")
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    cert, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=image-migrator bench CA",
        "-keyout", ca_key, "-out", ca)
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", key + ".csr")
    run("x509", "-req", "-in", key + ".csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", ext, "-out", cert)
    # skopeo reads CAs from a directory of *.crt files.
    cadir = os.path.join(d, "certs.d")
    os.makedirs(cadir, exist_ok=True)
    shutil.copy(ca, os.path.join(cadir, "ca.crt"))
    return {"ca": ca, "cert": cert, "key": key, "ca_dir": cadir}


def use_tls(paths):
    """HTTPS from now on (registries started later, connections opened later); None = HTTP."""
    TLS.update(ca=None, cert=None, key=None, context=None, ca_dir=None)
    if paths:
        TLS.update(paths)
        TLS["context"] = ssl.create_default_context(cafile=paths["ca"])
    reset_conns()


def scheme():
    return "https" if TLS["context"] else "http"


def http_connection(port, timeout):
    if TLS["context"]:
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=TLS["context"])
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


# --------------------------------------------------------------------------- HTTP


class Conn:
    """A keep-alive HTTP/1.1 connection to one registry (one per thread)."""

    def __init__(self, port):
        self.port = port
        self.c = http_connection(port, 600)

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


def reset_conns():
    """Closes this thread's connections (the next `conn` opens fresh ones)."""
    _local.__dict__.clear()


def conn(port):
    key = f"c{port}"
    c = getattr(_local, key, None)
    if c is None:
        c = Conn(port)
        setattr(_local, key, c)
    return c


def probe(port, method, path, headers=None):
    """One request on a connection of its own, as the bench's probe (left out of the
    request counts): (status, headers)."""
    c = http_connection(port, 30)
    try:
        c.request(method, path, headers={"User-Agent": PROBE_UA, **(headers or {})})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


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

    def write_config(self):
        tls = ""
        if TLS["context"]:
            tls = f"\n  tls:\n    certificate: {TLS['cert']}\n    key: {TLS['key']}"
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
  addr: 127.0.0.1:{self.port}
  secret: image-migrator-bench{tls}
"""
            )

    def start(self, phase):
        assert self.proc is None
        self.write_config()
        self.logfile = os.path.join(self.root, "logs", f"{phase}.{self.name}.log")
        os.makedirs(os.path.dirname(self.logfile), exist_ok=True)
        out = open(self.logfile, "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                c = http_connection(self.port, 2)
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


class DelayProxy:
    """TCP proxy 127.0.0.1:listen → 127.0.0.1:upstream that holds every chunk of bytes, in
    each direction, for `one_way` seconds before passing it on: a round trip of
    2 × one_way, bandwidth unchanged (TLS passes through untouched).

    It counts the bytes it forwards from the upstream to the client (`down_bytes`: what
    the tools read, headers and TLS records included) and, when armed with `arm_cut(n)`,
    cuts the first connection whose downstream reaches n bytes exactly there (both sides
    shut down and closed: the client's response body ends short), once."""

    def __init__(self, listen, upstream, one_way):
        self.upstream, self.one_way = upstream, one_way
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen))
        self.sock.listen(128)
        self.port = listen
        self.connections = 0
        self.lock = threading.Lock()  # guards the counters and the cut below
        self.down_bytes = 0
        self.cut_after = None  # downstream bytes of one connection after which it is cut
        self.cuts = []  # (connection's downstream bytes at the cut) for each cut made
        threading.Thread(target=self._accept, daemon=True).start()

    def arm_cut(self, after_bytes):
        """Zeroes the counters; with `after_bytes`, cuts one connection after that many
        downstream bytes (None: no cut)."""
        with self.lock:
            self.down_bytes, self.cut_after, self.cuts = 0, after_bytes, []

    def disarm(self):
        """No cut from now on; the counters go on."""
        with self.lock:
            self.cut_after = None

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client):
        time.sleep(self.one_way)  # the SYN travels too
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        down = {"sockets": (client, server), "bytes": 0}
        for a, b, link in ((client, server, None), (server, client, down)):
            q = queue.Queue()
            threading.Thread(target=self._read, args=(a, q), daemon=True).start()
            threading.Thread(target=self._write, args=(b, q, link), daemon=True).start()

    def _read(self, sock, q):
        while True:
            try:
                data = sock.recv(256 * KIB)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.one_way, data))
            if not data:
                return

    def _downstream(self, link, data):
        """Counts `data` on its way to the client; returns the part to send and whether the
        connection is to be cut after it."""
        with self.lock:
            reached = link["bytes"] + len(data)
            cut = self.cut_after is not None and reached >= self.cut_after
            if cut:
                data = data[: self.cut_after - link["bytes"]]
                self.cuts.append(self.cut_after)
                self.cut_after = None
            link["bytes"] += len(data)
            self.down_bytes += len(data)
        return data, cut

    @staticmethod
    def _cut(link):
        for s in link["sockets"]:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes this connection's other threads
            except OSError:
                pass
            s.close()

    def _write(self, sock, q, link):
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            cut = False
            if link is not None and data:
                data, cut = self._downstream(link, data)
            try:
                if not data and not cut:
                    sock.shutdown(socket.SHUT_WR)
                    return
                sock.sendall(data)
            except OSError:
                return
            if cut:
                self._cut(link)
                return

    def close(self):
        self.sock.close()


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
             manifest_puts=0, mounts=0, mounted=0, self_mounts=0, self_mounted=0, uploads_started=0, blob_puts=0, patches=0, tag_lists=0, pings=0,
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
            path_ = uri.split("?")[0]
            # Expected answers, not errors: a HEAD that misses, a 401 challenge, and the
            # tag list of a target repository that does not exist yet.
            expected_404 = status == 404 and (method == "HEAD" or path_.endswith("/tags/list"))
            if status >= 400 and not expected_404 and status != 401:
                s["errors"] += 1
            if path_ == "/v2/":
                s["pings"] += 1
            elif "/blobs/uploads/" in path_:
                if method == "POST" and "mount=" in uri:
                    # A mount from the repository itself asks "do you have it?" and opens
                    # an upload when not (image-migrator, where the registry supports it).
                    frm = urllib.parse.parse_qs(uri.split("?", 1)[1]).get("from", [""])[0]
                    if path_ == f"/v2/{frm}/blobs/uploads/":
                        s["self_mounts"] += 1
                        s["self_mounted"] += status == 201
                        continue
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




def blob_gets_of(path, digest):
    """(status, bytes written) of each GET of blob `digest` in a registry's access log; a
    GET cut short logs the bytes the registry wrote before the connection broke."""
    out = []
    if not path or not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            m = ACCESS.search(line)
            if m and m.group(1) == "GET" and m.group(2).split("?")[0].endswith(f"/blobs/{digest}"):
                out.append((int(m.group(3)), 0 if m.group(4) == "-" else int(m.group(4))))
    return out
