"""https upstreams (SPEC section 7: upstream url, tls.verify, tls.ca_file; issue 13). A panel on
TLS (a Python stdlib server here, certificates made with the openssl command): its chain and
host name are verified against tls.ca_file; a certificate for another name, an expired one and
one from an unknown CA are each refused with 502 upstream_unavailable, and the log says why;
tls.verify: false works and is warned about at start; a new connection resumes the TLS session
an earlier one made (checked at the fake)."""

import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, free_port, sha

OPENSSL = shutil.which("openssl")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_certs(d):
    """ca (trusted), good (localhost), other (otherhost), expired (localhost), rogue (localhost,
    self-signed: an unknown CA)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-subj", "/CN=pgtest-ca", "-days", "2", cwd=d)
    for name, cn, days in (("good", "localhost", "2"), ("other", "otherhost", "2"),
                           ("expired", "localhost", "-1"), ("panel", "panel.test", "2")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % cn)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", days, "-extfile",
                name + ".ext", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
            "rogue.crt", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-days", "2", cwd=d)


class Panel:
    """A TLS panel: answers JSON, counts connections and resumed sessions."""

    def __init__(self, d, name, host="127.0.0.1", port=None):
        self.port = port or free_port()
        self.connections = 0
        self.resumed = 0
        panel = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with lock:
                    panel.connections += 1
                    panel.resumed += 1 if self.connection.session_reused else 0

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                got = self.rfile.read(n)
                body = json.dumps({"len": len(got), "sum": sum(got) % 65521}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with lock:
                    panel.hits += 1
                if self.path.startswith("/slow"):
                    time.sleep(0.5)
                if self.path.startswith("/big"):
                    # 2 MiB (or 16 MiB: more than the sockets' buffers hold), many records
                    body = bytes(range(256)) * (65536 if "huge" in self.path else 8192)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                body = json.dumps({"success": True, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, name + ".crt"), os.path.join(d, name + ".key"))
        self.hits = 0
        self.httpd = http.server.ThreadingHTTPServer((host, self.port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                            do_handshake_on_connect=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class UpstreamTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pgtls-")
        cls.panels = {}
        try:
            make_certs(cls.dir)
            for name in ("good", "other", "expired", "rogue"):
                cls.panels[name] = Panel(cls.dir, name)
            cls.env = pgtest.Env(cls.config).start()
        except Exception:
            for p in cls.panels.values():
                p.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.stop()
        finally:
            for p in cls.panels.values():
                p.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def config(cls, env):
        ca = os.path.join(cls.dir, "ca.crt")
        ups = ""
        for up, panel, tls in (("ok", "good", "{ca_file: %s}" % ca),
                               ("wrong_name", "other", "{ca_file: %s}" % ca),
                               ("expired", "expired", "{ca_file: %s}" % ca),
                               ("unknown_ca", "rogue", "{ca_file: %s}" % ca),
                               ("unchecked", "rogue", "{verify: false}")):
            ups += ("  - name: %s\n    url: https://localhost:%d\n    tls: %s\n"
                    "    auth: {type: static, bearer: fake-tls-bearer}\n"
                    % (up, cls.panels[panel].port, tls))
        return """
