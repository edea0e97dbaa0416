"""Panel adapters through the real binary against the faithful fakes (SPEC section 1): each
panel accepts the gateway's credentials, callers never see or send panel auth, single-flight
logins, replay after expiry, login backoff, reserved paths, Link rewriting, JWT refresh."""

import json
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, Conn, free_port, parallel, sha

PORTS = {p: free_port() for p in ("navixy", "navixy-panel", "openpanel", "panelica", "navirec")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]

# the fakes' fixed, obviously fake credentials (tests/fakepanels/fakepanels.c)
SECRETS = ["fake-navixy-user", "fake-navixy-pass", "fake-panel-admin", "fake-panel-pass",
           "fake-op-admin", "fake-op-pass", "pk_fake_panelica", "sk_fake_panelica_secret",
           "fake-navirec-token", KEY_ALICE]


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
public_url: http://127.0.0.1:%(port)d
access_log: stdout
metrics: {public: true}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    timeout: 5s
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: panel
    url: http://127.0.0.1:%(panel)d/panel
    timeout: 5s
    auth: {type: navixy_session, login: fake-panel-admin, password: fake-panel-pass,
           auth_path: /account/auth, hash_in: query}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    timeout: 5s
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass,
           refresh_skew: 2s}
  - name: panelica
    url: http://127.0.0.1:%(panelica)d/api/external/v1
    timeout: 5s
    auth: {type: panelica_hmac, api_key: pk_fake_panelica, api_secret: sk_fake_panelica_secret}
  - name: navirec
    url: http://127.0.0.1:%(navirec)d
    timeout: 5s
    auth: {type: navirec_token, token: fake-navirec-token, api_version: "1.33.0"}
  # cold twins: upstreams only one test uses, so the gateway holds no session for them
  - name: navixy_cold
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: openpanel_cold
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: panel_cold
    url: http://127.0.0.1:%(panel)d/panel
    auth: {type: navixy_session, login: fake-panel-admin, password: fake-panel-pass,
           auth_path: /account/auth, hash_in: query}
  - name: openpanel_jwt
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass,
           refresh_skew: 2s}
