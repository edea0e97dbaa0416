#!/usr/bin/env python3
"""selftest.py -- checks tests/fakepanels against the panel docs it fakes, directly (no gateway),
plus hostile input. Standard library only; not part of ctest (run it by hand after changing the
fakes):

    python3 tests/fakepanels/selftest.py BUILD/tests/fakepanels
    FP_VALGRIND=1 python3 tests/fakepanels/selftest.py BUILD/tests/fakepanels   # + memcheck

Exits non-zero on the first failed check, or when fakepanels does not exit 0 on SIGTERM (under
valgrind: any memcheck error or leak)."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/tests/fakepanels"
VALGRIND = os.environ.get("FP_VALGRIND") == "1"
SERVICES = ["echo", "navixy", "navixy-panel", "openpanel", "panelica", "navirec"]
PORTS = {}
PROC = None
VG_LOG = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start():
    global PROC, VG_LOG
    args = [BIN]
    for s in SERVICES:
        PORTS[s] = free_port()
        args += ["--" + s, str(PORTS[s])]
    if VALGRIND:
        VG_LOG = tempfile.mktemp(prefix="fp-vg-")
        args = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=all",
                "--errors-for-leak-kinds=all", "--log-file=" + VG_LOG] + args
    PROC = subprocess.Popen(args, stdout=subprocess.PIPE)
    end = time.monotonic() + 60
    buf = b""
    while time.monotonic() < end and b"ready\n" not in buf:
        r, _, _ = select.select([PROC.stdout], [], [], 0.5)
        if r:
            d = os.read(PROC.stdout.fileno(), 100)
            if not d:
                break
            buf += d
    if b"ready\n" not in buf:
        raise RuntimeError("fakepanels did not start: %r" % buf)


def stop():
    PROC.send_signal(signal.SIGTERM)
    rc = PROC.wait(timeout=120)
    if VALGRIND:
        with open(VG_LOG) as f:
            log = f.read()
        print(log[-3000:])
    return rc


def call(svc, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORTS[svc], timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def jcall(svc, method, path, body=None, headers=None):
    st, h, data = call(svc, method, path, body, headers)
    return st, h, json.loads(data) if data else None


def stats(svc):
    return jcall(svc, "GET", "/_fake/stats")[2]


def reset(svc):
    assert jcall(svc, "POST", "/_fake/reset")[0] == 200


def config(svc, **kw):
    st, _, body = jcall(svc, "POST", "/_fake/config?" + urllib.parse.urlencode(kw))
    assert st == 200, body
    return body


def raw(svc, data, timeout=5):
    """Send raw bytes, return whatever comes back until close or timeout."""
    s = socket.create_connection(("127.0.0.1", PORTS[svc]), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # keep-alive would otherwise hold the connection open
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:  # timeout, reset, or closed by the fake before we were done
        pass
    finally:
        s.close()
    return out


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def nvx_login(svc="navixy", **kw):
    auth = "/user/auth" if svc == "navixy" else "/panel/account/auth"
    cred = {"navixy": ("fake-navixy-user", "fake-navixy-pass"),
            "navixy-panel": ("fake-panel-admin", "fake-panel-pass")}[svc]
    st, _, b = jcall(svc, "POST", auth, json.dumps({"login": cred[0], "password": cred[1]}), JSON)
    assert st == 200 and b["success"], b
    return b["hash"]


class Navixy(unittest.TestCase):
    def setUp(self):
        reset("navixy")
        reset("navixy-panel")

    def test_login_three_ways(self):
        st, _, b = jcall("navixy", "POST", "/v2/user/auth",
                         '{"login":"fake-navixy-user","password":"fake-navixy-pass"}', JSON)
        self.assertEqual(st, 200)
        self.assertEqual(set(b), {"success", "hash"})
        self.assertRegex(b["hash"], "^[0-9a-f]{32}$")
        st, _, b2 = jcall("navixy", "POST", "/v2/user/auth/",
                          "login=fake-navixy-user&password=fake-navixy-pass", FORM)
        self.assertEqual(st, 200)
        self.assertNotEqual(b["hash"], b2["hash"])
        st, _, _ = jcall("navixy", "GET",
                         "/v2/user/auth?login=fake-navixy-user&password=fake-navixy-pass")
        self.assertEqual(st, 200)
        self.assertEqual(stats("navixy")["logins"], 3)

    def test_wrong_password_and_missing(self):
        st, _, b = jcall("navixy", "POST", "/user/auth",
                         '{"login":"fake-navixy-user","password":"x"}', JSON)
        self.assertEqual((st, b["success"], b["status"]["code"]), (400, False, 102))
        st, _, b = jcall("navixy", "POST", "/user/auth", '{"login":"fake-navixy-user"}', JSON)
        self.assertEqual((st, b["status"]["code"]), (400, 7))
        st, _, b = jcall("navixy", "POST", "/user/auth", "{nope", JSON)
        self.assertEqual((st, b["status"]["code"]), (400, 5))
        self.assertEqual(stats("navixy")["login_failures"], 3)

    def test_hash_places_and_priority(self):
        h = nvx_login()
        for method, path, body, hdr in [
                ("GET", "/tracker/list?hash=" + h, None, {}),
                ("GET", "/tracker/list", None, {"Authorization": "NVX " + h}),
                ("POST", "/tracker/list", json.dumps({"hash": h}), JSON),
                ("POST", "/tracker/list", "hash=" + h, FORM)]:
            st, _, b = jcall("navixy", method, path, body, hdr)
            self.assertEqual(st, 200, (path, b))
            self.assertTrue(b["success"])
            self.assertEqual(b["echo"]["path"], "/tracker/list")
        # body wins over query, query over header
        st, _, b = jcall("navixy", "POST", "/x?hash=" + "0" * 32, json.dumps({"hash": h}), JSON)
        self.assertEqual(st, 200)
        st, _, b = jcall("navixy", "GET", "/x?hash=" + "0" * 32, None, {"Authorization": "NVX " + h})
        self.assertEqual(b["status"]["code"], 4)
        s = stats("navixy")
        self.assertEqual(s["hash_multi"], 2)
        self.assertEqual(s["last_request"]["hash_places"], ["query", "header"])
        self.assertEqual(s["auth_failure_reasons"]["unknown_hash"], 1)

    def test_errors(self):
        st, _, b = jcall("navixy", "GET", "/tracker/list")
        self.assertEqual((st, b), (400, {"success": False, "status": {
            "code": 4, "description": "User not found or session ended"}}))
        st, _, b = jcall("navixy", "GET", "/tracker/list?hash=xyz")
        self.assertEqual(b["status"]["code"], 3)
        st, _, b = jcall("navixy", "POST", "/x", '{"hash": 5}', JSON)
        self.assertEqual(b["status"]["code"], 3)
        self.assertEqual(stats("navixy")["auth_failures"], 3)

    def test_expire_logout_expire_every(self):
        h = nvx_login()
        jcall("navixy", "POST", "/_fake/expire")
        st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual(b["status"]["code"], 4)
        self.assertEqual(stats("navixy")["auth_failure_reasons"]["expired_hash"], 1)
        config("navixy", expire_every=100)
        expired = 0
        h = nvx_login()
        for _ in range(500):
            st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
            if not b["success"]:
                expired += 1
                h = nvx_login()
                st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
                self.assertTrue(b["success"])
        s = stats("navixy")
        self.assertEqual(s["expiries"], 1 + 5)
        self.assertEqual(expired, 4)  # the 5th expiry comes after the last request
        st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual(b["status"]["code"], 4)  # ended after the 500th
        h = nvx_login()
        st, _, b = jcall("navixy", "POST", "/user/logout", "hash=" + h, FORM)
        self.assertTrue(b["success"])
        st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual(b["status"]["code"], 4)
        self.assertEqual(len(s["times_ms"]), s["hits"])
        self.assertEqual(s["times_ms"], sorted(s["times_ms"]))

    def test_knobs(self):
        config("navixy", password="other")
        st, _, b = jcall("navixy", "POST", "/user/auth",
                         '{"login":"fake-navixy-user","password":"fake-navixy-pass"}', JSON)
        self.assertEqual(b["status"]["code"], 102)
        reset("navixy")
        h = nvx_login()
        config("navixy", ratelimit=2)
        st, hd, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual((st, b["status"]["code"]), (429, 15))
        self.assertNotIn("retry-after", hd)
        config("navixy", retry_after=4)
        st, hd, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual((st, hd.get("retry-after")), (429, "4"))
        config("navixy", fail_code=204)
        st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual((st, b["status"]["code"]), (404, 204))
        st, _, b = jcall("navixy", "GET", "/x?hash=" + h)
        self.assertEqual(st, 200)
        st, _, b = jcall("navixy", "POST", "/_fake/config?jwt_ttl=5")
        self.assertEqual(st, 400)
        st, _, b = jcall("navixy", "POST", "/_fake/config?expire_every=x&ratelimit=3")
        self.assertEqual(st, 400)
        self.assertEqual(config("navixy")["ratelimit"], 0)  # all or nothing

    def test_login_delay_piles_up(self):
        config("navixy", login_delay_ms=300)
        out = []

        def one():
            out.append(nvx_login())
        t0 = time.monotonic()
        ts = [threading.Thread(target=one) for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(out), 20)
        self.assertLess(time.monotonic() - t0, 2.5)  # concurrent, not 20 x 300 ms
        s = stats("navixy")
        self.assertEqual((s["logins"], s["inflight"]), (20, 0))

    def test_panel(self):
        st, _, b = jcall("navixy-panel", "GET",
                         "/panel/account/auth/?login=fake-panel-admin&password=fake-panel-pass")
        self.assertEqual(st, 200)
        self.assertIn("permissions", b)
        h = b["hash"]
        st, _, b = jcall("navixy-panel", "GET", "/panel/user/list/", None,
                         {"Authorization": "NVX " + h})
        self.assertEqual(b["status"]["code"], 4)  # the Panel API has no NVX header
        st, _, b = jcall("navixy-panel", "POST", "/panel/user/list/", "hash=%s&limit=10" % h, FORM)
        self.assertTrue(b["success"])
        st, _, b = jcall("navixy-panel", "GET", "/panel/user/list/?hash=" + h)
        self.assertTrue(b["success"])
        st, _, b = jcall("navixy-panel", "POST", "/panel/account/auth", "login=admin&password=admin",
                         FORM)
        self.assertEqual(b["status"]["code"], 12)
        # a user-API hash is no Panel API hash
        st, _, b = jcall("navixy-panel", "GET", "/panel/user/list/?hash=" + nvx_login("navixy"))
        self.assertEqual(b["status"]["code"], 4)
        self.assertEqual(stats("navixy-panel")["nvx_header_ignored"], 1)


def b64url_json(seg):
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def op_login():
    st, _, b = jcall("openpanel", "POST", "/api/",
                     '{"username":"fake-op-admin","password":"fake-op-pass"}', JSON)
    assert st == 200, b
    return b["access_token"]


class OpenPanel(unittest.TestCase):
    def setUp(self):
        reset("openpanel")

    def test_login_and_jwt(self):
        tok = op_login()
        h, p, s = tok.split(".")
        self.assertEqual(b64url_json(h), {"typ": "JWT", "alg": "HS256"})
        claims = b64url_json(p)
        self.assertEqual(claims["sub"], "fake-op-admin")
        self.assertEqual(claims["type"], "access")
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 5)
        st, _, b = jcall("openpanel", "GET", "/api/whoami", None, {"Authorization": "Bearer " + tok})
        self.assertEqual((st, b), (200, {"logged_in_as": "fake-op-admin"}))
        st, _, b = jcall("openpanel", "GET", "/api/users", None, {"Authorization": "Bearer " + tok})
        self.assertEqual(st, 200)
        self.assertTrue(b["success"])
        self.assertEqual(b["echo"]["path"], "/api/users")

    def test_refusals(self):
        tok = op_login()
        st, _, b = jcall("openpanel", "POST", "/api/",
                         '{"username":"fake-op-admin","password":"x"}', JSON)
        self.assertEqual((st, b), (401, {"msg": "Bad username or password"}))
        cases = [
            (None, 401, "Missing Authorization Header"),
            ("Basic eA==", 401, None),
            ("Bearer", 422, None),
            ("Bearer a b", 422, None),
            ("Bearer abc", 422, "Not enough segments"),
            ("Bearer " + tok[:-2] + ("AA" if tok[-2:] != "AA" else "BA"), 422,
             "Signature verification failed"),
            ("Bearer e30.e30.", 422, "The specified alg value is not allowed"),
        ]
        for hdr, want, msg in cases:
            st, _, b = jcall("openpanel", "GET", "/api/users", None,
                             {"Authorization": hdr} if hdr else {})
            self.assertEqual(st, want, (hdr, b))
            if msg:
                self.assertEqual(b["msg"], msg)
        # forged alg=none token with a valid-looking payload
        _, p, _ = tok.split(".")
        none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
        st, _, b = jcall("openpanel", "GET", "/api/users", None,
                         {"Authorization": "Bearer %s.%s." % (none, p)})
        self.assertEqual(st, 422)
        jcall("openpanel", "POST", "/_fake/expire")
        st, _, b = jcall("openpanel", "GET", "/api/users", None, {"Authorization": "Bearer " + tok})
        self.assertEqual((st, b["msg"]), (401, "Token has been revoked"))
        config("openpanel", jwt_ttl=0)
        tok = op_login()
        st, _, b = jcall("openpanel", "GET", "/api/users", None, {"Authorization": "Bearer " + tok})
        self.assertEqual((st, b["msg"]), (401, "Token has expired"))
        s = stats("openpanel")
        self.assertEqual(s["auth_failures"], len(cases) + 3)

    def test_ratelimit(self):
        config("openpanel", ratelimit=1, retry_after=3)
        st, h, b = jcall("openpanel", "GET", "/api/users")
        self.assertEqual((st, h["retry-after"]), (429, "3"))
        self.assertEqual(stats("openpanel")["ratelimited"], 1)


def pl_call(method, path, body=b"", ts=None, secret="sk_fake_panelica_secret", key="pk_fake_panelica",
            drop=()):
    ts = str(int(time.time())) if ts is None else ts
    sig = hmac.new(secret.encode(), ts.encode() + method.encode() + path.encode() + body,
                   hashlib.sha256).hexdigest()
    h = {"X-API-Key": key, "X-Timestamp": ts, "X-Signature": sig}
    for d in drop:
        del h[d]
    return jcall("panelica", method, path, body or None, h)


class Panelica(unittest.TestCase):
    def setUp(self):
        reset("panelica")

    def test_signed(self):
        st, _, b = pl_call("GET", "/api/external/v1/domains?page=1&limit=25")
        self.assertEqual(st, 200, b)
        self.assertEqual(b["echo"]["query"], "page=1&limit=25")
        st, _, b = pl_call("POST", "/api/external/v1/domains", b'{"domain":"example.com"}')
        self.assertEqual(st, 200, b)
        st, _, b = pl_call("GET", "/api/external/v1/me")
        self.assertEqual(b["key_prefix"], "pk_fake_panelica")
        st, _, b = jcall("panelica", "GET", "/api/external/v1/health")
        self.assertEqual(b["status"], "healthy")

    def test_refusals(self):
        now = int(time.time())
        for kw, code in [({"drop": ["X-API-Key"]}, "MISSING_API_KEY"),
                         ({"key": "pk_other"}, "INVALID_API_KEY"),
                         ({"drop": ["X-Timestamp"]}, "MISSING_TIMESTAMP"),
                         ({"ts": "12ab"}, "INVALID_TIMESTAMP"),
                         ({"ts": str(now - 400)}, "TIMESTAMP_EXPIRED"),
                         ({"ts": str(now + 400)}, "TIMESTAMP_EXPIRED"),
                         ({"drop": ["X-Signature"]}, "MISSING_SIGNATURE"),
                         ({"secret": "wrong"}, "INVALID_SIGNATURE")]:
            st, _, b = pl_call("GET", "/v1/domains", **kw)
            self.assertEqual((st, b["code"]), (401, code), kw)
            self.assertEqual(set(b), {"error", "code", "details"})
        config("panelica", reject_next=1, reject_code="TIMESTAMP_EXPIRED")
        self.assertEqual(pl_call("GET", "/v1/domains")[2]["code"], "TIMESTAMP_EXPIRED")
        self.assertEqual(pl_call("GET", "/v1/domains")[0], 200)
        config("panelica", ratelimit=1, retry_after=9)
        st, h, b = pl_call("GET", "/v1/domains")
        self.assertEqual((st, h["retry-after"], b["code"]), (429, "9", "RATE_LIMIT_EXCEEDED"))
        config("panelica", api_secret="new-secret")
        self.assertEqual(pl_call("GET", "/v1/domains")[0], 401)
        self.assertEqual(pl_call("GET", "/v1/domains", secret="new-secret")[0], 200)

    def test_template(self):
        config("panelica", string_to_sign="{method}\n{path}\n{timestamp}\n{body_sha256}")
        ts, body, path = str(int(time.time())), b'{"a":1}', "/v1/x?y=1"
        sts = "POST\n%s\n%s\n%s" % (path, ts, hashlib.sha256(body).hexdigest())
        sig = hmac.new(b"sk_fake_panelica_secret", sts.encode(), hashlib.sha256).hexdigest()
        st, _, b = jcall("panelica", "POST", path, body,
                         {"X-API-Key": "pk_fake_panelica", "X-Timestamp": ts, "X-Signature": sig})
        self.assertEqual(st, 200, b)
        self.assertEqual(stats("panelica")["last_request"]["string_to_sign"], sts)


NR_AUTH = {"Authorization": "Token fake-navirec-token", "Accept": "application/json; version=1.33.0"}


def link_urls(h):
    out = {}
    for part in (h or "").split(","):
        if not part.strip():
            continue
        url, rel = part.split(";")
        out[rel.strip().split("=")[1].strip('"')] = url.strip()[1:-1]
    return out


class Navirec(unittest.TestCase):
    def setUp(self):
        reset("navirec")

    def test_pagination(self):
        st, h, b = jcall("navirec", "GET", "/vehicles/?ordering=name,id&x=a+b", None, NR_AUTH)
        self.assertEqual((st, len(b)), (200, 100))
        links = link_urls(h.get("link"))
        self.assertEqual(set(links), {"next"})
        u = urllib.parse.urlsplit(links["next"])
        self.assertEqual("%s://%s" % (u.scheme, u.netloc), "http://127.0.0.1:%d" % PORTS["navirec"])
        self.assertTrue(u.query.startswith("cursor="))
        self.assertIn("ordering=name%2Cid", u.query)
        seen = [v["id"] for v in b]
        url = links["next"]
        while url:
            u = urllib.parse.urlsplit(url)
            st, h, b = jcall("navirec", "GET", u.path + "?" + u.query, None, NR_AUTH)
            seen += [v["id"] for v in b]
            links = link_urls(h.get("link"))
            self.assertIn("prev", links)
            url = links.get("next")
        self.assertEqual(len(seen), 250)
        self.assertEqual(len(set(seen)), 250)
        u = urllib.parse.urlsplit(links["prev"])
        st, h, b = jcall("navirec", "GET", u.path + "?" + u.query, None, NR_AUTH)
        self.assertEqual([v["id"] for v in b], seen[100:200])
        st, _, b = jcall("navirec", "GET", "/vehicles/?cursor=zzz", None, NR_AUTH)
        self.assertEqual((st, b), (404, {"detail": "Invalid cursor"}))

    def test_accept_and_token(self):
        st, _, _ = jcall("navirec", "GET", "/vehicles/", None,
                         {"Authorization": "Token fake-navirec-token"})
        self.assertEqual(st, 200)
        self.assertEqual(stats("navirec")["no_version"], 1)
        st, _, b = jcall("navirec", "GET", "/vehicles/", None,
                         dict(NR_AUTH, Accept="application/json; version=0.1"))
        self.assertEqual((st, b["detail"]), (406, 'Invalid version in "Accept" header.'))
        st, _, b = jcall("navirec", "GET", "/vehicles/", None, dict(NR_AUTH, Accept="image/png"))
        self.assertEqual(st, 406)
        for auth, detail in [(None, "Authentication credentials were not provided."),
                             ("Bearer x", "Authentication credentials were not provided."),
                             ("Token", "Invalid token header. No credentials provided."),
                             ("Token a b", "Invalid token header. Token string should not "
                              "contain spaces."),
                             ("Token nope", "Invalid token.")]:
            hd = {"Accept": "application/json"}
            if auth:
                hd["Authorization"] = auth
            st, h, b = jcall("navirec", "GET", "/vehicles/", None, hd)
            self.assertEqual((st, b["detail"], h["www-authenticate"]), (401, detail, "Token"))

    def test_create_and_echo(self):
        st, _, b = jcall("navirec", "POST", "/vehicles/", '{"account":"a"}', dict(NR_AUTH, **JSON))
        self.assertEqual((st, b), (400, {"name": ["This field is required."]}))
        st, _, b = jcall("navirec", "POST", "/vehicles/", '{"account":"a","name":"T"}',
                         dict(NR_AUTH, **JSON))
        self.assertEqual(st, 201)
        st, _, b = jcall("navirec", "GET", "/trips/?a=1", None, NR_AUTH)
        self.assertEqual(b["echo"]["query"], "a=1")

    def test_stream_and_throttle(self):
        st, h, data = call("navirec", "GET", "/streams/vehicle_states/?n=4&delay_ms=5", None,
                           dict(NR_AUTH, Accept="application/x-ndjson; version=1.33.0"))
        lines = [json.loads(x) for x in data.decode().splitlines()]
        self.assertEqual(h["content-type"], "application/x-ndjson")
        self.assertEqual([x["event"] for x in lines],
                         ["connected", "vehicle_state", "vehicle_state", "initial_state_sent",
                          "vehicle_state", "vehicle_state", "disconnected"])
        config("navirec", ratelimit=1, retry_after=3)
        st, h, b = jcall("navirec", "GET", "/trips/", None, NR_AUTH)
        self.assertEqual((st, h["retry-after"]), (429, "3"))
        self.assertEqual(b["detail"], "Request was throttled. Expected available in 3 seconds.")


class Echo(unittest.TestCase):
    def test_unchanged(self):
        reset("echo")
        st, h, b = jcall("echo", "POST", "/hello?x=1", "body")
        self.assertEqual((st, h["x-fake-echo"], b["body"], b["query"]), (200, "1", "body", "x=1"))
        st, _, data = call("echo", "GET", "/stream?n=3&delay_ms=1")
        self.assertEqual(data, b'{"i":0}\n{"i":1}\n{"i":2}\n')
        st, _, data = call("echo", "GET", "/large?bytes=100000")
        self.assertEqual(len(data), 100000)
        st, _, data = call("echo", "GET", "/slow?delay_ms=10")
        self.assertEqual(data, b'{"slow":true}')
        st, _, data = call("echo", "GET", "/status?code=503")
        self.assertEqual(st, 503)
        s = stats("echo")
        self.assertEqual((s["hits"], s["inflight"]), (5, 0))
        c = http.client.HTTPConnection("127.0.0.1", PORTS["echo"], timeout=30)
        for _ in range(1100):
            c.request("GET", "/x")
            c.getresponse().read()
        c.close()
        s = stats("echo")
        self.assertEqual((s["hits"], len(s["times_ms"])), (1105, 1000))
        reset("echo")
        self.assertEqual(stats("echo")["times_ms"], [])


class Hostile(unittest.TestCase):
    """Garbage must never crash the fake; each service must still answer afterwards."""

    def test_garbage(self):
        junk = [
            b"\x00\xff\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"GET /%00%zz%/?%%=%&=&&&hash=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 6\r\n\r\n\x00\x01{}[]",
            b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
            b"POST /user/auth HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 30\r\n\r\nlogin=%&password=%4&hash=%%%%%",
            b"GET /x HTTP/1.1\r\nAuthorization: NVX \r\nAuthorization: Bearer ...\r\n"
            b"Authorization: Token\t\t\r\n\r\n",
            b"GET /vehicles/?cursor=%ZZ&page_size=99999999999999999999 HTTP/1.1\r\n"
            b"Accept: ;;;,,,version=\r\nAuthorization: Token fake-navirec-token\r\n\r\n",
            b"GET /vehicles/?" + b"&".join(b"k%d=v" % i for i in range(300)) + b" HTTP/1.1\r\n"
            b"Authorization: Token fake-navirec-token\r\n\r\n",
        ]
        nested = b"[" * 5000 + b"]" * 5000
        junk.append(b"POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % len(nested) + nested)
        cursor = base64.b64encode(b"p=../../&r=x&o=-1").decode()
        junk.append(b"GET /vehicles/?cursor=" + cursor.encode() + b" HTTP/1.1\r\n"
                    b"Authorization: Token fake-navirec-token\r\n\r\n")
        for tok in ["Bearer " + "a" * 5000, "Bearer a.b.c", "Bearer ..", "Bearer .e30.",
                    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiJ4In0.AAAA", "Bearer ===.===.==="]:
            junk.append(b"GET /api/users HTTP/1.1\r\nAuthorization: " + tok.encode() + b"\r\n\r\n")
        for h in ["X-Timestamp: 99999999999999999999999", "X-Timestamp: -1",
                  "X-Signature: " + "z" * 64]:
            junk.append(b"GET /v1/x HTTP/1.1\r\nX-API-Key: pk_fake_panelica\r\n" + h.encode() +
                        b"\r\n\r\n")
        for svc in SERVICES:
            for j in junk:
                raw(svc, j, timeout=2)
            st, _, _ = call(svc, "GET", "/_fake/stats")
            self.assertEqual(st, 200, svc)
        # a client that leaves in the middle of a delayed login or a stream
        config("navixy", login_delay_ms=200)
        s = socket.create_connection(("127.0.0.1", PORTS["navixy"]))
        s.sendall(b"GET /user/auth?login=a&password=b HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        s = socket.create_connection(("127.0.0.1", PORTS["navirec"]))
        s.sendall(b"GET /streams/vehicle_states/?n=1000&delay_ms=10 HTTP/1.1\r\n"
                  b"Authorization: Token fake-navirec-token\r\n\r\n")
        s.recv(10)
        s.close()
        end = time.monotonic() + 5
        while time.monotonic() < end and (stats("navixy")["inflight"] or stats("navirec")["inflight"]):
            time.sleep(0.05)
        self.assertEqual(stats("navixy")["inflight"], 0)
        self.assertEqual(stats("navirec")["inflight"], 0)
        reset("navixy")


def main():
    start()
    try:
        prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        rc = stop()
    print("fakepanels exit status", rc)
    sys.exit(0 if ok and rc == 0 else 1)


if __name__ == "__main__":
    main()
