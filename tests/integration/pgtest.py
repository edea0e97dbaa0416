"""pgtest -- harness for integration tests: starts tests/fakepanels and the real panelgate binary
on 127.0.0.1 with a generated config, and talks raw HTTP/1.1 to them. Everything started is
stopped at exit, also when a test fails. Standard library only."""

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

PANELGATE = os.environ.get("PANELGATE", "build/panelgate")
FAKEPANELS = os.environ.get("FAKEPANELS", "build/tests/fakepanels")

# obviously fake test keys; the config holds only their sha256
# under ASan/UBSan memory figures mean nothing: tests skip RSS bounds there
SANITIZED = os.environ.get("PG_SANITIZED", "OFF") in ("ON", "1", "TRUE")

# PG_UPSTREAM_HOST=localhost: upstream urls name the fakes by a host name, so libcurl serves
# them instead of the gateway's own HTTP/1.1 client (which takes IP addresses only); ctest runs
# the suites that talk to upstreams both ways
UPSTREAM_HOST = os.environ.get("PG_UPSTREAM_HOST", "")


# PG_TEST_WORKERS=N: every config that does not name its workers runs N of them, so each suite
# also checks that N event-loop threads behave as one gateway (deploy/test.sh does this under
# ThreadSanitizer)
TEST_WORKERS = os.environ.get("PG_TEST_WORKERS", "")


def upstream_host(config_text):
    """The config with every upstream url's 127.0.0.1 replaced by PG_UPSTREAM_HOST (if set), and
    `workers: PG_TEST_WORKERS` (if set) where it names none."""
    if TEST_WORKERS and not re.search(r"(?m)^workers:", config_text):
        config_text = "workers: %d\n%s" % (int(TEST_WORKERS), config_text.lstrip("\n"))
    if not UPSTREAM_HOST:
        return config_text
    return re.sub(r"(?m)^(\s+(?:- )?url: http://)127\.0\.0\.1:", r"\g<1>%s:" % UPSTREAM_HOST,
                  config_text)


KEY_ALICE = "pgk_test_alice_0000000000000000000000000000"
KEY_BOB = "pgk_test_bob_00000000000000000000000000000000"
KEY_CAROL = "pgk_test_carol_0000000000000000000000000000"


def sha(key):
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


_GIVEN = set()  # ports handed out in this process: the kernel may offer a closed one again


def free_port():
    """A port nothing listens on now, never the same one twice in this process (two fakes
    handed one port fail to start: seen in CI)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _GIVEN:
            _GIVEN.add(p)
            return p


def wait_line(proc, want, timeout=10.0):
    """Read proc's stdout until a line equal to want, bounded by timeout."""
    end = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if want.encode() + b"\n" in buf:
                return
        if proc.poll() is not None:
            break
    raise RuntimeError("%s did not print %r (got %r)" % (proc.args, want, buf[-400:]))


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("process exited with %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not open" % port)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in order
        self.body = body

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.body[:300])


class Conn:
    """One raw HTTP/1.1 connection: send bytes, read framed responses."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, head=False):
        line = self._line()
        parts = line.decode("latin-1").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            n, v = line.decode("latin-1").split(":", 1)
            headers.append((n, v.strip()))
        resp = Response(status, reason, headers, b"")
        if status == 100:
            return self.read_response(head)
        if head or status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                body += self._exact(size)
                self._line()
            resp.body = body
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, method, path, headers=None, body=None, head=False):
        self.send(build(method, path, headers, body))
        return self.read_response(head=head or method == "HEAD")

    def closed_by_peer(self, timeout=3.0):
        """True if the peer closes (EOF or reset) within timeout, discarding any bytes."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def build(method, path, headers=None, body=None):
    h = {"Host": "127.0.0.1"}
    h.update(headers or {})
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in h):
        h["Content-Length"] = str(len(body))
    out = "%s %s HTTP/1.1\r\n" % (method, path)
    for k, v in h.items():
        out += "%s: %s\r\n" % (k, v)
    out += "\r\n"
    data = out.encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def echo_headers(echo, name):
    """The values of header name (any case) in an echo panel's answer, in order."""
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


def auth(key):
    return {"Authorization": "Bearer " + key}


