"""test_systemd -- deploy/systemd/panelgate.service: `systemd-analyze security --offline=yes`
rates its exposure 3.0 or lower (and rates a bare unit higher, so the figure is read right);
the unit has the settings README promises; its LoadCredential= names are exactly the
config's file:/run/credentials/panelgate.service/ secrets; that config passes --check; stopping
waits longer than drain_timeout; and every system call the gateway makes under traffic (strace)
is one the unit's SystemCallFilter= allows. Exit 77 when systemd-analyze is missing."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import deploytest as dt

if not shutil.which("systemd-analyze"):
    dt.skip("systemd-analyze not installed (Debian package systemd; deploy/deps.sh installs it)")

import pgtest  # noqa: E402 -- after the skip: tests/integration is on the path via deploytest

UNIT = dt.src("deploy", "systemd", "panelgate.service")
CONF = dt.src("deploy", "systemd", "panelgate.yaml")
CRED = "/run/credentials/panelgate.service/"
MAX_EXPOSURE = 3.0


def exposure(path):
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout + p.stderr)
    if not m:
        raise AssertionError("no exposure figure in:\n" + p.stdout + p.stderr)
    return float(m.group(1)), p.stdout


def unit_settings(text):
    """[Service] settings: {key: [values]} in order."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def filter_sets(names):
    """Every system call in the given systemd-analyze syscall-filter sets, groups expanded."""
    out = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
            continue
        p = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                           capture_output=True, text=True, timeout=30, check=True)
        for line in p.stdout.splitlines()[1:]:
            w = line.strip()
            if w and not w.startswith("#"):
                out |= filter_sets([w.split()[0]])
    return out


class Unit(unittest.TestCase):
    def setUp(self):
        self.text = dt.readf(UNIT)
        self.s = unit_settings(self.text)

    def test_exposure(self):
        score, report = exposure(UNIT)
        print("systemd-analyze security --offline=yes: exposure %.1f" % score)
        self.assertLessEqual(score, MAX_EXPOSURE, report)

    def test_bare_unit_rates_worse(self):
        """A unit with the same ExecStart and no sandbox rates above the bound: the figure read
        above is the one systemd-analyze computes for our settings."""
        with tempfile.TemporaryDirectory() as d:
            bare = os.path.join(d, "panelgate.service")
            with open(bare, "w") as f:
                f.write("[Service]\nType=simple\nExecStart=/usr/bin/panelgate -c /etc/x.yaml\n")
            score, _ = exposure(bare)
        self.assertGreater(score, MAX_EXPOSURE)

    def test_settings(self):
        s = self.s
        want = {"Type": "notify", "NotifyAccess": "main", "DynamicUser": "yes", "NoNewPrivileges": "yes",
                "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes"}
        for k, v in want.items():
            self.assertEqual(s.get(k), [v], k)
        self.assertIn("/bin/kill -HUP $MAINPID", s["ExecReload"])
        self.assertIn("@system-service", s["SystemCallFilter"])
        self.assertEqual(s["ExecStart"], ["/usr/bin/panelgate -c /etc/panelgate/panelgate.yaml"])
        self.assertEqual(s["ConfigurationDirectory"], ["panelgate"])

    def test_stop_waits_longer_than_drain(self):
        conf = dt.active(dt.readf(CONF))
        m = re.search(r"(?m)^drain_timeout:\s*(\S+)", conf)
        drain = dt.duration_ms(m.group(1)) if m else 10000  # SPEC 7 default
        stop = dt.duration_ms(self.s["TimeoutStopSec"][-1])
        self.assertGreater(stop, drain)

    def test_credentials_match_config(self):
        conf = dt.readf(CONF)
        used = dt.secret_files(dt.active(conf), CRED)
        loaded = sorted(v.split(":", 1)[0] for v in self.s.get("LoadCredential", []))
        self.assertTrue(used)
        self.assertEqual(used, loaded)
        for v in self.s["LoadCredential"]:
            self.assertRegex(v, r"^[a-z_]+:/etc/panelgate/credentials/[a-z_]+$")

    def test_config_passes_check(self):
        conf = dt.readf(CONF)
        files = {n: "fake-%s\n" % n for n in dt.secret_files(dt.active(conf), CRED)}
        rc, out = dt.check_config(conf, None, files, CRED)
        self.assertEqual(rc, 0, out)


