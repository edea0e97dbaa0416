"""The JSON access log and its reopen (SPEC section 7, issue 14) through the real binary.

`access_log: {path: FILE, format: json}`: one JSON object per line with SPEC 7's fields (plus
peer and code), the path without its query, no caller key, panel credential or session in any
line, the fields matching what was sent (a proxied 200, a 401, 429s from a consumer and an
upstream bucket, a login, replays after a refused signature and after session expiry, a refused
and a hung upstream, the gateway's own answer). Then logrotate's way: rename the file, SIGUSR1,
and the later lines are in a new file at the configured path, the earlier ones stayed in the
renamed one, none lost or split. With `access_log: stdout`, SIGUSR1 is harmless, and a reload
moves the log to a JSON file (later lines there, none before) and back; a file that cannot be
opened leaves the log where it was."""

import json
import os
import re
import signal
import time

import pgtest
from pgtest import KEY_ALICE, KEY_BOB, free_port, parallel, sha

PORTS = {p: free_port() for p in ("navixy", "panelica", "raw")}
FAKE_ARGS = []
for _name, _port in PORTS.items():
    FAKE_ARGS += ["--" + _name, str(_port)]

STATIC_TOKEN = "alog-static-bearer-token"
# every secret the gateway holds or sees: none may reach the log
SECRETS = [KEY_ALICE, KEY_BOB, STATIC_TOKEN, "fake-navixy-user", "fake-navixy-pass",
           "pk_fake_panelica", "sk_fake_panelica_secret", "fake-secret-1", "fake-apikey-2"]
# a query with secret-looking values (and the caller's key as a parameter)
QUERY = "?password=fake-secret-1&api_key=fake-apikey-2&key=" + KEY_ALICE

SPEC_FIELDS = {"time", "request_id", "consumer", "method", "path", "status", "upstream",
               "upstream_status", "bytes", "duration_ms", "limited", "login", "replayed"}