def stop_proc(p, timeout=10):
    """SIGTERM p if it runs, SIGKILL it after timeout seconds, close its stdout pipe; its exit
    status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p.stdout:
        p.stdout.close()
    return p.returncode


class Env:
    """Fake panels + panelgate. Use as a context manager or via setUpClass/tearDownClass."""

    def __init__(self, config_fn, fake_args=None, gw_preexec=None):
        self.tmp = tempfile.mkdtemp(prefix="pgtest-")
        self.procs = []
        self.echo_port = free_port()
        self.refuse_port = free_port()
        self.port = free_port()
        self.config_fn = config_fn
        self.fake_args = fake_args or []
        self.gw_preexec = gw_preexec  # run in the gateway's child before exec (e.g. setrlimit)

    def start(self):
        try:
            with open(os.path.join(self.tmp, "fake.err"), "wb") as ferr:
                fake = subprocess.Popen(
                    [FAKEPANELS, "--echo", str(self.echo_port), "--refuse", str(self.refuse_port)]
                    + self.fake_args, stdout=subprocess.PIPE, stderr=ferr)
            self.procs.append(fake)
            wait_line(fake, "ready")
            self.config = os.path.join(self.tmp, "pg.yaml")
            with open(self.config, "w") as f:
                f.write(upstream_host(self.config_fn(self)))
            self.gw_out = open(os.path.join(self.tmp, "gw.out"), "wb")
            self.gw_err = open(os.path.join(self.tmp, "gw.err"), "wb")
            self.gw = subprocess.Popen([PANELGATE, "-c", self.config],
                                       stdout=self.gw_out, stderr=self.gw_err,
                                       preexec_fn=self.gw_preexec)
            self.procs.append(self.gw)
            wait_port(self.port, self.gw)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop everything; raise if panelgate did not exit 0 (a sanitizer report, a crash)."""
        bad = None
        for p in reversed(self.procs):
            if stop_proc(p) != 0:
                bad = "%s exited with %d" % (p.args[0], p.returncode)
        self.procs = []
        for f in ("gw_out", "gw_err"):
            if hasattr(self, f):
                getattr(self, f).close()
        keep = os.environ.get("PG_KEEP_TMP")
        if bad:
            err = ""
            for name in ("fake.err", "gw.err"):  # the gateway's may not exist: the fake failed
                try:
                    with open(os.path.join(self.tmp, name), "rb") as f:
                        err += "--- %s\n%s" % (name, f.read()[-4000:].decode("latin-1"))
                except OSError:
                    pass
            if not keep:
                shutil.rmtree(self.tmp, ignore_errors=True)
            raise AssertionError(bad + "\n" + err)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def conn(self, timeout=10.0):
        return Conn(self.port, timeout)

    def get(self, path, headers=None, key=KEY_ALICE, method="GET", body=None):
        c = self.conn()
        try:
            h = dict(auth(key)) if key else {}
            h.update(headers or {})
            h["Connection"] = "close"
            return c.request(method, path, h, body)
        finally:
            c.close()

    def fake_stats(self):
        c = Conn(self.echo_port)
        try:
            return c.request("GET", "/_fake/stats", {"Connection": "close"}).json()
        finally:
            c.close()

    def fake_reset(self):
        c = Conn(self.echo_port)
        try:
            c.request("POST", "/_fake/reset", {"Connection": "close"}, b"")
        finally:
            c.close()

    def rss_kib(self, pid=None):
        with open("/proc/%d/status" % (pid or self.gw.pid)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def gateway_output(self):
        self.gw_out.flush()
        self.gw_err.flush()
        with open(os.path.join(self.tmp, "gw.out"), "rb") as f:
            out = f.read()
        with open(os.path.join(self.tmp, "gw.err"), "rb") as f:
            return out + f.read()


class EnvCase(unittest.TestCase):
    """Tests sharing one Env: a subclass sets CONFIG = staticmethod(fn of the env) and may set
    ENV_KW (more Env arguments)."""

    CONFIG = None
    ENV_KW = {}

    @classmethod
    def setUpClass(cls):
        cls.env = Env(cls.CONFIG, **cls.ENV_KW).start()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()


def parallel(n, fn):
    """fn(i) for i in 0..n-1, each on its own thread; the results in order. The first
    exception raised by any of them is raised here."""
    out = [None] * n
    errs = []

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 -- reported below
            errs.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    if errs:
        raise errs[0]
    return out


def fake_call(port, method, path):
    """A fake panel's /_fake/ endpoint on port (POST with an empty body): its JSON answer,
    asserting 200."""
    c = Conn(port)
    try:
        r = c.request(method, path, {"Connection": "close"}, b"" if method == "POST" else None)
        assert r.status == 200, (port, path, r)
        return r.json()
    finally:
        c.close()


def assert_refused(tc, env, data, status):
    """data on a fresh connection is answered status with the envelope, the connection is
    closed, and no byte of it reached the (echo) panel. Returns the response."""
    env.fake_reset()
    c = env.conn()
    try:
        c.send(data)
        r = c.read_response()
        tc.assertEqual(r.status, status, (data, r))
        tc.assertEqual(r.json()["error"]["status"], status)
        tc.assertEqual(r.header("connection"), "close")
        tc.assertTrue(c.closed_by_peer())
    finally:
        c.close()
    tc.assertEqual(env.fake_stats()["hits"], 0, data)
    return r


class FakeDns:
    """A DNS server on 127.0.0.1 (UDP): `names` maps a name to the IPv4 address (or list of
    them) it answers with TTL 1; any other name is NXDOMAIN. Counts the queries; each answer
    waits `delay` seconds (a slow resolver)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.names = {}
        self.queries = 0
        self.delay = 0.0
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                q, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            if self.delay:
                time.sleep(self.delay)
            qid, qd = q[:2], q[12:]
            labels, i = [], 0
            while qd[i]:
                labels.append(qd[i + 1:i + 1 + qd[i]].decode())
                i += 1 + qd[i]
            question = qd[:i + 5]  # name, its end, type and class
            qtype = struct.unpack("!H", qd[i + 1:i + 3])[0]
            ip = self.names.get(".".join(labels).lower())
            ips = ip if isinstance(ip, list) else [ip] if ip else []
            if ips and qtype == 1:
                ans = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) +
                               socket.inet_aton(x) for x in ips)
                head = qid + struct.pack("!HHHHH", 0x8180, 1, len(ips), 0, 0)
            else:
                ans = b""
                head = qid + struct.pack("!HHHHH", 0x8183 if not ip else 0x8180, 1, 0, 0, 0)
            self.sock.sendto(head + question + ans, peer)

    def stop(self):
        self.running = False
        self.sock.close()


def main():
    unittest.main(verbosity=2)