listen: {address: 127.0.0.1, port: %(port)d}
workers: 1      # TLS sessions are kept per worker: the resumption check needs one
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"], admin: true}
upstreams:
%(ups)s""" % dict(port=env.port, alice=sha(KEY_ALICE), ups=ups)

    def test_verified(self):
        r = self.env.get("/ok/x?a=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"success": True, "path": "/x?a=1"})

    def test_large_both_ways(self):
        """A 3 MiB upload and a 2 MiB answer over TLS arrive whole (partial writes, many
        records, OpenSSL holding decrypted bytes between reads)."""
        body = bytes((i * 7) % 251 for i in range(3 << 20))
        r = self.env.get("/ok/up", method="POST", body=body,
                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"len": len(body), "sum": sum(body) % 65521})
        r = self.env.get("/ok/big")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, bytes(range(256)) * 8192)

    def test_slow_reader(self):
        """A caller that reads nothing for a while, then all of a 16 MiB answer: the gateway
        pauses the upstream once its buffers are full and resumes it (bytes OpenSSL decrypted
        meanwhile are not lost), and every byte arrives in order."""
        import socket
        sock = socket.create_connection(("127.0.0.1", self.env.port), timeout=10)
        try:
            sock.sendall(pgtest.build("GET", "/ok/big?huge", dict(pgtest.auth(KEY_ALICE),
                                                                  Connection="close")))
            time.sleep(1)  # the kernel's buffers fill, the gateway pauses the upstream
            chunks = []
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
        self.assertEqual(len(body), 256 * 65536)
        self.assertEqual(body, bytes(range(256)) * 65536)

    def refused(self, up, why):
        r = self.env.get("/%s/x" % up)
        self.assertEqual(r.status, 502, r)
        e = r.json()["error"]
        self.assertEqual(e["code"], "upstream_unavailable")
        self.assertIn("TLS handshake", e["message"])
        deadline = time.time() + 5
        # the own client says it in OpenSSL's words, libcurl in its own: either will do
        while not any(w in self.env.gateway_output().decode("latin-1") for w in why):
            self.assertLess(time.time(), deadline, "log does not say %r" % (why,))
            time.sleep(0.05)

    def test_wrong_name(self):
        self.refused("wrong_name", ("hostname mismatch", "subject name matches"))

    def test_expired(self):
        self.refused("expired", ("certificate has expired",))

    def test_unknown_ca(self):
        self.refused("unknown_ca", ("self-signed certificate",))

    def test_verify_false(self):
        """The rogue certificate passes with verify: false, and the start log warned."""
        self.assertEqual(self.env.get("/unchecked/y").status, 200)
        self.assertIn(b"upstream unchecked: tls.verify is false", self.env.gateway_output())

    def test_session_resumed(self):
        """A second connection to the panel resumes the TLS session the first one made."""
        p = self.panels["good"]
        self.assertEqual(self.env.get("/ok/warm").status, 200)
        before = (p.connections, p.resumed)
        # two slow requests at once: one keeps the pooled connection, the other opens one
        rs = pgtest.parallel(2, lambda i: self.env.get("/ok/slow?i=%d" % i))
        self.assertEqual([r.status for r in rs], [200, 200])
        self.assertGreaterEqual(p.connections - before[0], 1)
        self.assertGreaterEqual(p.resumed - before[1], 1, (p.connections, p.resumed))


@unittest.skipUnless(OPENSSL, "the openssl command is not installed")
class DnsFollow(unittest.TestCase):
    """An https upstream by name, resolved on the loop through `resolver:` (SPEC 7): the
    gateway follows the name to a new address once the TTL runs out, without a reload, skips a
    dead address of an answer, and a name that does not resolve is 502 upstream_unavailable."""

    def test_follows_the_name(self):
        d = tempfile.mkdtemp(prefix="pgdns-")
        dns = a = b = env = None
        try:
            make_certs(d)
            a = Panel(d, "panel", "127.0.0.1")
            b = Panel(d, "panel", "127.0.0.2", a.port)
            dns = pgtest.FakeDns()
            dns.names["panel.test"] = "127.0.0.1"

            def config(e):
                return """
listen: {address: 127.0.0.1, port: %(port)d}
workers: 1
access_log: off
resolver: ["127.0.0.1:%(dns)d"]
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: moving
    url: https://panel.test:%(panel)d
    tls: {ca_file: %(ca)s}
    auth: {type: static, bearer: fake-dns-bearer}
  - name: nowhere
    url: https://nowhere.test:%(panel)d
    tls: {ca_file: %(ca)s}
    auth: {type: static, bearer: fake-dns-bearer}
""" % dict(port=e.port, dns=dns.port, alice=sha(KEY_ALICE), panel=a.port,
                    ca=os.path.join(d, "ca.crt"))
            env = pgtest.Env(config).start()
            self.assertEqual(env.get("/moving/x").status, 200)
            self.assertEqual((a.hits, b.hits), (1, 0))
            dns.names["panel.test"] = "127.0.0.2"
            time.sleep(1.3)  # the answer's TTL (1 s) runs out
            self.assertEqual(env.get("/moving/y").status, 200)
            self.assertEqual((a.hits, b.hits), (1, 1))
            # an answer with a dead address first: it is skipped, every request gets through
            dns.names["panel.test"] = ["127.0.0.3", "127.0.0.1"]
            time.sleep(1.3)
            for i in range(4):
                self.assertEqual(env.get("/moving/z?i=%d" % i).status, 200)
            self.assertEqual(a.hits + b.hits, 6)
            r = env.get("/nowhere/x")
            self.assertEqual(r.status, 502, r)
            self.assertEqual(r.json()["error"]["code"], "upstream_unavailable")
            self.assertIn("could not be resolved", r.json()["error"]["message"])
            self.assertGreaterEqual(dns.queries, 3)
        finally:
            for x in (env,):
                if x:
                    x.stop()
            for x in (a, b, dns):
                if x:
                    x.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    pgtest.main()
