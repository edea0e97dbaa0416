"""Many instances, one gateway (SPEC section 4.1, issue 12): panelgate instances sharing one real
redis-server (started here on a free loopback port, stopped at the end) admit together what one
bucket allows, hold off together after a panel's 429, survive redis going away (on_error allow /
deny) and use it again when it is back, and leave no credential in it."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, Conn, auth, free_port, sha

REDIS_BIN = shutil.which("redis-server")
TOKEN = "fake-redis-test-bearer"  # what the gateway sends upstream: must never reach redis


class Redis:
    """A throwaway redis-server on 127.0.0.1 (no persistence)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pgredis-")
        self.proc = None

    def start(self, password=None):
        self.password = password
        extra = ["--requirepass", password] if password else []
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir] + extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args, db=0):
        """One command over RESP (after AUTH and SELECT as needed); the reply as str, int, list
        or None."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            pre = ([("AUTH", self.password)] if getattr(self, "password", None) else []) + \
                ([("SELECT", db)] if db else [])
            out = b""
            for c in pre + [args]:
                out += b"*%d\r\n" % len(c)
                for a in c:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            for _ in pre:
                _read_reply(f)
            return _read_reply(f)
        finally:
            s.close()

    def dump(self):
        """Every key and every value in it, as one bytes blob (for the secret scan)."""
        blob = b""
        for k in self.cmd("KEYS", "*") or []:
            blob += k.encode() + b"\n"
            t = self.cmd("TYPE", k)
            v = self.cmd("HGETALL", k) if t == "hash" else self.cmd("GET", k) if t == "string" \
                else []
            for x in v if isinstance(v, list) else [v]:
                blob += str(x).encode() + b"\n"
        return blob


def _read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise OSError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("latin-1")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError("bad reply %r" % line)


def config(port, echo, redis_port, on_error="allow", workers=2):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
workers: %(workers)d
access_log: off
rate_limit_store: {type: redis, url: "redis://127.0.0.1:%(redis)d/0", on_error: %(on_error)s,
                   prefix: pgtest, timeout: 200ms}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"], admin: true}
upstreams:
  - name: b5
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
    rate_limit: {rate: 1/min, burst: 5}
  - name: b5again
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
    rate_limit: {rate: 1/min, burst: 5}
  - name: cool
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
  - name: acc
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
    rate_limit: {rate: 20/s, burst: 20}
  - name: free
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: %(token)s}
    rate_limit: {rate: 100000/s, burst: 100000}
""" % dict(port=port, echo=echo, redis=redis_port, on_error=on_error, workers=workers,
           alice=sha(KEY_ALICE), token=TOKEN)


class Gateway:
    """One more panelgate instance on the same fakes and redis."""

    def __init__(self, text, port):
        self.port = port
        self.tmp = tempfile.mkdtemp(prefix="pgtest-b-")
        path = os.path.join(self.tmp, "pg.yaml")
        with open(path, "w") as f:
            f.write(text)
        self.err = open(os.path.join(self.tmp, "gw.err"), "wb")
        self.proc = subprocess.Popen([pgtest.PANELGATE, "-c", path], stdout=self.err,
                                     stderr=self.err)
        pgtest.wait_port(port, self.proc)

    def get(self, path):
        c = Conn(self.port)
        try:
            h = dict(auth(KEY_ALICE))
            h["Connection"] = "close"
            return c.request("GET", path, h)
        finally:
            c.close()

    def output(self):
        self.err.flush()
        with open(os.path.join(self.tmp, "gw.err"), "rb") as f:
            return f.read()

    def stop(self):
        rc = pgtest.stop_proc(self.proc)
        self.err.close()
        with open(os.path.join(self.tmp, "gw.err"), "rb") as f:
            out = f.read()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("second panelgate exited with %r\n%s" %
                                 (rc, out[-3000:].decode("latin-1")))


def echo_knob(env, query):
    pgtest.fake_call(env.echo_port, "POST", "/_fake/config?" + query)


def start_pair(cls, config_a, config_b, fake_args=None):
    """A redis-server and two instances on it (cls.redis, cls.a with the fakes, cls.b on
    cls.b_port); whatever started is stopped again if a later step fails."""
    cls.redis = Redis().start()
    cls.b_port = free_port()
    try:
        cls.a = pgtest.Env(config_a, fake_args=fake_args)
        cls.a.start()
    except Exception:
        cls.redis.cleanup()
        raise
    try:
        cls.b = Gateway(config_b(cls.a), cls.b_port)
    except Exception:
        cls.a.stop()
        cls.redis.cleanup()
        raise


