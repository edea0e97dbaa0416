"""Streaming through the real binary (SPEC section 2): bytes flow as they arrive, with
back-pressure, and memory stays bounded for a huge body to a slow reader."""

import socket
import time

import pgtest
from pgtest import KEY_ALICE, auth, sha


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: off
limits: {client_timeout: 10s}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    timeout: 5s
    auth: {type: static, bearer: test-stream-token}
""" % dict(port=env.port, echo=env.echo_port, alice=sha(KEY_ALICE))


class Stream(pgtest.EnvCase):
    CONFIG = staticmethod(config)

    def wait_inflight(self, want, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            n = self.env.fake_stats()["inflight"]
            if n == want:
                return n
            time.sleep(0.05)
        return self.env.fake_stats()["inflight"]

    def test_first_chunk_before_upstream_finishes(self):
        c = self.env.conn()
        try:
            c.send(pgtest.build("GET", "/echo/stream?n=4&delay_ms=400", auth(KEY_ALICE)))
            # read the head and the first chunk only
            status = c._line()
            self.assertIn(b" 200 ", status)
            head = []
            while True:
                line = c._line()
                if not line:
                    break
                head.append(line.lower())
            self.assertIn(b"transfer-encoding: chunked", head)
            size = int(c._line(), 16)
            first = c._exact(size)
            self.assertEqual(first, b'{"i":0}\n')
            # the fake is still sending the rest: the gateway did not wait for the whole body
            self.assertEqual(self.env.fake_stats()["inflight"], 1)
            c._line()
            rest = b""
            while True:
                size = int(c._line(), 16)
                if size == 0:
                    c._line()
                    break
                rest += c._exact(size)
                c._line()
            self.assertEqual(rest, b'{"i":1}\n{"i":2}\n{"i":3}\n')
            # the connection is still usable after a streamed answer
            r = c.request("GET", "/echo/after", auth(KEY_ALICE))
            self.assertEqual(r.json()["path"], "/after")
        finally:
            c.close()

    def test_caller_leaves_mid_stream(self):
        c = self.env.conn()
        c.send(pgtest.build("GET", "/echo/stream?n=100&delay_ms=50", auth(KEY_ALICE)))
        c._line()
        self.assertEqual(self.env.fake_stats()["inflight"], 1)
        c.close()
        # the gateway drops the upstream transfer too
        self.assertEqual(self.wait_inflight(0), 0)
        r = self.env.get("/echo/still-alive")
        self.assertEqual(r.status, 200)

    def test_large_known_length(self):
        n = 5 * 1024 * 1024 + 3
        r = self.env.get("/echo/large?bytes=%d" % n)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), str(n))
        self.assertIsNone(r.header("transfer-encoding"))
        pat = b"0123456789abcdef\n"
        self.assertEqual(r.body, (pat * (n // len(pat) + 1))[:n])

    def test_256mib_to_slow_reader_bounded_rss(self):
        total = 256 * 1024 * 1024
        s = socket.create_connection(("127.0.0.1", self.env.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            s.sendall(pgtest.build("GET", "/echo/large?bytes=%d" % total,
                                   dict(auth(KEY_ALICE), Connection="close")))
            got = 0
            head = b""
            peak = 0
            reads = 0
            while True:
                d = s.recv(32768)
                if not d:
                    break
                if not head:
                    head, _, d = d.partition(b"\r\n\r\n")
                    self.assertIn(b"200 OK", head)
                got += len(d)
                reads += 1
                if reads % 64 == 0:
                    peak = max(peak, self.env.rss_kib())
                if reads % 4 == 0:
                    time.sleep(0.001)  # the slow reader: the upstream is much faster than this
            self.assertEqual(got, total)
        finally:
            s.close()
        with open("/proc/%d/status" % self.env.gw.pid) as f:
            hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
        print("256 MiB to a slow reader: peak sampled RSS %d KiB, VmHWM %d KiB" % (peak, hwm))
        if not pgtest.SANITIZED:
            self.assertLess(peak, 64 * 1024)
            self.assertLess(hwm, 64 * 1024)


if __name__ == "__main__":
    pgtest.main()