""" % dict(port=env.port, alice=sha(KEY_ALICE), navixy=PORTS["navixy"],
           panel=PORTS["navixy-panel"], openpanel=PORTS["openpanel"],
           panelica=PORTS["panelica"], navirec=PORTS["navirec"])


def fake(panel, method, path, body=None):
    c = Conn(PORTS[panel])
    try:
        r = c.request(method, path, {"Connection": "close"}, body)
        assert r.status == 200, (panel, path, r)
        return r.json()
    finally:
        c.close()


def stats(panel):
    return fake(panel, "GET", "/_fake/stats")


def knob(panel, query):
    fake(panel, "POST", "/_fake/config?" + query, b"")


def reset(panel):
    # counters and knobs only: the gateway's sessions stay live (after an expired-session answer
    # it may log in again only once per 10 s, SPEC section 1; test_hardening_upstream.py)
    fake(panel, "POST", "/_fake/reset?sessions=keep", b"")


hdrs = pgtest.echo_headers


class Panels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = pgtest.Env(config, fake_args=FAKE_ARGS).start()

    @classmethod
    def tearDownClass(cls):
        out = cls.env.gateway_output()
        cls.env.stop()
        # done-when 7: no credential in anything the gateway wrote during the whole run
        for s in SECRETS:
            assert s.encode() not in out, "secret %r in gateway output" % s

    def setUp(self):
        for p in PORTS:
            reset(p)

    def get(self, path, **kw):
        return self.env.get(path, **kw)

    def assertEcho(self, panel, r, method, path, query=None):
        self.assertEqual(r.status, 200, r)
        last = stats(panel)["last_request"]
        self.assertEqual(last["method"], method)
        self.assertTrue(last["path"].endswith(path), (last["path"], path))
        if query is not None:
            self.assertIn(query, last["query"])
        blob = json.dumps(last)
        self.assertNotIn(KEY_ALICE, blob)
        return last

    # ---- 1: every adapter, GET with a query and POST with a JSON body ----

    def test_navixy_user_api(self):
        r = self.get("/navixy/tracker/list?limit=5")
        last = self.assertEcho("navixy", r, "GET", "/tracker/list", "limit=5")
        self.assertEqual(len(hdrs(last, "authorization")), 1)
        self.assertRegex(hdrs(last, "authorization")[0], r"^NVX [0-9a-f]{32}$")
        body = b'{"tracker_id": 560, "label": "x"}'
        r = self.get("/navixy/tracker/update", method="POST", body=body,
                     headers={"Content-Type": "application/json"})
        last = self.assertEcho("navixy", r, "POST", "/tracker/update")
        self.assertEqual(last["body"].encode(), body)
        # one session for both (setUp keeps the gateway's session live: no login, or the first
        # one when this test runs before any other used navixy)
        self.assertLessEqual(stats("navixy")["logins"], 1)

    def test_navixy_panel_api_hash_in_query(self):
        r = self.get("/panel/dealer/list?limit=10")
        last = self.assertEcho("navixy-panel", r, "GET", "/dealer/list", "limit=10")
        self.assertRegex(last["query"], r"(^|&)hash=[0-9a-f]{32}($|&)")
        self.assertEqual(hdrs(last, "authorization"), [])
        r = self.get("/panel/user/list", method="POST", body=b'{"limit": 3}',
                     headers={"Content-Type": "application/json"})
        self.assertEcho("navixy-panel", r, "POST", "/user/list")

    def test_openpanel(self):
        r = self.get("/openpanel/api/users?page=2")
        last = self.assertEcho("openpanel", r, "GET", "/api/users", "page=2")
        self.assertRegex(hdrs(last, "authorization")[0], r"^Bearer [\w-]+\.[\w-]+\.[\w-]+$")
        r = self.get("/openpanel/api/users", method="POST",
                     body=b'{"username":"u1","email":"u1@example.invalid"}',
                     headers={"Content-Type": "application/json"})
        self.assertEcho("openpanel", r, "POST", "/api/users")

    def test_panelica(self):
        r = self.get("/panelica/domains?page=1&limit=25")
        last = self.assertEcho("panelica", r, "GET", "/domains", "page=1&limit=25")
        self.assertEqual(hdrs(last, "x-api-key"), ["pk_fake_panelica"])
        self.assertEqual(len(hdrs(last, "x-signature")), 1)
        body = b'{"domain":"example.invalid","php_version":"8.4"}'
        r = self.get("/panelica/domains", method="POST", body=body,
                     headers={"Content-Type": "application/json"})
        last = self.assertEcho("panelica", r, "POST", "/domains")
        self.assertEqual(last["body"].encode(), body)
        self.assertEqual(stats("panelica")["auth_failures"], 0)

    def test_navirec(self):
        r = self.get("/navirec/vehicles/?ordering=id")
        self.assertEqual(r.status, 200, r)
        last = stats("navirec")["last_request"]
        self.assertEqual(hdrs(last, "authorization"), ["Token fake-navirec-token"])
        self.assertIn("version=1.33.0", hdrs(last, "accept")[0])
        self.assertTrue(hdrs(last, "user-agent")[0].startswith("panelgate"))
        r = self.get("/navirec/echo/things", method="POST", body=b'{"a":1}',
                     headers={"Content-Type": "application/json"})
        self.assertEcho("navirec", r, "POST", "/echo/things")

    def test_caller_panel_credentials_never_reach_panel(self):
        r = self.get("/navixy/tracker/list?hash=0123456789abcdef0123456789abcdef&x=1",
                     headers={"X-API-Key": "caller", "X-Signature": "caller",
                              "X-Timestamp": "1"})
        last = self.assertEcho("navixy", r, "GET", "/tracker/list")
        self.assertEqual(last["query"], "x=1")
        for h in ("x-api-key", "x-signature", "x-timestamp"):
            self.assertEqual(hdrs(last, h), [])
        self.assertEqual(stats("navixy")["hash_multi"], 0)
        # a hash in a JSON or form body is refused before the panel sees anything
        reset("navixy")
        r = self.get("/navixy/tracker/list", method="POST",
                     body=b'{"hash": "0123456789abcdef0123456789abcdef"}',
                     headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], "bad_request")
        r = self.get("/navixy/tracker/list", method="POST", body=b"a=1&hash=abc",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 400)
        self.assertEqual(stats("navixy")["hits"], 0)
        r = self.get("/panelica/domains", headers={"X-API-Key": "pk_caller_own"})
        last = self.assertEcho("panelica", r, "GET", "/domains")
        self.assertEqual(hdrs(last, "x-api-key"), ["pk_fake_panelica"])

    # ---- 2: single flight ----

    def cold_burst(self, panel, path):
        reset(panel)
        knob(panel, "login_delay_ms=300")
        rs = parallel(50, lambda i: self.get(path + "?i=%d" % i))
        self.assertEqual([r.status for r in rs], [200] * 50)
        return stats(panel)

    def test_single_flight_navixy(self):
        st = self.cold_burst("navixy", "/navixy_cold/tracker/list")
        self.assertEqual(st["logins"], 1)
        self.assertEqual(st["hits"], 51)  # 50 requests and the one login
        m = self.env.get("/_gateway/metrics", key=None)  # metrics.public: no key needed
        self.assertEqual(m.status, 200)
        self.assertIn(b'panelgate_upstream_logins_total{upstream="navixy_cold",result="ok"} 1\n',
                      m.body)
        self.assertIn(b'panelgate_requests_total{upstream="navixy_cold",method="GET",'
                      b'status="200"} 50\n', m.body)

    def test_single_flight_openpanel(self):
        st = self.cold_burst("openpanel", "/openpanel_cold/api/users")
        self.assertEqual(st["logins"], 1)
        self.assertEqual(st["hits"], 51)  # 50 requests and the one login

    # ---- 3: expiry mid-traffic: test_hardening_upstream.py (a panel ending the sessions
    # mid-run would leave the other tests here without one for 10 s, SPEC section 1) ----

    # ---- 4: wrong password ----

    def test_wrong_password_backoff(self):
        reset("navixy-panel")
        knob("navixy-panel", "password=not-what-the-gateway-has")
        end = time.monotonic() + 2
        statuses = []
        n = 0
        while n < 100:
            r = self.get("/panel_cold/dealer/list")
            statuses.append(r.status)
            if r.status == 502:
                e = r.json()["error"]
                self.assertEqual(e["code"], "upstream_auth_failed")
                self.assertEqual(e["upstream"], "panel_cold")
                self.assertNotIn("fake-panel-pass", json.dumps(e))
            n += 1
            time.sleep(max(0, (end - time.monotonic()) / max(1, 100 - n)))
        self.assertEqual(statuses, [502] * 100)
        st = stats("navixy-panel")
        self.assertLessEqual(st["logins"] + st["login_failures"], 2)
        self.assertGreaterEqual(st["login_failures"], 1)
        # nothing but the login attempts reached the panel
        self.assertEqual(st["hits"], st["login_failures"])

    # ---- 5: reserved paths, Link, JWT refresh ----

    def test_reserved_paths(self):
        cases = [("navixy", "GET", "/navixy/user/auth"), ("navixy", "POST", "/navixy/user/auth/"),
                 ("navixy", "GET", "/navixy/user/logout"),
                 ("navixy", "GET", "/navixy/user/%61uth"),
                 ("navixy", "GET", "/navixy//user/./auth"),
                 ("navixy", "GET", "/navixy/x/../user/auth"),
                 ("navixy-panel", "GET", "/panel/account/auth"),
                 ("navixy-panel", "POST", "/panel/account/logout"),
                 ("openpanel", "POST", "/openpanel/api/"),
                 ("openpanel", "POST", "/openpanel/api")]
        for panel, method, path in cases:
            reset(panel)
            r = self.get(path, method=method, body=b"{}" if method == "POST" else None)
            self.assertEqual(r.status, 403, (method, path, r))
            self.assertEqual(r.json()["error"]["code"], "forbidden")
            self.assertEqual(stats(panel)["hits"], 0, path)

    def test_navirec_link_rewritten(self):
        r = self.get("/navirec/vehicles/?ordering=id")
        link = r.header("link")
        self.assertIsNotNone(link)
        base = "http://127.0.0.1:%d/navirec/vehicles/?" % self.env.port
        self.assertIn("<" + base, link)
        self.assertNotIn(":%d" % PORTS["navirec"], link)
        nxt = link.split("<", 1)[1].split(">", 1)[0]
        r2 = self.get(nxt[len("http://127.0.0.1:%d" % self.env.port):])
        self.assertEqual(r2.status, 200, r2)

    def test_navirec_stream(self):
        r = self.get("/navirec/streams/vehicle_states/?n=3&delay_ms=50",
                     headers={"Accept": "application/x-ndjson"})
        self.assertEqual(r.status, 200)
        lines = [json.loads(x) for x in r.body.splitlines()]
        self.assertEqual(len(lines), 6)
        self.assertIn("application/x-ndjson; version=1.33.0",
                      hdrs(stats("navirec")["last_request"], "accept"))

    def test_jwt_refreshed_before_expiry(self):
        reset("openpanel")
        knob("openpanel", "jwt_ttl=3")
        self.get("/openpanel_jwt/api/users")  # a cold upstream: its first login gets a 3 s token
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            self.assertEqual(self.get("/openpanel_jwt/api/users").status, 200)
            time.sleep(0.1)
        st = stats("openpanel")
        # refresh_skew 2s on a 3 s token: a fresh login about every second, never a 401
        self.assertGreaterEqual(st["logins"], 3)
        self.assertEqual(st["auth_failures"], 0)


if __name__ == "__main__":
    pgtest.main()
