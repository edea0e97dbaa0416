"""Command line and process life (SPEC sections 7, 8): --check on every shipped config and on
broken ones, keygen, --version, SIGHUP reload, SIGTERM drain."""

import glob
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, KEY_BOB, auth, sha

SRC = os.environ.get("PG_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))


def run(*args, env=None):
    return subprocess.run([pgtest.PANELGATE] + list(args), capture_output=True, text=True,
                          timeout=30, env=env)


class Cli(unittest.TestCase):
    def test_check_every_shipped_config(self):
        """Each conf/*.yaml, with the environment variables and secret files it names
        (${NAME}, file:/run/secrets/panelgate/NAME) given fake values."""
        files = sorted(glob.glob(os.path.join(SRC, "conf", "*.yaml")))
        self.assertGreaterEqual(len(files), 2)
        for f in files:
            with open(f) as fh:
                text = fh.read()
            body = re.sub(r"(?m)(^|\s)#.*$", "", text)
            env = dict(os.environ)
            env.update({n: "fake-" + n.lower() for n in re.findall(r"\$\{([A-Z_0-9]+)\}", body)})
            with tempfile.TemporaryDirectory() as d:
                for n in set(re.findall(r"file:/run/secrets/panelgate/([a-z_]+)", body)):
                    with open(os.path.join(d, n), "w") as fh:
                        fh.write("fake-%s\n" % n)
                conf = os.path.join(d, os.path.basename(f))
                with open(conf, "w") as fh:
                    fh.write(text.replace("file:/run/secrets/panelgate/", "file:%s/" % d))
                p = run("--check", "-c", conf, env=env)
            self.assertEqual(p.returncode, 0, (f, p.stderr))

    def test_check_broken_names_line_and_column(self):
        cases = [
            ("listen: {address: 127.0.0.1, port: 8080}\nupstreams:\n  - name: a\n"
             "    url: http://127.0.0.1:1\n    timout: 1s\n", r":5:5: .*timout"),
            ("listen: [1, 2]\n", r":1:9: "),
            ("upstreams:\n  - {name: a, url: http://x, timeout: 10}\n", r":2:\d+: .*timeout"),
            ("upstreams: [\n", r":\d+:\d+: "),
        ]
        with tempfile.TemporaryDirectory() as d:
            for i, (text, pat) in enumerate(cases):
                f = os.path.join(d, "bad%d.yaml" % i)
                with open(f, "w") as fh:
                    fh.write(text)
                p = run("--check", "-c", f)
                self.assertEqual(p.returncode, 1, text)
                self.assertRegex(p.stderr, re.escape(f) + pat)
            p = run("--check", "-c", os.path.join(d, "missing.yaml"))
            self.assertEqual(p.returncode, 1)
            self.assertIn("missing.yaml", p.stderr)

    def test_keygen(self):
        p = run("keygen", "--name", "billing")
        self.assertEqual(p.returncode, 0, p.stderr)
        key = p.stdout.splitlines()[0]
        self.assertRegex(key, r"^pgk_[0-9a-f]{40}$")
        m = re.search(r'\{name: billing, key: "(sha256:[0-9a-f]{64})"', p.stdout)
        self.assertIsNotNone(m)
        self.assertEqual(m.group(1), sha(key))
        self.assertNotEqual(key, run("keygen", "--name", "billing").stdout.splitlines()[0])
        self.assertEqual(run("keygen", "--name", "bad name").returncode, 2)
        self.assertEqual(run("keygen").returncode, 2)

    def test_version_and_usage(self):
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^panelgate \d+\.\d+\.\d+")
        self.assertEqual(run("--bogus").returncode, 2)
        self.assertEqual(run().returncode, 2)


def config(allow_bob):
    def f(env):
        return """
listen: {address: 127.0.0.1, port: %(port)d}
access_log: off
drain_timeout: 5s
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
  - {name: bob, key: "%(bob)s", allow: [%(bob_allow)s]}
upstreams:
  - name: echo
    url: http://127.0.0.1:%(echo)d
    auth: {type: static, bearer: cli-test-token}
""" % dict(port=env.port, echo=env.echo_port, alice=sha(KEY_ALICE), bob=sha(KEY_BOB),
           bob_allow="echo" if allow_bob else "")
    return f


class Lifecycle(unittest.TestCase):
    def test_sighup_reload_and_bad_reload_kept(self):
        env = pgtest.Env(config(False)).start()
        try:
            self.assertEqual(env.get("/echo/x", key=KEY_BOB).status, 403)
            c = env.conn()  # a keep-alive connection that lives across the reload
            self.assertEqual(c.request("GET", "/echo/x", auth(KEY_BOB)).status, 403)
            with open(env.config, "w") as fh:
                fh.write(config(True)(env))
            env.gw.send_signal(signal.SIGHUP)
            end = time.monotonic() + 5
            while env.get("/echo/x", key=KEY_BOB).status != 200:
                self.assertLess(time.monotonic(), end)
                time.sleep(0.05)
            # the cached key check of the old connection does not outlive the reload
            self.assertEqual(c.request("GET", "/echo/x", auth(KEY_BOB)).status, 200)
            c.close()
            with open(env.config, "w") as fh:
                fh.write("listen: {port: nope}\n")
            env.gw.send_signal(signal.SIGHUP)
            end = time.monotonic() + 5
            while b"reload failed" not in env.gateway_output():
                self.assertLess(time.monotonic(), end)
                time.sleep(0.05)
            self.assertEqual(env.get("/echo/x", key=KEY_BOB).status, 200)
        finally:
            env.stop()

    def test_sigterm_drains_in_flight(self):
        env = pgtest.Env(config(True)).start()
        try:
            result = {}

            def slow():
                result["r"] = env.get("/echo/slow?delay_ms=800")

            t = threading.Thread(target=slow)
            t.start()
            end = time.monotonic() + 5
            while env.fake_stats()["inflight"] != 1:
                self.assertLess(time.monotonic(), end)
                time.sleep(0.02)
            env.gw.send_signal(signal.SIGTERM)
            t.join(10)
            self.assertEqual(result["r"].status, 200)
            self.assertEqual(env.gw.wait(10), 0)
        finally:
            env.stop()


if __name__ == "__main__":
    pgtest.main()