class SyscallFilter(unittest.TestCase):
    """What the gateway calls at start, under traffic (a login, a named upstream through
    libcurl, the redis store, the admin endpoints), on SIGHUP and on SIGTERM, against what
    the unit's SystemCallFilter= lines allow. Unit settings cannot be run here (no systemd as
    PID 1), so this is how the filter is known not to break the service."""

    def test_filter_allows_every_call(self):
        if not shutil.which("strace"):
            self.skipTest("strace not installed (deploy/deps.sh installs it)")
        if not shutil.which("redis-server"):
            self.skipTest("redis-server not installed")
        s = unit_settings(dt.readf(UNIT))
        allow, deny = set(), set()
        for v in s["SystemCallFilter"]:
            (deny if v.startswith("~") else allow).update(filter_sets(v.lstrip("~").split()))
        allowed = allow - deny
        self.assertIn("read", allowed)
        self.assertNotIn("mount", allowed)

        tmp = tempfile.mkdtemp(prefix="pgsyscall-")
        procs = []
        notify = None
        try:
            rport, fp_echo, fp_navixy, port = (pgtest.free_port() for _ in range(4))
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            fake = subprocess.Popen([pgtest.FAKEPANELS, "--echo", str(fp_echo), "--navixy",
                                     str(fp_navixy)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            procs.append(fake)
            pgtest.wait_line(fake, "ready")
            pgtest.wait_port(rport, procs[0])
            conf = os.path.join(tmp, "pg.yaml")
            with open(conf, "w") as f:
                f.write("""
listen: {address: 127.0.0.1, port: %d}
workers: 2
rate_limit_store: {type: redis, url: "redis://127.0.0.1:%d/0", session_key: "%s"}
consumers: [{name: a, key: "%s", allow: ["*"], admin: true}]
upstreams:
  - {name: echo, url: "http://127.0.0.1:%d", auth: {type: static, bearer: fake-token}}
  - {name: named, url: "http://localhost:%d", auth: {type: static, bearer: fake-token}}
  - name: navixy
    url: "http://127.0.0.1:%d/v2"
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
""" % (port, rport, "00" * 32, pgtest.sha(pgtest.KEY_ALICE), fp_echo, fp_echo, fp_navixy))
            trace = os.path.join(tmp, "trace")
            # as under Type=notify: the readiness datagrams' calls are traced too
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(os.path.join(tmp, "notify"))
            st = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, pgtest.PANELGATE, "-c",
                                   conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify")))
            procs.append(st)
            pgtest.wait_port(port, st)
            env = pgtest.Env.__new__(pgtest.Env)  # only its request helpers
            env.port = port

            def hit():
                for path in ("/echo/x", "/named/y", "/navixy/tracker/list", "/_gateway/status",
                             "/_gateway/metrics", "/_gateway/health"):
                    r = env.get(path)
                    self.assertEqual(r.status, 200, (path, r))

            hit()
            with open("/proc/%d/task/%d/children" % (st.pid, st.pid)) as f:
                gw = int(f.read().split()[0])  # strace's child: the gateway
            os.kill(gw, signal.SIGHUP)
            pgtest.wait_port(port, st)
            hit()
            os.kill(gw, signal.SIGTERM)
            self.assertEqual(st.wait(timeout=30), 0)
            notify.settimeout(1)
            self.assertIn(b"READY=1", notify.recv(4096))
            used = set()
            with open(trace) as f:
                for line in f:
                    m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
                    if m:
                        used.add(m.group(1))
            self.assertGreater(len(used), 20, used)
            print("system calls made: %d, all in the filter: %s" % (
                len(used), not (used - allowed)))
            self.assertEqual(used - allowed - {"execve"}, set(),
                             "calls the unit's SystemCallFilter= would refuse")
        finally:
            if notify:
                notify.close()
            for p in reversed(procs):
                pgtest.stop_proc(p)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
