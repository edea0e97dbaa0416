"""/_gateway/status in the SPEC section 6 shape, against the real binary and the fake panels:
who may read it, a session's life (none -> valid, a refused login -> backoff), buckets, a panel's
cool-down, requests, errors by envelope code, latency, the minute history, consumers, and that
no credential, session value or key hash ever appears in it."""

import hashlib
import json
import re
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, KEY_BOB, KEY_CAROL, fake_call, free_port, sha

PORTS = {p: free_port() for p in ("navixy", "openpanel", "panelica", "navirec")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]

SECRETS = ["fake-navixy-user", "fake-navixy-pass", "not-the-fake-password", "fake-op-admin",
           "fake-op-pass", "pk_fake_panelica", "sk_fake_panelica_secret", "fake-navirec-token",
           KEY_ALICE, KEY_BOB, KEY_CAROL]
SECRETS += [sha(k)[len("sha256:"):] for k in (KEY_ALICE, KEY_BOB, KEY_CAROL)]

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
  - {name: ops, key: "%(bob)s", admin: true, allow: ["*"]}
  - {name: idle, key: "%(carol)s", allow: [navirec]}
upstreams:
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    timeout: 5s
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: navixy_bad
    url: http://127.0.0.1:%(navixy)d/v2
    timeout: 5s
    auth: {type: navixy_session, login: fake-navixy-user, password: not-the-fake-password}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    timeout: 5s
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: panelica
    url: http://127.0.0.1:%(panelica)d/api/external/v1
    timeout: 5s
    auth: {type: panelica_hmac, api_key: pk_fake_panelica, api_secret: sk_fake_panelica_secret}
  - name: navirec
    url: http://127.0.0.1:%(navirec)d
    timeout: 5s
    auth: {type: navirec_token, token: fake-navirec-token, api_version: "1.33.0"}
    rate_limit: {rate: 5/min, burst: 5}
    routes: [{path: /fleet, rate_limit: {rate: 2/min, burst: 2}}]
