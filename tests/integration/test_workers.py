"""workers: 2 behave as one gateway (SPEC sections 4.1 and 7, issue 11): one bucket, one login,
one cool-down for the whole process, a reload every worker applies, a drain every worker
finishes. Connections land on either worker (SO_REUSEPORT); /_gateway/status shows how many
each holds, so the tests check that both took part."""

import signal
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, KEY_BOB, Conn, auth, free_port, parallel, sha

OPENPANEL = free_port()


def config(env, extra_consumer=""):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
workers: 2
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"], admin: true}
%(extra)s
upstreams:
  - name: burst5
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: wk-test-token}
    rate_limit: {rate: 1/min, burst: 5}
  - name: cool
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: wk-test-token}
  - name: free
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: wk-test-token}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
""" % dict(port=env.port, alice=sha(KEY_ALICE), echo=env.echo_port, openpanel=OPENPANEL,
           extra=extra_consumer)


def open_spread(tc, env, n):
    """n open connections that both workers hold some of (each has sent one request)."""
    conns = []
    for _ in range(n):
        c = env.conn()
        r = c.request("GET", "/_gateway/health", {})
        tc.assertEqual(r.status, 200)
        conns.append(c)
    st = env.get("/_gateway/status").json()  # on one more connection
    workers, per = st["workers"], st["worker_connections"]
    tc.assertEqual(workers, 2)
    tc.assertEqual(len(per), 2)
    tc.assertGreaterEqual(sum(per), n)
    tc.assertTrue(all(k >= 1 for k in per), per)
    return conns


class Workers(pgtest.EnvCase):
    CONFIG = staticmethod(config)
    ENV_KW = {"fake_args": ["--openpanel", str(OPENPANEL)]}

    def test_bucket_is_shared(self):
        """24 simultaneous requests on 24 connections against burst 5: exactly 5 pass, and the
        panel sees exactly 5."""
        self.env.fake_reset()
        rs = parallel(24, lambda i: self.env.get("/burst5/x?i=%d" % i))
        codes = sorted(r.status for r in rs)
        self.assertEqual(codes, [200] * 5 + [429] * 19)
        self.assertEqual(self.env.fake_stats()["hits"], 5)
        for r in rs:
            if r.status == 429:
                self.assertEqual(r.json()["error"]["code"], "rate_limited")
                self.assertIsNotNone(r.header("retry-after"))

    def test_one_login(self):
        """24 simultaneous cold requests to a panel whose login takes 0.8 s: one login, 24 x
        200."""
        pgtest.fake_call(OPENPANEL, "POST", "/_fake/reset")
        pgtest.fake_call(OPENPANEL, "POST", "/_fake/config?login_delay_ms=800")
        rs = parallel(24, lambda i: self.env.get("/openpanel/api/users?i=%d" % i))
        self.assertEqual([r.status for r in rs], [200] * 24)
        st = pgtest.fake_call(OPENPANEL, "GET", "/_fake/stats")
        self.assertEqual(st["logins"], 1)
        self.assertEqual(st["hits"], 25)  # 24 requests and the one login
        m = self.env.get("/_gateway/metrics")
        self.assertIn(b'panelgate_upstream_logins_total{upstream="openpanel",result="ok"} 1\n',
                      m.body)
        self.assertIn(b'panelgate_requests_total{upstream="openpanel",method="GET",'
                      b'status="200"} 24\n', m.body)

    def test_cooldown_is_shared(self):
        """A panel 429 with Retry-After: 3 seen by one worker: 12 simultaneous requests on new
        connections all get 429 locally; the panel sees none of them."""
        self.env.fake_reset()
        c = Conn(self.env.echo_port)
        try:
            r = c.request("POST", "/_fake/config?ratelimit=1&retry_after=3",
                          {"Connection": "close"}, b"")
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        first = self.env.get("/cool/x")
        self.assertEqual(first.status, 429)
        self.assertEqual(self.env.fake_stats()["hits"], 1)
        rs = parallel(12, lambda i: self.env.get("/cool/x?i=%d" % i))
        self.assertEqual([r.status for r in rs], [429] * 12)
        for r in rs:
            self.assertEqual(r.json()["error"]["code"], "rate_limited")
            self.assertIn(r.header("retry-after"), ("1", "2", "3"))
        self.assertEqual(self.env.fake_stats()["hits"], 1)

    def test_reload_reaches_both_workers(self):
        """SIGHUP adds a consumer; it works on connections served by either worker."""
        conns = open_spread(self, self.env, 16)
        try:
            with open(self.env.config, "w") as f:
                f.write(config(self.env, '  - {name: bob, key: "%s", allow: [free]}' %
                               sha(KEY_BOB)))
            self.env.gw.send_signal(signal.SIGHUP)
            # each worker switches on its own loop as soon as it looks at its inbox: the open
            # connections (on both) all take bob within moments, and keep taking him
            deadline = time.time() + 5
            for c in conns:
                while True:
                    r = c.request("GET", "/free/y", auth(KEY_BOB))
                    if r.status == 200 or time.time() > deadline:
                        break
                    time.sleep(0.02)
                self.assertEqual(r.status, 200, r)
            for c in conns:
                self.assertEqual(c.request("GET", "/free/z", auth(KEY_BOB)).status, 200)
        finally:
            for c in conns:
                c.close()


class Drain(unittest.TestCase):
    def test_sigterm_drains_both_workers(self):
        """SIGTERM with slow requests in flight on both workers: every one finishes 200, new
        connections are refused, and the process exits 0."""
        env = pgtest.Env(config).start()
        try:
            conns = open_spread(self, env, 12)
            for c in conns:
                c.send(pgtest.build("GET", "/free/slow?delay_ms=1500", auth(KEY_ALICE)))
            time.sleep(0.4)  # every request has reached the panel
            t0 = time.time()
            env.gw.send_signal(signal.SIGTERM)
            for c in conns:
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {"slow": True})
                c.close()
            self.assertEqual(env.gw.wait(timeout=10), 0)
            self.assertLess(time.time() - t0, 5)
            with self.assertRaises(OSError):
                Conn(env.port, timeout=1).request("GET", "/_gateway/health", {})
        finally:
            env.stop()


if __name__ == "__main__":
    pgtest.main()