def stop_pair(cls):
    try:
        cls.b.stop()
    finally:
        try:
            cls.a.stop()
        finally:
            cls.redis.cleanup()


@unittest.skipUnless(REDIS_BIN, "redis-server is not installed (deploy/deps.sh installs it)")
class TwoInstances(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_pair(cls, lambda env: config(env.port, env.echo_port, cls.redis.port),
                   lambda a: config(cls.b_port, a.echo_port, cls.redis.port))

    @classmethod
    def tearDownClass(cls):
        stop_pair(cls)

    def via(self, i, path):
        return self.a.get(path) if i % 2 == 0 else self.b.get(path)

    def test_1_bucket_across_instances(self):
        """12 requests alternating between the instances against burst 5: exactly 5 pass, and
        the panel sees exactly 5."""
        self.a.fake_reset()
        codes = [self.via(i, "/b5/x?i=%d" % i).status for i in range(12)]
        self.assertEqual(codes, [200] * 5 + [429] * 7)
        self.assertEqual(self.a.fake_stats()["hits"], 5)

    def test_2_cooldown_across_instances(self):
        """A panel 429 seen by instance A: instance B answers 429 without calling the panel."""
        self.a.fake_reset()
        echo_knob(self.a, "ratelimit=1&retry_after=3")
        r = self.a.get("/cool/x")
        self.assertEqual(r.status, 429)
        self.assertEqual(self.a.fake_stats()["hits"], 1)
        for i in range(6):
            r = self.b.get("/cool/x?i=%d" % i)
            self.assertEqual(r.status, 429, r)
            self.assertEqual(r.json()["error"]["code"], "rate_limited")
            self.assertIn(r.header("retry-after"), ("1", "2", "3"))
        self.assertEqual(self.a.fake_stats()["hits"], 1)
        self.a.fake_reset()

    def test_3_accuracy(self):
        """10 s at 4x the rate (20/s, burst 20) through both instances, 2 workers each: the
        panel sees at most rate x 10 s + burst + 1% and at least 95% of that."""
        self.a.fake_reset()
        stop = time.time() + 10
        codes = {}
        lock = threading.Lock()

        def run(i):
            c = Conn(self.a.port if i % 2 == 0 else self.b_port)
            n = 0
            try:
                t0 = time.time()
                while time.time() < stop:
                    r = c.request("GET", "/acc/x", auth(KEY_ALICE))
                    with lock:
                        codes[r.status] = codes.get(r.status, 0) + 1
                    n += 1
                    # 8 threads x 10/s = 80/s = 4 x 20/s
                    time.sleep(max(0, t0 + n * 0.1 - time.time()))
            finally:
                c.close()

        ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        hits = self.a.fake_stats()["hits"]
        ceiling = 20 * 10 + 20
        print("accuracy: %d to the panel (ceiling %d), answers %r" % (hits, ceiling, codes))
        self.assertLessEqual(hits, ceiling * 1.01)
        self.assertGreaterEqual(hits, ceiling * 0.95)
        self.assertEqual(codes.get(200, 0), hits)
        self.assertEqual(set(codes), {200, 429})

    def test_5_leases_spare_round_trips(self):
        """A bucket that refills fast (100000/s) is asked for up to 32 tokens at a time: 320
        requests cost at most a few dozen scripts in redis, all answered 200."""
        def scripts():
            info = self.redis.cmd("INFO", "commandstats")
            m = re.search(r"cmdstat_evalsha:calls=(\d+)", info)
            return int(m.group(1)) if m else 0
        before = scripts()
        c = Conn(self.a.port)
        try:
            for i in range(320):
                self.assertEqual(c.request("GET", "/free/l?i=%d" % i, auth(KEY_ALICE)).status,
                                 200)
        finally:
            c.close()
        calls = scripts() - before
        print("leases: 320 requests, %d scripts" % calls)
        self.assertLessEqual(calls, 40)
        self.assertGreaterEqual(calls, 10)

    def test_6_scripts_flushed(self):
        """SCRIPT FLUSH (a restarted or failed-over redis knows no script): the next requests
        send the script whole once (NOSCRIPT) and are answered as before."""
        self.assertEqual(self.redis.cmd("SCRIPT", "FLUSH"), "OK")
        for i in range(4):
            self.assertEqual(self.via(i, "/b5again/f?i=%d" % i).status, 200)
        info = self.redis.cmd("INFO", "commandstats")
        self.assertIn("cmdstat_eval:", info)

    def test_4_nothing_secret_in_redis(self):
        """Every key and value in redis: none holds the configured bearer token or a key."""
        self.assertTrue(self.a.get("/free/x").status == 200)
        blob = self.redis.dump()
        self.assertIn(b"pgtest:b:u:b5", blob)  # a string: "level last rate period cap"
        for secret in (TOKEN, KEY_ALICE, sha(KEY_ALICE)[7:]):
            self.assertNotIn(secret.encode(), blob)


SESSION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"  # fake
OPENPANEL = free_port()
NAVIXY = free_port()
PANEL_SECRETS = ["fake-op-admin", "fake-op-pass", "fake-navixy-user", "fake-navixy-pass",
                 SESSION_KEY]


def session_config(port, redis_port):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
workers: 2
access_log: off
rate_limit_store: {type: redis, url: "redis://127.0.0.1:%(redis)d/0", prefix: pgtest,
                   timeout: 200ms, session_key: "%(skey)s"}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"], admin: true}
upstreams:
  - name: openpanel
    url: http://127.0.0.1:%(openpanel)d
    auth: {type: openpanel_jwt, username: fake-op-admin, password: fake-op-pass}
  - name: navixy
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: navixy_x
    url: http://127.0.0.1:%(navixy)d/v2
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
""" % dict(port=port, redis=redis_port, skey=SESSION_KEY, alice=sha(KEY_ALICE),
           openpanel=OPENPANEL, navixy=NAVIXY)


@unittest.skipUnless(REDIS_BIN, "redis-server is not installed (deploy/deps.sh installs it)")
class SharedSessions(unittest.TestCase):
    """Panel sessions through redis: one login for the fleet, sealed at rest."""

    @classmethod
    def setUpClass(cls):
        start_pair(cls, lambda env: session_config(env.port, cls.redis.port),
                   lambda a: session_config(cls.b_port, cls.redis.port),
                   fake_args=["--openpanel", str(OPENPANEL), "--navixy", str(NAVIXY)])
        cls.issued = set()  # every session value the fakes were sent, for the scan
        # navixy_x's one login, early: an expiry may lead to a new login only 10 s after the
        # last one (SPEC section 1), and test_3 needs that new login
        assert cls.a.get("/navixy_x/tracker/list").status == 200
        cls.x_login_at = time.time()

    @classmethod
    def tearDownClass(cls):
        stop_pair(cls)

    def note_issued(self, port):
        last = json.dumps(pgtest.fake_call(port, "GET", "/_fake/stats").get("last_request"))
        for m in re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]+|\b[0-9a-f]{32}\b", last):
            self.issued.add(m)

    def test_1_one_login_for_the_fleet(self):
        """20 simultaneous cold requests spread over both instances (0.8 s login): one
        OpenPanel login, 20 x 200."""
        pgtest.fake_call(OPENPANEL, "POST", "/_fake/reset")
        pgtest.fake_call(OPENPANEL, "POST", "/_fake/config?login_delay_ms=800")
        gws = [self.a, self.b]
        rs = pgtest.parallel(20, lambda i: gws[i % 2].get("/openpanel/api/users?i=%d" % i))
        self.assertEqual([r.status for r in rs], [200] * 20)
        st = pgtest.fake_call(OPENPANEL, "GET", "/_fake/stats")
        self.assertEqual(st["logins"], 1)
        self.assertEqual(st["hits"], 21)
        self.note_issued(OPENPANEL)

    def test_2_session_made_by_one_used_by_other(self):
        """A Navixy session made by instance A is used by instance B without a login."""
        pgtest.fake_call(NAVIXY, "POST", "/_fake/reset?sessions=keep")  # navixy_x's stays (test_3)
        self.assertEqual(self.a.get("/navixy/tracker/list").status, 200)
        self.note_issued(NAVIXY)
        for i in range(3):
            self.assertEqual(self.b.get("/navixy/tracker/list?i=%d" % i).status, 200)
        self.note_issued(NAVIXY)
        st = pgtest.fake_call(NAVIXY, "GET", "/_fake/stats")
        self.assertEqual(st["logins"], 1)
        self.assertEqual(st["hits"], 5)

    def test_3_expiry_retires_for_all(self):
        """The panel ends its sessions: the instance that hears it first logs in again (one
        login) and retires the old session in redis; the other, told its session expired,
        picks the new one up instead of logging in itself."""
        self.assertEqual(self.b.get("/navixy_x/tracker/list").status, 200)  # A's session
        time.sleep(max(0, self.x_login_at + 10.3 - time.time()))
        pgtest.fake_call(NAVIXY, "POST", "/_fake/reset?sessions=keep")
        pgtest.fake_call(NAVIXY, "POST", "/_fake/expire")
        self.assertEqual(self.a.get("/navixy_x/tracker/list?x=1").status, 200)
        self.note_issued(NAVIXY)
        self.assertEqual(self.b.get("/navixy_x/tracker/list?x=2").status, 200)
        st = pgtest.fake_call(NAVIXY, "GET", "/_fake/stats")
        self.assertEqual(st["logins"], 1, st)
        self.assertEqual(st["hits"], 5, st)  # A: refused + login + replay; B: refused + replay

    def test_4_nothing_usable_in_redis(self):
        """Every key and value in redis: no configured secret, no session hash or JWT the fakes
        issued (sealed values only)."""
        blob = self.redis.dump()
        self.assertIn(b"pgtest:s:openpanel:", blob)
        self.assertIn(b"pgtest:s:navixy:", blob)
        self.assertGreaterEqual(len(self.issued), 2, self.issued)
        for secret in PANEL_SECRETS + sorted(self.issued):
            self.assertNotIn(secret.encode(), blob, secret)


@unittest.skipUnless(REDIS_BIN, "redis-server is not installed (deploy/deps.sh installs it)")
class AuthAndDb(unittest.TestCase):
    def start(self, server_pw, gateway_pw):
        """A redis-server wanting server_pw, and a gateway whose url is
        redis://:${PG_TEST_REDIS_PASSWORD}@host:port/3 with that variable gateway_pw."""
        redis = Redis().start(password=server_pw)
        os.environ["PG_TEST_REDIS_PASSWORD"] = gateway_pw

        def cfg(e):
            return config(e.port, e.echo_port, redis.port).replace(
                '"redis://127.0.0.1:%d/0"' % redis.port,
                '"redis://:${PG_TEST_REDIS_PASSWORD}@127.0.0.1:%d/3"' % redis.port)
        try:
            return redis, pgtest.Env(cfg).start()
        except Exception:
            redis.cleanup()
            raise

    def test_password_and_db_from_the_url(self):
        """redis://:password@host:port/3 (the password from the environment): the gateway
        authenticates, its keys land in db 3, and the password appears nowhere in its log."""
        pw = "fake-redis-password-42"
        redis, env = self.start(pw, pw)
        try:
            self.assertEqual(env.get("/b5/x").status, 200)
            self.assertEqual(redis.cmd("KEYS", "*", db=3), ["pgtest:b:u:b5"])
            self.assertEqual(redis.cmd("KEYS", "*"), [])
            self.assertEqual(env.get("/_gateway/status").json()["store"]["state"], "ok")
            self.assertNotIn(pw.encode(), env.gateway_output())
        finally:
            try:
                env.stop()
            finally:
                redis.cleanup()


    def test_wrong_password_logged_once(self):
        """A server that takes connections but refuses the password is down (on_error decides),
        retried with the backoff, and said once per worker in the log -- not three lines every
        100 ms (connected, refused, unreachable)."""
        redis, env = self.start("fake-redis-password-42", "not-the-fake-password")
        try:
            for _ in range(4):  # b5's burst is 5: on_error allow, the local mirror counts
                self.assertEqual(env.get("/b5/x").status, 200)
                time.sleep(0.6)
            self.assertEqual(env.get("/_gateway/status").json()["store"]["state"], "down")
            out = env.gateway_output().decode("utf-8", "replace")
            workers = 2  # config()'s
            refused = [ln for ln in out.splitlines() if "WRONGPASS" in ln or "invalid" in ln]
            self.assertTrue(1 <= len(refused) <= workers, out[-3000:])
            self.assertNotRegex(out, r"(?m): reachable$", out[-3000:])  # never reached
            self.assertLessEqual(out.count("unreachable"), 1, out[-3000:])
            self.assertNotIn("not-the-fake-password", out)
        finally:
            try:
                env.stop()
            finally:
                redis.cleanup()


@unittest.skipUnless(REDIS_BIN, "redis-server is not installed (deploy/deps.sh installs it)")
class NamedRedis(unittest.TestCase):
    def test_host_name_resolved_on_the_loop(self):
        """redis://NAME:port: the name goes through the worker's resolver (`resolver:`), on the
        loop -- a DNS server slow to answer (0.8 s) holds up no request meanwhile (hiredis would
        resolve it itself, blocking the loop, and through /etc/resolv.conf) -- and once it
        answers the store is reachable and the buckets live in redis."""
        redis = Redis().start()
        dns = pgtest.FakeDns()
        dns.names["redis.pgtest.invalid"] = "127.0.0.1"
        dns.delay = 0.8
        env = None
        try:
            def cfg(e):
                return ('resolver: ["127.0.0.1:%d"]\n' % dns.port) + config(
                    e.port, e.echo_port, redis.port).replace(
                    '"redis://127.0.0.1:%d/0"' % redis.port,
                    '"redis://redis.pgtest.invalid:%d/0"' % redis.port)
            env = pgtest.Env(cfg).start()
            slowest = 0.0
            for i in range(6):  # while the answer is on its way: on_error allow serves
                t0 = time.monotonic()
                self.assertEqual(env.get("/free/x?i=%d" % i).status, 200)
                slowest = max(slowest, time.monotonic() - t0)
            self.assertLess(slowest, 0.4)
            self.assertEqual(redis.cmd("KEYS", "*"), [])  # not connected yet
            end = time.monotonic() + 5
            while len(redis.cmd("CLIENT", "LIST").splitlines()) < 3:  # 2 workers + this one
                self.assertLess(time.monotonic(), end)
                time.sleep(0.05)
            self.assertEqual(env.get("/b5/x").status, 200)
            self.assertEqual(env.get("/_gateway/status").json()["store"]["state"], "ok")
            self.assertEqual(redis.cmd("KEYS", "pgtest:b:*"), ["pgtest:b:u:b5"])
            self.assertGreaterEqual(dns.queries, 1)
        finally:
            try:
                if env:
                    env.stop()
            finally:
                dns.stop()
                redis.cleanup()


@unittest.skipUnless(REDIS_BIN, "redis-server is not installed (deploy/deps.sh installs it)")
class RedisGoesAway(unittest.TestCase):
    def test_kill_and_restart(self):
        """redis-server killed mid-traffic: on_error allow fails no request, deny answers 503
        envelopes, the store-error metric moves; redis back on the same port: within 2 s the
        deny instance serves again and the instances share a bucket again."""
        redis = Redis().start()
        a = b = None
        try:
            a = pgtest.Env(lambda env: config(env.port, env.echo_port, redis.port, "allow"))
            a.start()
            b_port = free_port()
            b = Gateway(config(b_port, a.echo_port, redis.port, "deny"), b_port)
            self.assertEqual(a.get("/free/x").status, 200)
            self.assertEqual(b.get("/free/x").status, 200)
            redis.stop()
            time.sleep(0.1)  # the workers notice the closed connections
            st = a.get("/_gateway/status").json()["store"]
            self.assertEqual(st, {"type": "redis", "state": "down"})
            for i in range(20):
                self.assertEqual(a.get("/free/x?i=%d" % i).status, 200)
                r = b.get("/free/x?i=%d" % i)
                self.assertEqual(r.status, 503, r)
                e = r.json()["error"]
                self.assertEqual(e["code"], "upstream_unavailable")
                self.assertGreaterEqual(e["retry_after"], 1)
            for g in (a, b):
                m = g.get("/_gateway/metrics").body
                line = [x for x in m.split(b"\n")
                        if x.startswith(b'panelgate_store_errors_total{store="redis"}')]
                self.assertEqual(len(line), 1, m)
                self.assertGreaterEqual(int(line[0].split()[-1]), 20)
            redis.start()
            t0 = time.time()
            while b.get("/free/y").status != 200:
                self.assertLess(time.time() - t0, 2.0, "deny instance still refusing after 2 s")
                time.sleep(0.05)
            print("redis back: served again after %.2f s" % (time.time() - t0))
            while a.get("/_gateway/status").json()["store"]["state"] != "ok":
                self.assertLess(time.time() - t0, 2.0, "allow instance: store still down")
                time.sleep(0.05)
            codes = [(a if i % 2 == 0 else b).get("/b5again/x?i=%d" % i).status
                     for i in range(10)]
            self.assertEqual(sorted(codes), [200] * 5 + [429] * 5)
            out = a.gateway_output() + b.output()
            self.assertIn(b"unreachable", out)
            # reached at start and again after the restart, by each instance
            self.assertGreaterEqual(len(re.findall(rb"(?m): reachable$", out)), 4, out[-3000:])
        finally:
            try:
                if b:
                    b.stop()
            finally:
                try:
                    if a:
                        a.stop()
                finally:
                    redis.cleanup()


if __name__ == "__main__":
    pgtest.main()
