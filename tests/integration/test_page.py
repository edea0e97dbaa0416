"""The status page GET /_gateway/ (SPEC section 6, issue 14): served without a key with its
security headers, small, and -- in headless Chromium driven over the DevTools protocol -- it asks
for the admin key, polls /_gateway/status and shows every upstream, a live session and a panel's
cool-down; a refused key shows an error and no data. Saves a screenshot as a test artifact.
Exits 77 (ctest: skipped) when Chromium is not installed."""

import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.request

import cdp
import pgtest
from pgtest import KEY_ALICE, KEY_BOB, Conn, free_port, sha

PORTS = {p: free_port() for p in ("navixy", "openpanel")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]
UPSTREAMS = ["echo", "navixy", "openpanel", "cool"]
KEY_WRONG = "pgk_test_nobody_000000000000000000000000000"
ASSETS = ("/_gateway/", "/_gateway/page.js", "/_gateway/page.css")
LIMIT = 100 * 1024
COOLDOWN_S = 30  # long enough to be on screen whatever the machine's speed


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: off
consumers:
  - {name: ops, key: "%(alice)s", allow: ["*"], admin: true}
  - {name: billing, key: "%(bob)s", allow: [echo]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: page-test-token}
    rate_limit: {rate: 600/min, burst: 50}
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: cool
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: page-test-token}
""" % dict(port=env.port, alice=sha(KEY_ALICE), bob=sha(KEY_BOB), echo=env.echo_port, **PORTS)


def artifact_dir():
    d = os.environ.get("PG_ARTIFACTS")
    if not d:
        d = os.path.join(os.path.dirname(os.path.abspath(pgtest.PANELGATE)), "artifacts")
    os.makedirs(d, exist_ok=True)
    return d


# What the page shows, as the test reads it: the stable ids, classes and data attributes.
SNAPSHOT = r"""(() => {
  const err = document.getElementById('error');
  const cards = {};
  document.querySelectorAll('[data-upstream]').forEach(c => {
    const s = c.querySelector('.session-state'), cd = c.querySelector('.cooldown');
    cards[c.dataset.upstream] = {
      session: s ? s.textContent : null,
      cooldown_left: cd ? cd.dataset.left : null,
      cooldown_text: cd ? cd.textContent : null,
      rate: (c.querySelector('.kpi.rate .kpi-v') || {}).textContent,
      errors: [...c.querySelectorAll('.errors [data-code]')].map(e => e.dataset.code),
      buckets: [...c.querySelectorAll('.bucket')].map(e => e.dataset.scope),
    };
  });
  return {
    cards: cards,
    error: err && !err.hidden ? err.textContent : '',
    dash: !document.getElementById('dash').hidden,
    login: !document.getElementById('login').hidden,
    consumers: document.querySelectorAll('#consumers tbody tr[data-consumer]').length,
    href: location.href,
    local: localStorage.length,
    stored: sessionStorage.getItem('panelgate.adminKey'),
    csp: window.__csp || [],
    width: document.documentElement.scrollWidth,
  };
})()"""

# before any page script: remember Content-Security-Policy violations (there must be none)
CSP_PROBE = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


class Page(pgtest.EnvCase):
    CONFIG = staticmethod(config)
    ENV_KW = {"fake_args": FAKE_ARGS}

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.env.port, path)

    def fetch(self, path, method="GET", headers=None):
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def test_served_without_key(self):
        """The page and its assets: 200 without a key, the right types, the CSP and the other
        security headers, together under 100 KiB; HEAD has the headers and no body."""
        total = 0
        types = {}
        for path in ASSETS:
            status, h, body = self.fetch(path)
            self.assertEqual(status, 200, path)
            types[path] = h["Content-Type"]
            self.assertEqual(int(h["Content-Length"]), len(body))
            self.assertIn("default-src 'none'", h["Content-Security-Policy"])
            self.assertIn("frame-ancestors 'none'", h["Content-Security-Policy"])
            self.assertEqual(h["X-Content-Type-Options"], "nosniff")
            self.assertEqual(h["Referrer-Policy"], "no-referrer")
            self.assertIsNotNone(h["Cache-Control"])
            total += len(body)
        self.assertEqual(types["/_gateway/"], "text/html; charset=utf-8")
        self.assertTrue(types["/_gateway/page.js"].startswith("text/javascript"))
        self.assertTrue(types["/_gateway/page.css"].startswith("text/css"))
        self.assertLess(total, LIMIT)
        print("page assets: %d bytes" % total)
        _, h, body = self.fetch("/_gateway/")
        self.assertEqual(h["Content-Security-Policy"],
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                         "base-uri 'none'; form-action 'none'")
        self.assertIn(b'<script src="page.js"', body)
        self.assertNotIn(b"<script>", body)  # nothing inline: the CSP would refuse it
        c = Conn(self.env.port)
        try:
            r = c.request("HEAD", "/_gateway/", {"Connection": "close"})
        finally:
            c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), h["Content-Length"])
        self.assertIsNotNone(r.header("content-security-policy"))

    def test_without_slash_redirects(self):
        """/_gateway is 301 to /_gateway/ (the page names its files relative to itself)."""
        r = self.env.get("/_gateway", key=None)
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("location"), "/_gateway/")

    def test_page_takes_no_other_method(self):
        r = self.env.get("/_gateway/", key=None, method="POST", body=b"")
        self.assertEqual(r.status, 405)
        # the data still needs the admin key
        self.assertEqual(self.env.get("/_gateway/status", key=None).status, 401)
        self.assertEqual(self.env.get("/_gateway/status", key=KEY_BOB).status, 403)

    def test_browser(self):
        """Headless Chromium: the admin key typed in shows every upstream, navixy's live
        session and cool's cool-down; a wrong key in another tab shows the error and nothing
        else; forgetting the key clears the page."""
        why = cdp.available()
        if why:
            self.skipTest(why)
        t0 = time.monotonic()
        self.make_state()
        b = cdp.Browser(timeout=10)
        try:
            self.drive(b)
        except Exception:
            sys.stderr.write("chromium log:\n%s\n" % b.log_tail())
            raise
        finally:
            b.close()
        print("browser part: %.1f s" % (time.monotonic() - t0))

    def make_state(self):
        """Traffic: a navixy session, a cool-down on cool (a panel 429 with Retry-After),
        some requests and a 429 of the gateway's own."""
        for i in range(5):
            self.assertEqual(self.env.get("/echo/x?i=%d" % i).status, 200)
        self.assertEqual(self.env.get("/echo/y", key=KEY_BOB).status, 200)
        self.assertEqual(self.env.get("/navixy/tracker/list").status, 200)
        pgtest.fake_call(self.env.echo_port, "POST",
                         "/_fake/config?ratelimit=1&retry_after=%d" % COOLDOWN_S)
        r = self.env.get("/cool/x")
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json()["error"]["code"], "rate_limited")

    def open_page(self, b):
        sid = b.new_tab()
        b.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE}, session=sid)
        b.navigate(sid, self.url("/_gateway/"))
        b.wait_for(sid, "!document.getElementById('login').hidden", 5)
        return sid

    def sign_in(self, b, sid, key):
        b.call("Page.bringToFront", session=sid)
        b.evaluate(sid, "document.getElementById('key').focus()")
        b.type_text(sid, key)
        b.press_enter(sid)

    def drive(self, b):
        sid = self.open_page(b)
        self.sign_in(b, sid, KEY_ALICE)
        # everything the page must show, polled (the page polls every 2 s)
        ready = """(() => { const s = %s;
          const ok = %s.every(n => n in s.cards) && s.cards.navixy.session === 'valid' &&
            Number(s.cards.cool.cooldown_left) > 0;
          return ok ? s : null; })()""" % (SNAPSHOT, json.dumps(UPSTREAMS))
        snap = b.wait_for(sid, ready, 10)
        self.assertEqual(sorted(snap["cards"]), sorted(UPSTREAMS))
        self.assertEqual(snap["error"], "")
        self.assertTrue(snap["dash"])
        self.assertFalse(snap["login"])
        cool = snap["cards"]["cool"]
        self.assertLessEqual(int(cool["cooldown_left"]), COOLDOWN_S)
        self.assertIn("cool-down", cool["cooldown_text"])
        self.assertEqual(snap["cards"]["echo"]["cooldown_left"], "0")
        self.assertEqual(snap["cards"]["openpanel"]["session"], "none")  # never logged in
        self.assertEqual(snap["cards"]["echo"]["session"], "no session")  # static: none at all
        self.assertIn("rate_limited", snap["cards"]["cool"]["errors"])
        self.assertEqual(snap["cards"]["echo"]["buckets"], ["upstream"])
        self.assertEqual(snap["consumers"], 2)
        # the key: in this tab's sessionStorage, never in localStorage or the URL
        self.assertEqual(snap["stored"], KEY_ALICE)
        self.assertEqual(snap["local"], 0)
        self.assertNotIn(KEY_ALICE, snap["href"])
        # a poll after more traffic: requests/s (the delta of two polls) is above 0
        for i in range(4):
            self.env.get("/echo/z?i=%d" % i)
        rate = b.wait_for(sid, """(() => { const r = (%s).cards.echo.rate;
          return parseFloat(r) > 0 ? r : null; })()""" % SNAPSHOT, 5)
        self.assertGreater(float(rate), 0)
        self.assertEqual(b.evaluate(sid, "window.__csp"), [])
        self.assertEqual(b.exceptions(sid), [])
        path = os.path.join(artifact_dir(), "status-page.png")
        b.screenshot(sid, path)
        print("screenshot: %s" % path)
        self.phone(b, sid)
        self.network_error(b, sid)

        self.wrong_keys(b)

        # forget key: the page asks again and shows nothing
        b.call("Page.bringToFront", session=sid)
        b.evaluate(sid, "document.getElementById('forget').click()")
        snap = b.evaluate(sid, SNAPSHOT)
        self.assertEqual(snap["cards"], {})
        self.assertTrue(snap["login"])
        self.assertFalse(snap["dash"])
        self.assertIsNone(snap["stored"])

    def phone(self, b, sid):
        """At a phone's width nothing runs off the side; a second screenshot for people."""
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
               session=sid)
        try:
            width = b.wait_for(sid, "window.innerWidth === 390 && "
                               "document.documentElement.scrollWidth", 5)
            self.assertLessEqual(width, 390)
            b.screenshot(sid, os.path.join(artifact_dir(), "status-page-phone.png"))
        finally:
            b.call("Emulation.clearDeviceMetricsOverride", session=sid)

    def network_error(self, b, sid):
        """/_gateway/status unreachable (the browser's fetch fails): the error is shown, the
        last numbers stay (marked stale), the page keeps polling and recovers by itself."""
        b.call("Fetch.enable", {"patterns": [{"urlPattern": "*/_gateway/status*"}]}, session=sid)
        failed = 0
        try:
            end = time.monotonic() + 8
            while not failed:
                self.assertLess(time.monotonic(), end, "the page stopped polling")
                for p in b.take_events(sid, "Fetch.requestPaused"):
                    b.call("Fetch.failRequest", {"requestId": p["requestId"],
                                                 "errorReason": "ConnectionRefused"}, session=sid)
                    failed += 1
                b.pump(0.1)
            snap = b.evaluate(sid, SNAPSHOT)
            self.assertIn("Cannot read /_gateway/status", snap["error"])
            self.assertEqual(sorted(snap["cards"]), sorted(UPSTREAMS))  # kept
            self.assertTrue(b.evaluate(sid, "document.body.classList.contains('stale')"))
        finally:
            b.call("Fetch.disable", session=sid)
        # the next poll goes through: it kept polling after the failure
        b.wait_for(sid, "document.getElementById('error').hidden && "
                   "!document.body.classList.contains('stale')", 5)

    def wrong_keys(self, b):
        """Another tab: an unknown key, then a key that is not an admin's: each is refused
        with the error shown and no upstream card, no consumer row."""
        sid = self.open_page(b)
        for key, status in ((KEY_WRONG, 401), (KEY_BOB, 403)):
            self.sign_in(b, sid, key)
            snap = b.wait_for(sid, """(() => { const s = %s;
              return s.error.includes('HTTP %d') ? s : null; })()""" % (SNAPSHOT, status), 10)
            self.assertIn("Key refused", snap["error"])
            self.assertEqual(snap["cards"], {})
            self.assertEqual(snap["consumers"], 0)
            self.assertFalse(snap["dash"])
            self.assertTrue(snap["login"])  # asks again
            self.assertIsNone(snap["stored"])  # a refused key is not kept
        self.assertEqual(b.exceptions(sid), [])


def main():
    prog = unittest.main(verbosity=2, exit=False)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.skipped:
        for _, why in res.skipped:
            print("SKIPPED: %s" % why)
        sys.exit(77)  # ctest's SKIP_RETURN_CODE for this suite
    sys.exit(0)


if __name__ == "__main__":
    main()
