"""Credentials in answers (SPEC section 1): a panel's redirect, cookie or error page must not hand
a caller the gateway's credentials. Location and Content-Location are rewritten to the gateway
without the hash parameter, Set-Cookie is dropped, and every secret the gateway holds or made
(passwords, session hashes, JWTs, tokens, API keys and secrets, signatures) is "[redacted]" in
the envelope. The fakes' .../_leak/ paths (tests/fakepanels/fp_leak.c) play the careless panel.
Each attack runs while a normal request on another connection is answered 200."""

import json
import socket

import pgtest
from pgtest import KEY_ALICE, Conn, auth, build, free_port, sha

PORTS = {p: free_port() for p in ("navixy", "navixy-panel", "openpanel", "panelica", "navirec")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]

BEARER = "static-bearer-secret-0123456789"
HDRKEY = "static-header-secret-9876543210"
RED = "[redacted]"

# upstream -> (fake port key or None for the echo service, its url path, fixed secrets)
UPSTREAMS = {
    "navixy": ("navixy", "/v2", ["fake-navixy-pass"]),
    "panel": ("navixy-panel", "/panel", ["fake-panel-pass"]),
    "openpanel": ("openpanel", "", ["fake-op-pass"]),
    "panelica": ("panelica", "/api/external/v1", ["pk_fake_panelica", "sk_fake_panelica_secret"]),
    "navirec": ("navirec", "", ["fake-navirec-token"]),
    "bearer": (None, "/b", [BEARER]),
    "headers": (None, "/h", [HDRKEY]),
}


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
public_url: http://127.0.0.1:%(port)d
access_log: off
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: plain
    url: http://127.0.0.1:%(echo)d
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: panel
    url: http://127.0.0.1:%(panel)d/panel
    auth: {type: navixy_session, login: fake-panel-admin, password: fake-panel-pass,
           auth_path: /account/auth, hash_in: query}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: panelica
    url: http://127.0.0.1:%(panelica)d/api/external/v1
    auth: {type: panelica_hmac, api_key: pk_fake_panelica, api_secret: sk_fake_panelica_secret}
  - name: navirec
    url: http://127.0.0.1:%(navirec)d
    auth: {type: navirec_token, token: fake-navirec-token, api_version: "1.33.0"}
  - name: bearer
    url: http://127.0.0.1:%(echo)d/b
    auth: {type: static, bearer: %(bearer)s}
  - name: headers
    url: http://127.0.0.1:%(echo)d/h
    auth: {type: static, headers: {X-Svc-Key: %(hdrkey)s}}
  # the login path answers with the panel's error shape, echoing the login body (the password)
  - name: badlogin
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass,
           auth_path: /_leak/error/navixy}
""" % dict(port=env.port, alice=sha(KEY_ALICE), echo=env.echo_port, navixy=PORTS["navixy"],
           panel=PORTS["navixy-panel"], openpanel=PORTS["openpanel"],
           panelica=PORTS["panelica"], navirec=PORTS["navirec"], bearer=BEARER, hdrkey=HDRKEY)


def last_request(port):
    c = Conn(port)
    try:
        r = c.request("GET", "/_fake/stats", {"Connection": "close"})
        assert r.status == 200, r
        return r.json()["last_request"]
    finally:
        c.close()


def header_of(req, name):
    """The first value of header name in an echoed request, or None."""
    return (pgtest.echo_headers(req, name) or [None])[0]


def parse(raw):
    """(status, [(name, value)], body) of one raw HTTP/1.1 answer read to EOF."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
    return status, hdrs, body


