"""TLS termination (SPEC section 7, listen.tls): the real binary with a throwaway self-signed
certificate made by the openssl command, a Python TLS client verifying it, and the echo fake
behind. Covers proxying, X-Forwarded-Proto, keep-alive and pipelining over TLS, large bodies
both ways, plain HTTP and garbage on the TLS port, a key that does not match, and a certificate
renewed by SIGHUP (a broken one is not taken)."""

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, auth, sha


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 and its key; returns (cert, key) paths."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def config(env, cert="a.crt", key="a.key"):
    return """
listen: {address: 127.0.0.1, port: %(port)d, tls: {cert: %(tmp)s/%(cert)s, key: %(tmp)s/%(key)s}}
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
""" % dict(port=env.port, tmp=env.tmp, echo=env.echo_port, alice=sha(KEY_ALICE), cert=cert,
           key=key)


def der_sha256(pem_path):
    with open(pem_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = pgtest.Env(lambda env: (make_cert(env.tmp, "a"), config(env))[1])
        try:
            cls.env.start()
        except Exception:
            cls.env.stop()
            raise
        cls.cert = os.path.join(cls.env.tmp, "a.crt")

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def conn(self, cafile=None):
        c = pgtest.Conn(self.env.port)
        ctx = ssl.create_default_context(cafile=cafile or self.cert)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
        return c

    def get(self, path, method="GET", body=None, headers=None):
        c = self.conn()
        try:
            h = dict(auth(KEY_ALICE), Connection="close")
            h.update(headers or {})
            return c.request(method, path, h, body)
        finally:
            c.close()

    def test_health_and_proxy(self):
        r = self.get("/_gateway/health")
        self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'), r)
        r = self.get("/echo/a?x=1")
        self.assertEqual(r.status, 200, r)
        e = r.json()
        self.assertEqual((e["path"], e["query"]), ("/a", "x=1"))
        self.assertEqual([v for n, v in e["headers"] if n.lower() == "x-forwarded-proto"],
                         ["https"])

    def test_keepalive_and_pipelining(self):
        c = self.conn()
        try:
            for i in range(50):
                r = c.request("GET", "/echo/k%d" % i, auth(KEY_ALICE))
                self.assertEqual((r.status, r.json()["path"]), (200, "/k%d" % i))
            c.send(pgtest.build("GET", "/echo/p1", auth(KEY_ALICE)) +
                   pgtest.build("GET", "/echo/p2", auth(KEY_ALICE)))
            self.assertEqual(c.read_response().json()["path"], "/p1")
            self.assertEqual(c.read_response().json()["path"], "/p2")
        finally:
            c.close()

    def test_large_bodies(self):
        n = 8 << 20
        r = self.get("/echo/large?bytes=%d" % n)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), n)
        pattern = b"0123456789abcdef\n"
        self.assertEqual(r.body[:34], pattern * 2)
        body = bytes(range(256)) * 4096  # 1 MiB
        body = body.replace(b"\x00", b"z")
        r = self.get("/echo/up", method="POST", body=body.hex().encode(),
                     headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body"], body.hex())

    def test_plain_http_and_garbage_refused(self):
        for data in (b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(600)):
            s = socket.create_connection(("127.0.0.1", self.env.port), timeout=5)
            try:
                s.sendall(data)
                got = b""
                try:
                    while True:
                        d = s.recv(4096)
                        if not d:
                            break
                        got += d
                except ConnectionResetError:
                    pass
                self.assertNotIn(b"HTTP/1.1", got)
            finally:
                s.close()
        self.assertEqual(self.get("/_gateway/health").status, 200)

    def test_untrusted_certificate_fails_handshake(self):
        other, _ = make_cert(self.env.tmp, "untrusted")
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.conn(cafile=other)

    def test_zz_sighup_renews_certificate(self):
        # runs last (zz): it replaces the certificate the other tests trust
        make_cert(self.env.tmp, "b")
        with open(self.env.config, "w") as f:
            f.write(config(self.env, "b.crt", "b.key"))
        self.env.gw.send_signal(signal.SIGHUP)
        new = os.path.join(self.env.tmp, "b.crt")
        end = time.monotonic() + 5
        while True:
            try:
                c = self.conn(cafile=new)
                break
            except ssl.SSLCertVerificationError:
                self.assertLess(time.monotonic(), end)
                time.sleep(0.05)
        self.assertEqual(hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest(),
                         der_sha256(new))
        self.assertEqual(c.request("GET", "/_gateway/health", {}).status, 200)
        c.close()
        # a broken certificate on reload: logged, the one in use stays
        with open(os.path.join(self.env.tmp, "bad.crt"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        with open(self.env.config, "w") as f:
            f.write(config(self.env, "bad.crt", "b.key"))
        self.env.gw.send_signal(signal.SIGHUP)
        end = time.monotonic() + 5
        while b"keeping the certificate in use" not in self.env.gateway_output():
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        c = self.conn(cafile=new)
        self.assertEqual(c.request("GET", "/_gateway/health", {}).status, 200)
        c.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OverLimit(unittest.TestCase):
    def test_503_before_handshake_neither_spins_nor_lingers(self):
        """Over max_connections, the 503 waits for a handshake the caller never starts: the
        worker must not spin on it, and client_timeout (1 s) must close the connection."""
        def cfg(env):
            make_cert(env.tmp, "a")
            return config(env).replace("access_log: off", "access_log: off\nlimits: "
                                       "{max_connections: 1, client_timeout: 1s}")
        env = pgtest.Env(cfg).start()
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(env.tmp, "a.crt"))
            held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=5),
                                   server_hostname="127.0.0.1")
            # an over-limit caller that does shake hands gets the 503 envelope
            c = pgtest.Conn(env.port)
            c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
            c.send(pgtest.build("GET", "/_gateway/health"))
            r = c.read_response()
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["error"]["status"], 503)
            c.close()
            silent = socket.create_connection(("127.0.0.1", env.port), timeout=5)
            t0, cpu0 = time.monotonic(), cpu_seconds(env.gw.pid)
            try:
                self.assertEqual(silent.recv(1), b"")  # closed by the gateway
            except ConnectionResetError:
                pass
            waited = time.monotonic() - t0
            self.assertLess(waited, 4.0)
            # a spinning worker burns about one CPU second per second of waiting
            self.assertLess(cpu_seconds(env.gw.pid) - cpu0, 0.3 * max(waited, 1.0))
            silent.close()
            held.close()
        finally:
            env.stop()


class Startup(unittest.TestCase):
    def test_key_not_matching_certificate(self):
        env = pgtest.Env(lambda e: e.tmp)
        try:
            make_cert(env.tmp, "a")
            make_cert(env.tmp, "b")
            path = os.path.join(env.tmp, "pg.yaml")
            with open(path, "w") as f:
                f.write(config(env, "a.crt", "b.key"))
            for args in (["-c", path], ["--check", "-c", path]):
                p = subprocess.run([pgtest.PANELGATE] + args, capture_output=True, text=True,
                                   timeout=20)
                self.assertEqual(p.returncode, 1, (args, p))
                self.assertIn("the key does not belong to the certificate", p.stderr)
            with open(path, "w") as f:
                f.write(config(env, "a.crt", "a.key"))
            p = subprocess.run([pgtest.PANELGATE, "--check", "-c", path], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(p.returncode, 0, p)
        finally:
            env.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
