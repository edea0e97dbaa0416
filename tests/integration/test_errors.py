"""Panels' errors through the real binary become the one envelope (SPEC section 5); success
bodies pass byte for byte; request ids agree between caller, envelope and panel."""

import json
import time

import pgtest
from pgtest import KEY_ALICE, Conn, free_port, sha

PORTS = {p: free_port() for p in ("navixy", "openpanel", "panelica", "navirec")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
public_url: http://127.0.0.1:%(port)d
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: errors-test-token}
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: panelica
    url: http://127.0.0.1:%(panelica)d/api/external/v1
    auth: {type: panelica_hmac, api_key: pk_fake_panelica, api_secret: sk_fake_panelica_secret}
  - name: navirec
    url: http://127.0.0.1:%(navirec)d
    auth: {type: navirec_token, token: fake-navirec-token, api_version: "1.33.0"}
""" % dict(port=env.port, alice=sha(KEY_ALICE), echo=env.echo_port, **PORTS)


def fake(port, method, path):
    c = Conn(port)
    try:
        return c.request(method, path, {"Connection": "close"}, b"" if method == "POST" else None)
    finally:
        c.close()


def knob(panel, q):
    assert fake(PORTS[panel], "POST", "/_fake/config?" + q).status == 200


def reset(panel):
    # counters and knobs only: the gateway's sessions stay live (after an expired-session answer
    # it may log in again only once per 10 s, SPEC section 1)
    fake(PORTS[panel], "POST", "/_fake/reset?sessions=keep")


def last_request(panel):
    return fake(PORTS[panel], "GET", "/_fake/stats").json()["last_request"]


class Errors(pgtest.EnvCase):
    CONFIG = staticmethod(config)
    ENV_KW = {"fake_args": FAKE_ARGS}

    def setUp(self):
        for p in PORTS:
            reset(p)

    def envelope(self, r, status, code, upstream):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.header("content-type"), "application/json")
        e = r.json()["error"]
        self.assertEqual(e["status"], status)
        self.assertEqual(e["code"], code)
        self.assertEqual(e["upstream"], upstream)
        self.assertIn(upstream, e["message"])
        self.assertEqual(e["request_id"], r.header("x-request-id"))
        return e

    def test_navixy_code_7(self):
        self.env.get("/navixy/tracker/list")  # logged in
        knob("navixy", "fail_code=7&fail_count=1")
        r = self.env.get("/navixy/tracker/list")
        e = self.envelope(r, 400, "bad_request", "navixy")
        self.assertEqual(e["upstream_status"], 400)
        self.assertEqual(e["upstream_code"], "7")
        self.assertEqual(e["upstream_message"], "Invalid parameters")
        self.assertIsNone(e["details"])

    def test_navixy_code_15_is_rate_limited(self):
        self.env.get("/navixy/tracker/list")
        knob("navixy", "ratelimit=1&retry_after=3")
        r = self.env.get("/navixy/tracker/list")
        e = self.envelope(r, 429, "rate_limited", "navixy")
        self.assertEqual(e["upstream_code"], "15")
        self.assertEqual(e["retry_after"], int(r.header("retry-after")))
        # the panel asked for 3 s: the gateway answers locally meanwhile, then lets traffic on
        hits = fake(PORTS["navixy"], "GET", "/_fake/stats").json()["hits"]
        r = self.env.get("/navixy/tracker/list")
        self.assertEqual(r.status, 429)
        self.assertNotIn("upstream", r.json()["error"])
        self.assertEqual(fake(PORTS["navixy"], "GET", "/_fake/stats").json()["hits"], hits)
        end = time.monotonic() + 5
        while self.env.get("/navixy/tracker/list").status != 200:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.1)

    def test_panelica_invalid_signature(self):
        knob("panelica", "reject_next=2&reject_code=INVALID_SIGNATURE")
        r = self.env.get("/panelica/domains")
        e = self.envelope(r, 502, "upstream_auth_failed", "panelica")
        self.assertEqual(e["upstream_status"], 401)
        self.assertEqual(e["upstream_code"], "INVALID_SIGNATURE")
        # signed afresh and replayed once: two attempts, both refused
        st = fake(PORTS["panelica"], "GET", "/_fake/stats").json()
        self.assertEqual(st["hits"], 2)

    def test_panelica_resign_once_recovers(self):
        knob("panelica", "reject_next=1&reject_code=TIMESTAMP_EXPIRED")
        r = self.env.get("/panelica/domains")
        self.assertEqual(r.status, 200, r)

    def test_navirec_field_errors_keep_details(self):
        r = self.env.get("/navirec/vehicles/", method="POST", body=b"{}",
                         headers={"Content-Type": "application/json"})
        e = self.envelope(r, 400, "bad_request", "navirec")
        self.assertEqual(e["details"], {"name": ["This field is required."],
                                        "account": ["This field is required."]})
        self.assertEqual(e["upstream_message"], "This field is required.")

    def test_openpanel_401_after_failed_relogin(self):
        self.assertEqual(self.env.get("/openpanel/api/users").status, 200)
        fake(PORTS["openpanel"], "POST", "/_fake/expire")
        knob("openpanel", "password=changed-behind-the-gateways-back")
        r = self.env.get("/openpanel/api/users")
        e = self.envelope(r, 502, "upstream_auth_failed", "openpanel")
        self.assertNotIn("fake-op-pass", json.dumps(e))

    def test_html_500_is_upstream_error(self):
        html = "<html><body><h1>500 Internal Server Error</h1></body></html>"
        r = self.env.get("/echo/status?code=500&body=" + html.replace(" ", "%20"))
        e = self.envelope(r, 500, "upstream_error", "echo")
        self.assertEqual(e["upstream_status"], 500)
        self.assertEqual(e["upstream_message"], html)

    def test_huge_error_body_is_cut(self):
        r = self.env.get("/echo/status?code=502&body=" + "x" * 7000)
        e = self.envelope(r, 502, "upstream_error", "echo")
        self.assertEqual(e["upstream_message"], "x" * 512)

    def test_success_body_byte_identical(self):
        for path, direct in (("/navirec/vehicles/?ordering=id", None),
                             ("/echo/static", "/static"),
                             ("/echo/large?bytes=200000", "/large?bytes=200000")):
            r = self.env.get(path)
            self.assertEqual(r.status, 200)
            if direct:
                d = fake(self.env.echo_port, "GET", direct)
                self.assertEqual(r.body, d.body, path)
            else:
                # navirec: the fake's own page, fetched directly, with the same token
                c = Conn(PORTS["navirec"])
                d = c.request("GET", "/vehicles/?ordering=id",
                              {"Authorization": "Token fake-navirec-token",
                               "Accept": "application/json; version=1.33.0",
                               "Connection": "close"})
                c.close()
                self.assertEqual(r.body, d.body)

    def test_request_id_everywhere(self):
        knob("navixy", "fail_code=204&fail_count=1")
        self.env.get("/navixy/tracker/list")  # the failure goes to the login-less path
        knob("navixy", "fail_code=204&fail_count=1")
        r = self.env.get("/navixy/tracker/read", headers={"X-Request-Id": "trace-42.a"})
        e = self.envelope(r, 404, "not_found", "navixy")
        self.assertEqual(e["request_id"], "trace-42.a")
        seen = [v for n, v in last_request("navixy")["headers"] if n.lower() == "x-request-id"]
        self.assertEqual(seen, ["trace-42.a"])
        r = self.env.get("/navixy/tracker/list")
        rid = r.header("x-request-id")
        seen = [v for n, v in last_request("navixy")["headers"] if n.lower() == "x-request-id"]
        self.assertEqual(seen, [rid])


if __name__ == "__main__":
    pgtest.main()