""" % dict(port=env.port, alice=sha(KEY_ALICE), bob=sha(KEY_BOB), carol=sha(KEY_CAROL),
           navixy=PORTS["navixy"], openpanel=PORTS["openpanel"], panelica=PORTS["panelica"],
           navirec=PORTS["navirec"])


def last_auth(panel):
    """The credential the gateway last sent the fake panel (a session hash, a JWT...)."""
    last = fake_call(PORTS[panel], "GET", "/_fake/stats")["last_request"]
    return [v for n, v in last["headers"] if n.lower() == "authorization"]


class Status(unittest.TestCase):
    """One gateway for the whole class; the tests run in name order and build on each other."""

    @classmethod
    def setUpClass(cls):
        cls.env = pgtest.Env(config, fake_args=FAKE_ARGS).start()
        cls.alice_requests = 0
        cls.issued = []  # session values the fakes handed the gateway

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def alice(self, path):
        Status.alice_requests += 1
        return self.env.get(path)

    def status(self):
        r = self.env.get("/_gateway/status", key=KEY_BOB)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertNoSecret(r.body)
        return r.json()

    def upstream(self, st, name):
        return [u for u in st["upstreams"] if u["name"] == name][0]

    def assertNoSecret(self, body):
        for s in SECRETS + self.issued:
            self.assertNotIn(s.encode(), body, s)

    def test_1_access_and_shape(self):
        self.assertEqual(self.env.get("/_gateway/status", key=None).status, 401)
        self.assertEqual(self.alice("/_gateway/status").status, 403)  # not an admin key
        st = self.status()
        self.assertEqual(st["version"], "0.2.0")
        self.assertRegex(st["started"], RFC3339)
        self.assertGreaterEqual(st["workers"], 1)
        self.assertGreaterEqual(st["connections"], 1)  # this one
        self.assertEqual(st["store"], {"type": "local", "state": "ok"})
        self.assertEqual([u["name"] for u in st["upstreams"]],
                         ["navixy", "navixy_bad", "openpanel", "panelica", "navirec"])
        nvx = self.upstream(st, "navixy")
        self.assertEqual(nvx["client"], "h1" if not pgtest.UPSTREAM_HOST else "curl")
        self.assertEqual(nvx["session"], {"state": "none", "age_s": 0, "expires_in_s": None,
                                          "logins": 0, "login_failures": 0, "backoff_s": 0})
        self.assertEqual(nvx["requests"], 0)
        self.assertEqual(nvx["errors"], {})
        self.assertEqual(nvx["latency_ms"], {"p50": None, "p99": None})
        self.assertEqual(nvx["buckets"], [])  # no rate limit configured
        # adapters without a session have no "session"
        for name in ("panelica", "navirec"):
            self.assertNotIn("session", self.upstream(st, name))
        self.assertIn("session", self.upstream(st, "openpanel"))
        self.assertEqual([c["name"] for c in st["consumers"]], ["alice", "ops", "idle"])

    def test_2_session_valid(self):
        for _ in range(3):
            self.assertEqual(self.alice("/navixy/tracker/list").status, 200)
        self.assertEqual(self.alice("/openpanel/api/users").status, 200)
        for a in last_auth("navixy") + last_auth("openpanel"):
            Status.issued.append(a.split(" ", 1)[1])  # "NVX <hash>", "Bearer <jwt>"
        self.assertEqual(len(self.issued), 2)
        time.sleep(1.1)  # the session's age passes a second
        st = self.status()
        nvx = self.upstream(st, "navixy")
        s = nvx["session"]
        self.assertEqual(s["state"], "valid")
        self.assertEqual(s["logins"], 1)
        self.assertEqual(s["login_failures"], 0)
        self.assertEqual(s["backoff_s"], 0)
        self.assertGreaterEqual(s["age_s"], 1)
        self.assertLess(s["age_s"], 60)
        self.assertEqual(nvx["requests"], 3)
        self.assertEqual(nvx["inflight"], 0)
        self.assertEqual(nvx["errors"], {})
        p50, p99 = nvx["latency_ms"]["p50"], nvx["latency_ms"]["p99"]
        self.assertIsInstance(p50, int)
        self.assertIsInstance(p99, int)
        self.assertLessEqual(p50, p99)
        self.assertLess(p99, 5000)
        h = nvx["history"]
        self.assertTrue(1 <= len(h) <= 15, h)
        for e in h:
            self.assertRegex(e["t"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")
        self.assertEqual(sum(e["requests"] for e in h), 3)
        self.assertEqual(sum(e["errors"] for e in h), 0)
        self.assertIsInstance(h[-1]["p99_ms"] if h[-1]["requests"] else p99, int)
        jwt = self.upstream(st, "openpanel")["session"]
        self.assertEqual((jwt["state"], jwt["logins"]), ("valid", 1))
        # a JWT's refresh time is known: it expires in a positive number of seconds
        self.assertGreater(jwt["expires_in_s"], 0)

    def test_3_refused_login_backoff(self):
        for _ in range(2):
            r = self.alice("/navixy_bad/tracker/list")
            self.assertEqual(r.status, 502, r)
            self.assertEqual(r.json()["error"]["code"], "upstream_auth_failed")
        bad = self.upstream(self.status(), "navixy_bad")
        s = bad["session"]
        self.assertEqual(s["state"], "backoff")
        self.assertEqual((s["logins"], s["login_failures"]), (1, 1))
        self.assertTrue(1 <= s["backoff_s"] <= 5, s)  # the first backoff is 5 s
        self.assertEqual(bad["errors"], {"upstream_auth_failed": 2})
        self.assertEqual(bad["requests"], 2)
        self.assertEqual(sum(e["errors"] for e in bad["history"]), 2)

    def test_4_buckets(self):
        for _ in range(3):
            self.assertEqual(self.alice("/navirec/vehicles/").status, 200)
        self.assertEqual(self.alice("/navirec/fleet").status, 200)
        nr = self.upstream(self.status(), "navirec")
        b = {x["scope"]: x for x in nr["buckets"]}
        self.assertEqual((b["upstream"]["limit"], b["upstream"]["remaining"]), (5, 1))
        self.assertEqual(b["upstream"]["key"], "navirec")
        self.assertTrue(1 <= b["upstream"]["reset_s"] <= 60, b)
        self.assertEqual((b["route"]["limit"], b["route"]["remaining"]), (2, 1))
        self.assertEqual(b["route"]["key"], "navirec:/fleet")
        # the upstream bucket refuses the sixth request within the minute
        self.assertEqual(self.alice("/navirec/vehicles/").status, 200)
        r = self.alice("/navirec/vehicles/")
        self.assertEqual(r.status, 429)
        nr = self.upstream(self.status(), "navirec")
        self.assertEqual(nr["errors"], {"rate_limited": 1})
        self.assertEqual(nr["requests"], 6)
        self.assertEqual(nr["queued"], 0)

    def test_5_cooldown(self):
        fake_call(PORTS["panelica"], "POST", "/_fake/config?ratelimit=1&retry_after=30")
        r = self.alice("/panelica/domains")
        self.assertEqual(r.status, 429, r)
        pl = self.upstream(self.status(), "panelica")
        self.assertTrue(25 <= pl["cooldown_s"] <= 30, pl)
        self.assertEqual(pl["errors"], {"rate_limited": 1})

    def test_6_consumers_and_metrics(self):
        st = self.status()
        c = {x["name"]: x for x in st["consumers"]}
        self.assertEqual(c["alice"]["requests"], self.alice_requests)
        # the navirec bucket's 429 and panelica's own, passed on as rate_limited
        self.assertEqual(c["alice"]["rate_limited"], 2)
        self.assertEqual((c["idle"]["requests"], c["idle"]["rate_limited"]), (0, 0))
        self.assertGreaterEqual(c["ops"]["requests"], 6)  # the status reads before this one
        self.assertEqual(c["ops"]["rate_limited"], 0)
        # the whole document once more, every string in it: no secret, no 32-hex session hash
        blob = json.dumps(st)
        self.assertNoSecret(blob.encode())
        self.assertIsNone(re.search(r"\b[0-9a-f]{32}\b", blob), blob)


if __name__ == "__main__":
    pgtest.main()