EXTRA_FIELDS = {"peer", "code"}
SCOPES = {"upstream", "route", "consumer", "cooldown"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RELOGIN_MIN = 10.0  # s; SPEC section 1: an expired session is re-established at most this often
FLUSH_WAIT = 5.0  # s; lines are flushed once a second (bounded generously for the sanitizers)


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: {path: %(tmp)s/access.log, format: json}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
  - {name: bob, key: "%(bob)s", allow: ["*"], rate_limit: {rate: 1/min, burst: 1}}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
  - name: tight
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
    rate_limit: {rate: 1/min, burst: 1}
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    timeout: 5s
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: panelica
    url: http://127.0.0.1:%(panelica)d/api/external/v1
    auth: {type: panelica_hmac, api_key: pk_fake_panelica, api_secret: sk_fake_panelica_secret}
  - name: down
    url: http://127.0.0.1:%(refuse)d
  - name: hung
    url: http://127.0.0.1:%(raw)d
    timeout: 300ms
""" % dict(port=env.port, tmp=env.tmp, alice=sha(KEY_ALICE), bob=sha(KEY_BOB),
           echo=env.echo_port, token=STATIC_TOKEN, refuse=env.refuse_port, **PORTS)


def fake(panel, method, path):
    return pgtest.fake_call(PORTS[panel], method, path)


def read_lines(path):
    """The file's lines (bytes, each with its newline); [] while it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return data.splitlines(keepends=True)


def wait_lines(path, n, timeout=FLUSH_WAIT):
    """The file's lines once it holds at least n, bounded by timeout."""
    end = time.monotonic() + timeout
    while True:
        lines = read_lines(path)
        if len(lines) >= n or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def session_hash():
    """The Navixy session the fake last saw (Authorization: NVX <hash>)."""
    last = fake("navixy", "GET", "/_fake/stats")["last_request"]
    auth = [v for n, v in last["headers"] if n.lower() == "authorization"]
    assert len(auth) == 1 and auth[0].startswith("NVX "), last
    return auth[0][4:]


class JsonLog(pgtest.EnvCase):
    CONFIG = staticmethod(config)
    ENV_KW = {"fake_args": FAKE_ARGS}

    def send(self, rid, path, key=KEY_ALICE, want=200):
        r = self.env.get(path, key=key, headers={"X-Request-Id": rid})
        self.assertEqual(r.status, want, (rid, r))
        self.sent[rid] = path
        return r

    def check_line(self, raw):
        """raw is one whole line of valid JSON with the fields and types SPEC 7 gives; returns
        it parsed."""
        self.assertTrue(raw.endswith(b"\n"), raw)
        self.assertNotIn(b"\n", raw[:-1])
        o = json.loads(raw)
        self.assertIsInstance(o, dict)
        self.assertEqual(set(o), SPEC_FIELDS | EXTRA_FIELDS, o)
        self.assertRegex(o["time"], TIME_RE)
        self.assertIsInstance(o["request_id"], str)
        self.assertIsInstance(o["method"], str)
        self.assertIsInstance(o["path"], str)
        self.assertNotIn("?", o["path"])
        self.assertIsInstance(o["peer"], str)
        for k in ("status", "bytes", "duration_ms"):
            self.assertIs(type(o[k]), int, (k, o))
            self.assertGreaterEqual(o[k], 0, (k, o))
        for k in ("consumer", "upstream", "code"):
            self.assertTrue(o[k] is None or isinstance(o[k], str), (k, o))
        self.assertTrue(o["upstream_status"] is None or type(o["upstream_status"]) is int, o)
        self.assertTrue(o["limited"] is None or o["limited"] in SCOPES, o)
        self.assertIs(type(o["login"]), bool)
        self.assertIs(type(o["replayed"]), bool)
        return o

    def check_no_secrets(self, data, hashes):
        for s in SECRETS + hashes:
            self.assertNotIn(s.encode(), data, s)
        self.assertNotIn(b"password", data)
        self.assertNotIn(b"api_key", data)

    def test_json_lines_then_reopen(self):
        self.sent = {}
        log = os.path.join(self.env.tmp, "access.log")
        rotated = log + ".1"
        # a login: the first request to a cold upstream (the replay after expiry below may only
        # log in again RELOGIN_MIN after it started, which was before this answer came)
        self.send("nvx-login", "/navixy/tracker/list?limit=5")
        t_login = time.monotonic()
        hashes = [session_hash()]
        self.send("proxied", "/echo/some/path" + QUERY)
        self.send("nokey", "/echo/some/path" + QUERY, key=None, want=401)
        self.send("bob-1", "/echo/bob", key=KEY_BOB)
        self.send("bob-2", "/echo/bob", key=KEY_BOB, want=429)
        self.send("tight-1", "/tight/x")
        self.send("tight-2", "/tight/x", want=429)
        fake("panelica", "POST", "/_fake/config?reject_next=1&reject_code=INVALID_SIGNATURE")
        self.send("resigned", "/panelica/domains?page=1")
        self.send("down", "/down/x", want=502)
        self.send("hung", "/hung/silent", want=504)
        self.send("own", "/_gateway/health", key=None)
        before = dict(self.sent)
        lines = wait_lines(log, len(before))
        got = {}
        for raw in lines:
            o = self.check_line(raw)
            got[o["request_id"]] = o
        self.assertEqual(len(lines), len(before), lines)
        self.assertEqual(set(got), set(before))
        want = {  # rid: (status, consumer, upstream, upstream_status, limited, login, replayed,
            #        code)
            "nvx-login": (200, "alice", "navixy", 200, None, True, False, None),
            "proxied": (200, "alice", "echo", 200, None, False, False, None),
            "nokey": (401, None, None, None, None, False, False, "unauthorized"),
            "bob-1": (200, "bob", "echo", 200, None, False, False, None),
            "bob-2": (429, "bob", "echo", None, "consumer", False, False, "rate_limited"),
            "tight-1": (200, "alice", "tight", 200, None, False, False, None),
            "tight-2": (429, "alice", "tight", None, "upstream", False, False, "rate_limited"),
            "resigned": (200, "alice", "panelica", 200, None, False, True, None),
            "down": (502, "alice", "down", None, None, False, False, "upstream_unavailable"),
            "hung": (504, "alice", "hung", None, None, False, False, "upstream_timeout"),
            "own": (200, None, None, None, None, False, False, None),
        }
        fields = ("status", "consumer", "upstream", "upstream_status", "limited", "login",
                  "replayed", "code")
        for rid, w in want.items():
            o = got[rid]
            self.assertEqual(tuple(o[k] for k in fields), w, o)
            self.assertEqual(o["method"], "GET")
            self.assertEqual(o["path"], before[rid].split("?")[0])
            self.assertEqual(o["peer"], "127.0.0.1")
        self.assertGreater(got["proxied"]["bytes"], 0)
        self.assertGreaterEqual(got["hung"]["duration_ms"], 250)

        # logrotate: rename, then SIGUSR1; the reopened file appears at the configured path
        os.rename(log, rotated)
        self.env.gw.send_signal(signal.SIGUSR1)
        end = time.monotonic() + 5
        while not os.path.exists(log):
            self.assertLess(time.monotonic(), end, "no new file after SIGUSR1")
            time.sleep(0.02)
        self.assertIsNone(self.env.gw.poll())
        self.sent = {}
        # from several connections at once, so both workers (PG_TEST_WORKERS=2) write
        n = 24
        parallel(n, lambda i: self.send("after-%d" % i, "/echo/after/%d%s" % (i, QUERY)))
        # the panel ends the session; once RELOGIN_MIN has passed since the login, the refused
        # request logs in again and is replayed
        left = t_login + RELOGIN_MIN + 0.2 - time.monotonic()
        if left > 0:
            time.sleep(left)  # the gateway's own clock must pass: nothing to wait on
        fake("navixy", "POST", "/_fake/expire")
        self.send("nvx-replay", "/navixy/tracker/list?limit=5")
        hashes.append(session_hash())
        self.assertNotEqual(hashes[0], hashes[1])
        after = dict(self.sent)
        lines = wait_lines(log, len(after))
        self.assertEqual(len(lines), len(after), lines)
        got = {}
        for raw in lines:
            o = self.check_line(raw)
            got[o["request_id"]] = o
        self.assertEqual(set(got), set(after))
        o = got["nvx-replay"]
        self.assertEqual((o["status"], o["upstream_status"], o["login"], o["replayed"]),
                         (200, 200, True, True), o)
        # the earlier lines stayed where they were, none lost, none added
        old = read_lines(rotated)
        self.assertEqual(len(old), len(before))
        self.assertEqual({self.check_line(x)["request_id"] for x in old}, set(before))
        with open(log, "rb") as f:
            new_data = f.read()
        with open(rotated, "rb") as f:
            old_data = f.read()
        self.check_no_secrets(old_data + new_data, hashes)
        self.check_no_secrets(self.env.gateway_output(), hashes)
        self.assertIn(b"SIGUSR1: reopened access_log " + log.encode(), self.env.gateway_output())


def stdout_config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: stdout
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
""" % dict(port=env.port, alice=sha(KEY_ALICE), echo=env.echo_port, token=STATIC_TOKEN)


class StdoutLog(pgtest.EnvCase):
    CONFIG = staticmethod(stdout_config)

    def wait_output(self, needle, timeout=FLUSH_WAIT):
        end = time.monotonic() + timeout
        while needle not in self.env.gateway_output():
            self.assertLess(time.monotonic(), end, needle)
            self.assertIsNone(self.env.gw.poll(), "panelgate exited")
            time.sleep(0.05)

    def test_usr1_harmless_and_reload_moves_the_log(self):
        env = self.env
        self.assertEqual(env.get("/echo/before" + QUERY).status, 200)
        # before this change SIGUSR1's default action ended the process
        env.gw.send_signal(signal.SIGUSR1)
        self.wait_output(b"SIGUSR1: the access log is stdout: nothing to reopen")
        self.assertIsNone(env.gw.poll())
        self.assertEqual(env.get("/echo/after-usr1").status, 200)
        # a reload moves the log (nginx's way): later lines go to the new file, in json
        other = os.path.join(env.tmp, "other.log")
        with open(env.config) as f:
            text = f.read()
        with open(env.config, "w") as f:
            f.write(text.replace("access_log: stdout",
                                 "access_log: {path: %s, format: json}" % other))
        env.gw.send_signal(signal.SIGHUP)
        self.wait_output(b"reload: access_log now " + other.encode())
        self.wait_output(b"reloaded ")
        self.assertEqual(env.get("/echo/after-reload" + QUERY).status, 200)
        end = time.monotonic() + FLUSH_WAIT
        while not read_lines(other):
            self.assertLess(time.monotonic(), end, "nothing in the new file")
            time.sleep(0.05)
        lines = [json.loads(x) for x in read_lines(other)]
        self.assertEqual([(x["path"], x["status"]) for x in lines], [("/echo/after-reload", 200)])
        out = env.gateway_output()
        self.assertIn(b" alice GET /echo/before 200 ", out)  # text lines, no query
        self.assertIn(b" alice GET /echo/after-usr1 200 ", out)
        self.assertNotIn(b'{"time"', out)
        self.assertNotIn(b"after-reload 200", out)  # that line went to the new file only
        # back to stdout, text; a file that cannot be opened leaves the log where it was
        with open(env.config, "w") as f:
            f.write(text.replace("access_log: stdout",
                                 "access_log: {path: /nonexistent-dir/x.log, format: json}"))
        env.gw.send_signal(signal.SIGHUP)
        self.wait_output(b"reload: access_log /nonexistent-dir/x.log: ")
        with open(env.config, "w") as f:
            f.write(text)
        env.gw.send_signal(signal.SIGHUP)
        self.wait_output(b"reload: access_log now stdout")
        time.sleep(0.2)
        self.assertEqual(env.get("/echo/back-on-stdout").status, 200)
        self.wait_output(b" alice GET /echo/back-on-stdout 200 ")
        self.assertEqual(len(read_lines(other)), 1)
        for s in SECRETS:
            self.assertNotIn(s.encode(), env.gateway_output(), s)
            self.assertNotIn(s.encode(), b"".join(read_lines(other)), s)


if __name__ == "__main__":
    pgtest.main()