class Leaks(pgtest.EnvCase):
    CONFIG = staticmethod(config)
    ENV_KW = {"fake_args": FAKE_ARGS}

    def attack(self, path, method="GET", body=None):
        """Send path on one connection; while it is in flight, a normal request on another
        connection must answer 200. Returns the attack's raw answer (read to EOF)."""
        a = socket.create_connection(("127.0.0.1", self.env.port), timeout=10)
        try:
            h = dict(auth(KEY_ALICE))
            h["Connection"] = "close"
            if body is not None:
                h["Content-Type"] = "application/json"
            a.sendall(build(method, path, h, body))
            b = self.env.conn()
            try:
                ok = b.request("GET", "/plain/normal", auth(KEY_ALICE))
                self.assertEqual(ok.status, 200, ok)
            finally:
                b.close()
            raw = b""
            while True:
                d = a.recv(65536)
                if not d:
                    break
                raw += d
            return raw
        finally:
            a.close()

    def secrets(self, up):
        """The fixed secrets of upstream up plus those of the request the panel saw last: the
        session hash, the JWT, the signature."""
        key, _, fixed = UPSTREAMS[up]
        out = list(fixed)
        if key is None:
            return out
        req = last_request(PORTS[key])
        if up in ("navixy", "panel"):
            authz = header_of(req, "Authorization") or ""
            q = dict(p.split("=", 1) for p in req["query"].split("&") if "=" in p)
            h = authz[4:] if authz.startswith("NVX ") else q.get("hash", "")
            self.assertRegex(h, "^[0-9a-f]{32}$", req)
            out.append(h)
        elif up == "openpanel":
            authz = header_of(req, "Authorization")
            self.assertTrue(authz and authz.startswith("Bearer ey"), req)
            out.append(authz[7:])
        elif up == "panelica":
            sig = header_of(req, "X-Signature")
            self.assertRegex(sig or "", "^[0-9a-f]{64}$", req)
            out.append(sig)
        return out

    def assert_clean(self, raw, secrets):
        for s in secrets:
            self.assertNotIn(s.encode(), raw, "secret %r in the answer" % s)
            # and no first 8 characters of a random one (hash, JWT, signature) cut at a buffer
            # boundary; the fixed ones share prefixes with user names ("fake-navixy-")
            if len(s) >= 32 and not s.startswith(("fake", "static", "pk_", "sk_")):
                self.assertNotIn(s[:8].encode(), raw, "part of %r" % s)
        status, hdrs, _ = parse(raw)
        self.assertEqual([v for n, v in hdrs if n.lower() in ("set-cookie", "set-cookie2")], [])

    def envelope(self, raw):
        status, hdrs, body = parse(raw)
        self.assertEqual(dict((n.lower(), v) for n, v in hdrs)["content-type"],
                         "application/json")
        e = json.loads(body)["error"]
        self.assertEqual(e["status"], status)
        return e

    # ---- Location, Content-Location, Set-Cookie ----

    def redirect(self, up):
        raw = self.attack("/%s/_leak/redirect?a=1" % up)
        status, hdrs, _ = parse(raw)
        self.assertEqual(status, 302, raw)
        h = dict((n.lower(), v) for n, v in hdrs)
        self.assertEqual(h.get("location"),
                         "http://127.0.0.1:%d/%s/_leak/landing?a=1" % (self.env.port, up))
        secrets = self.secrets(up)
        self.assert_clean(raw, secrets)
        return h

    def test_redirect_navixy_query(self):
        h = self.redirect("panel")
        self.assertEqual(h.get("content-location"), "landing?x=1")

    def test_redirect_navixy_header(self):
        h = self.redirect("navixy")
        self.assertEqual(h.get("content-location"), "landing?x=1")

    def test_redirect_other_adapters(self):
        for up in ("openpanel", "panelica", "navirec", "bearer", "headers"):
            with self.subTest(up=up):
                h = self.redirect(up)
                # no Navixy hash there: the relative URI passes as it is
                self.assertEqual(h.get("content-location"), "landing?hash=&x=1")

    def test_cookie_dropped(self):
        for up in UPSTREAMS:
            with self.subTest(up=up):
                raw = self.attack("/%s/_leak/cookie" % up)
                status, hdrs, body = parse(raw)
                self.assertEqual(status, 200, raw)
                self.assertEqual(body, b'{"ok":true}')
                self.assert_clean(raw, self.secrets(up))

    # ---- panel text in the envelope ----

    def error_page(self, up, shape, method="GET", body=None, query=""):
        raw = self.attack("/%s/_leak/error/%s%s" % (up, shape, query), method, body)
        secrets = self.secrets(up)
        self.assert_clean(raw, secrets)
        e = self.envelope(raw)
        self.assertEqual(e["upstream"], up)
        self.assertIn(RED, e["upstream_message"])
        return e

    def test_error_text_every_adapter(self):
        for up in UPSTREAMS:
            with self.subTest(up=up):
                e = self.error_page(up, "text", "POST", '{"note":"x"}')
                self.assertEqual(e["code"], "upstream_error")
                self.assertEqual(e["upstream_status"], 500)

    def test_error_json_shapes(self):
        cases = [("navixy", "navixy"), ("panel", "navixy"), ("openpanel", "panelica"),
                 ("panelica", "panelica"), ("navirec", "drf"), ("bearer", "panelica"),
                 ("headers", "drf")]
        for up, shape in cases:
            with self.subTest(up=up, shape=shape):
                e = self.error_page(up, shape)
                self.assertEqual(e["status"], 400)
                if shape == "panelica":
                    self.assertEqual(e["upstream_code"], "ECHO")
                    self.assertIn(RED, e["details"]["echo"])

    def test_hash_cut_at_512_bytes(self):
        """The hash straddles the 512-byte cut of upstream_message: redacted before the cut."""
        # the panel sees "GET /panel/_leak/error/text?pad=N&hash=<32 hex>" after N bytes of pad
        for n in range(400, 520):
            prefix = "GET /panel/_leak/error/text?pad=%d&hash=" % n
            if n + len(prefix) == 500:
                break
        e = self.error_page("panel", "text", query="?pad=%d" % n)
        msg = e["upstream_message"]
        self.assertEqual(len(msg.encode()), 512)
        self.assertEqual(msg[: n + len(prefix)], "x" * n + prefix)
        self.assertEqual(msg[n + len(prefix):][: len(RED)], RED)

    def test_login_body_echo(self):
        """A login error that echoes the login body does not show the password."""
        raw = self.attack("/badlogin/user/get_info")
        self.assert_clean(raw, ["fake-navixy-pass"])
        e = self.envelope(raw)
        self.assertEqual(e["code"], "upstream_auth_failed")
        self.assertIn(RED, e["upstream_message"])
        self.assertIn("fake-navixy-user", e["upstream_message"])  # the login is not a secret


if __name__ == "__main__":
    pgtest.main()
