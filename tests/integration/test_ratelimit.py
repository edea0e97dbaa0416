"""Rate-limit shielding through the real binary (SPEC section 4): reject and queue modes,
route and consumer buckets, panel cool-downs, RateLimit headers, /_gateway/me, accuracy."""

import threading
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, KEY_BOB, KEY_CAROL, Conn, auth, free_port, sha

KEY_DAN = "pgk_test_dan_00000000000000000000000000000000"
NAVIREC = free_port()
NAVIXY = free_port()


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: off
limits: {max_connections: 2000}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"], admin: true}
  - {name: bob, key: "%(bob)s", allow: ["*"], rate_limit: {rate: 3/min, burst: 3}}
  - {name: dan, key: "%(dan)s", allow: [free],
     rate_limit: {rate: 30/min, burst: 1, mode: queue, max_wait: 5s}}
  - {name: carol, key: "%(carol)s", allow: [free, "reject:GET"],
     rate_limit: {rate: 3/min, burst: 3}}
upstreams:
  - name: reject
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    rate_limit: {rate: 1/min, burst: 10}
  - name: queue
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    rate_limit: {rate: 20/s, burst: 20, mode: queue, max_wait: 5s}
  - name: short
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    rate_limit: {rate: 1/s, burst: 1, mode: queue, max_wait: 500ms}
  - name: routed
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    routes: [{path: /trips/, rate_limit: {rate: 2/min, burst: 2}}]
  - name: accurate
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    rate_limit: {rate: 20/s, burst: 20}
  - name: metered
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
    rate_limit: {rate: 1/min, burst: 2}
  - name: free
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: rl-test-token}
  - name: navirec
    url: http://127.0.0.1:%(navirec)d
    auth: {type: navirec_token, token: fake-navirec-token, api_version: "1.33.0"}
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
""" % dict(port=env.port, alice=sha(KEY_ALICE), bob=sha(KEY_BOB), carol=sha(KEY_CAROL), dan=sha(KEY_DAN), echo=env.echo_port,
           navirec=NAVIREC, navixy=NAVIXY)


def fake(port, method, path):
    c = Conn(port)
    try:
        return c.request(method, path, {"Connection": "close"},
                         b"" if method == "POST" else None).json()
    finally:
        c.close()


def parallel(n, fn):
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        c = Conn(pgtest_env.port)
        try:
            barrier.wait(10)
            out[i] = fn(c, i)
        finally:
            c.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


pgtest_env = None


class RateLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global pgtest_env
        cls.env = pgtest.Env(config, fake_args=["--navirec", str(NAVIREC),
                                                "--navixy", str(NAVIXY)]).start()
        pgtest_env = cls.env

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def setUp(self):
        self.env.fake_reset()

    def test_reject_burst_plus_5(self):
        rs = parallel(15, lambda c, i: c.request("GET", "/reject/x?i=%d" % i, auth(KEY_ALICE)))
        codes = sorted(r.status for r in rs)
        self.assertEqual(codes, [200] * 10 + [429] * 5)
        self.assertEqual(self.env.fake_stats()["hits"], 10)
        for r in rs:
            if r.status == 429:
                e = r.json()["error"]
                self.assertEqual(e["code"], "rate_limited")
                self.assertEqual(e["retry_after"], int(r.header("retry-after")))
                self.assertGreaterEqual(e["retry_after"], 1)
                self.assertEqual(r.header("ratelimit-remaining"), "0")
        ok = [r for r in rs if r.status == 200]
        self.assertTrue(all(r.header("ratelimit-limit") == "10" for r in ok))
        self.assertTrue(all(r.header("ratelimit-policy") == '"upstream";q=10;w=600' for r in ok))

    def test_queue_smooths_burst(self):
        t0 = time.monotonic()
        rs = parallel(60, lambda c, i: c.request("GET", "/queue/x?i=%d" % i, auth(KEY_ALICE)))
        took = time.monotonic() - t0
        self.assertEqual([r.status for r in rs], [200] * 60)
        times = self.env.fake_stats()["times_ms"]
        self.assertEqual(len(times), 60)
        first = times[0]
        for i, t in enumerate(sorted(times)):
            # never more than burst + rate x elapsed (1 token of slack for the ms rounding)
            self.assertLessEqual(i + 1, 20 + 20 * (t - first) / 1000.0 + 1, (i, t - first))
        self.assertGreater(sorted(times)[-1] - first, 1800)  # spread over about 2-3 s
        self.assertLess(took, 6)

    def test_queue_overflow_past_max_wait(self):
        rs = parallel(5, lambda c, i: c.request("GET", "/short/x", auth(KEY_ALICE)))
        codes = sorted(r.status for r in rs)
        # one token now; the next comes after 1 s, past max_wait 500ms: the rest are refused
        self.assertEqual(codes, [200, 429, 429, 429, 429])
        self.assertEqual(self.env.fake_stats()["hits"], 1)

    def test_queued_caller_leaving_takes_nothing(self):
        time.sleep(1.1)  # a token for "short"
        c1 = self.env.conn()
        c1.request("GET", "/short/a", auth(KEY_ALICE))  # takes the token
        c2 = self.env.conn()
        c2.send(pgtest.build("GET", "/short/b", auth(KEY_ALICE)))  # queued
        time.sleep(0.1)
        c2.close()  # leaves the queue
        time.sleep(1.0)  # a new token
        r = c1.request("GET", "/short/c", auth(KEY_ALICE))
        self.assertEqual(r.status, 200)  # the leaver did not take it
        c1.close()
        stats = self.env.fake_stats()
        self.assertEqual(stats["hits"], 2)  # a and c: the leaver was never forwarded
        self.assertEqual(stats["last_path"], "/c")

    def test_metrics(self):
        parallel(6, lambda c, i: c.request("GET", "/metered/m?i=%d" % i, auth(KEY_ALICE)))
        self.assertEqual(self.env.get("/_gateway/metrics", key=KEY_BOB).status, 403)
        self.assertEqual(self.env.get("/_gateway/metrics", key=None).status, 401)
        r = self.env.get("/_gateway/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain"))
        text = r.body.decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                values[k] = float(v)
        self.assertEqual(values['panelgate_rate_limited_total{upstream="metered",'
                                'scope="upstream"}'], 4)
        self.assertEqual(values['panelgate_requests_total{upstream="metered",'
                                'method="GET",status="429"}'], 4)
        self.assertEqual(values['panelgate_requests_total{upstream="metered",'
                                'method="GET",status="200"}'], 2)
        self.assertGreaterEqual(values["panelgate_connections_active"], 1)
        self.assertEqual(values['panelgate_inflight_requests{upstream="metered"}'], 0)
        self.assertEqual(values['panelgate_request_duration_seconds_count{upstream="metered"}'], 6)
        self.assertEqual(values['panelgate_request_duration_seconds_bucket{upstream="metered",'
                                'le="+Inf"}'], 6)
        self.assertIn("# TYPE panelgate_request_duration_seconds histogram", text)

    def test_route_and_consumer_buckets_independent(self):
        codes = [self.env.get("/routed/trips/%d" % i).status for i in range(3)]
        self.assertEqual(codes, [200, 200, 429])
        r = self.env.get("/routed/trips/9")
        self.assertEqual(r.header("ratelimit-policy"), '"route";q=2;w=60')
        self.assertEqual(self.env.get("/routed/other").status, 200)  # no route bucket there
        codes = [self.env.get("/free/x", key=KEY_BOB).status for i in range(4)]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertEqual(self.env.get("/free/x", key=KEY_ALICE).status, 200)

    def test_queue_blocks_only_the_same_bucket(self):
        self.assertEqual(self.env.get("/free/a", key=KEY_DAN).status, 200)  # dan's one token
        out = {}
        t = threading.Thread(target=lambda: out.update(r=self.env.get("/free/b", key=KEY_DAN)))
        t.start()  # dan waits about 2 s for his next token
        end = time.monotonic() + 5
        while self.env.fake_stats()["hits"] < 1 and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)
        t0 = time.monotonic()
        r = self.env.get("/free/c", key=KEY_ALICE)  # no bucket of alice's is involved
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        t.join(10)
        self.assertEqual(out["r"].status, 200)

    def cooldown(self, prefix, port, knob):
        fake(port, "POST", "/_fake/reset?sessions=keep")  # a relogin may wait 10 s
        fake(port, "POST", "/_fake/config?" + knob)
        r = self.env.get(prefix)
        self.assertEqual(r.status, 429)
        t0 = time.monotonic()
        hits0 = fake(port, "GET", "/_fake/stats")["hits"]
        local = 0
        while time.monotonic() - t0 < 1.8:
            r = self.env.get(prefix)
            self.assertEqual(r.status, 429)
            self.assertNotIn("upstream", r.json()["error"])  # answered locally
            self.assertGreaterEqual(int(r.header("retry-after")), 1)
            local += 1
            time.sleep(0.05)
        self.assertEqual(fake(port, "GET", "/_fake/stats")["hits"], hits0)
        end = time.monotonic() + 3
        while self.env.get(prefix).status != 200:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertGreater(local, 10)

    def test_panel_429_cooldown(self):
        self.cooldown("/navirec/vehicles/", NAVIREC, "ratelimit=1&retry_after=2")

    def test_unrecognised_429_cooldown(self):
        # a 429 whose body has no known shape is answered upstream_error with the status kept
        # (SPEC section 5), and still cools the upstream down (SPEC section 4)
        r = self.env.get("/free/status?code=429&body=slow%20down&header=Retry-After:2")
        t0 = time.monotonic()
        self.assertEqual(r.status, 429, r)
        e = r.json()["error"]
        self.assertEqual((e["code"], e["upstream_status"], e["upstream_message"]),
                         ("upstream_error", 429, "slow down"))
        self.assertEqual(r.header("retry-after"), "2")
        hits0 = self.env.fake_stats()["hits"]
        r = self.env.get("/free/x")
        self.assertEqual(r.status, 429, r)
        self.assertNotIn("upstream", r.json()["error"])  # answered locally
        self.assertEqual(self.env.fake_stats()["hits"], hits0)
        end = t0 + 4
        while self.env.get("/free/x").status != 200:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)

    def test_navixy_code_15_cooldown(self):
        self.env.get("/navixy/tracker/list")
        self.cooldown("/navixy/tracker/list", NAVIXY, "ratelimit=1&retry_after=2")

    def test_me(self):
        self.env.get("/free/x", key=KEY_CAROL)
        r = self.env.get("/_gateway/me", key=KEY_CAROL)
        self.assertEqual(r.status, 200)
        me = r.json()
        self.assertEqual(me["consumer"], "carol")
        self.assertEqual(me["admin"], False)
        self.assertEqual(me["upstreams"], [
            {"name": "reject", "methods": ["GET"]},
            {"name": "free", "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                         "OPTIONS"]}])
        mine = [b for b in me["buckets"] if b["scope"] == "consumer"]
        self.assertEqual(mine, [{"scope": "consumer", "key": "carol", "limit": 3,
                                 "remaining": 2, "reset": 20}])
        ups = {b["key"]: b for b in me["buckets"] if b["scope"] == "upstream"}
        self.assertEqual(set(ups), {"reject"})
        self.assertEqual(ups["reject"]["limit"], 10)
        self.assertEqual(self.env.get("/_gateway/me", key=None).status, 401)

    def test_accuracy_4x_rate_50_connections(self):
        span = [None, None]
        lock = threading.Lock()
        stop = time.monotonic() + 10

        def hammer(c, i):
            # 4x the rate in total: 80/s over 50 connections, spread evenly
            period = 50 / 80.0
            time.sleep(period * i / 50)
            while time.monotonic() < stop:
                t = time.monotonic()
                with lock:
                    span[0] = t if span[0] is None else min(span[0], t)
                    span[1] = t if span[1] is None else max(span[1], t)
                c.request("GET", "/accurate/x", auth(KEY_ALICE))
                time.sleep(max(0, period - (time.monotonic() - t)))

        parallel(50, hammer)
        secs = span[1] - span[0]
        hits = self.env.fake_stats()["hits"]
        promised = 20 * secs + 20
        print("accuracy: load for %.2f s, %d admitted, promised %.1f (%.1f%%)" %
              (secs, hits, promised, 100.0 * hits / promised))
        self.assertLessEqual(hits, promised + 1)
        self.assertGreaterEqual(hits, 0.95 * promised)


if __name__ == "__main__":
    pgtest.main()
