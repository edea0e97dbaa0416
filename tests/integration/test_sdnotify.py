"""systemd's readiness protocol (Type=notify, sd_notify(3)): a datagram socket named by
$NOTIFY_SOCKET hears READY=1 once the gateway accepts connections, RELOADING=1 then READY=1
around SIGHUP (also when the new file is refused), STOPPING=1 when SIGTERM starts the drain.
The gateway runs the same without the variable, or with one that names nothing usable."""

import os
import signal
import socket
import tempfile
import time
import unittest

import pgtest
from pgtest import KEY_ALICE, sha


def config(env):
    return """
listen: {address: 127.0.0.1, port: %d}
access_log: off
consumers:
  - {name: alice, key: "%s", allow: ["*"]}
upstreams:
  - {name: echo, url: "http://127.0.0.1:%d", auth: {type: static, bearer: notify-test-token}}
""" % (env.port, sha(KEY_ALICE), env.echo_port)


class Notify(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pg-notify-")
        self.saved = os.environ.get("NOTIFY_SOCKET")

    def tearDown(self):
        if self.saved is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = self.saved
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)

    def listen(self, name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind("\0" + name[1:] if name.startswith("@") else name)
        s.settimeout(10)
        os.environ["NOTIFY_SOCKET"] = name
        return s

    def messages(self, s, until):
        """Datagrams as text until one contains `until` (bounded by the socket's timeout)."""
        got = []
        while not any(until in m for m in got):
            got.append(s.recv(4096).decode())
        return got

    def run_gateway(self, name):
        s = self.listen(name)
        env = pgtest.Env(config)
        try:
            env.start()
            ready = self.messages(s, "READY=1")
            self.assertEqual(len(ready), 1, ready)
            self.assertIn("STATUS=serving", ready[0])
            # ready means accepting: a request right away is answered
            self.assertEqual(env.get("/echo/x").status, 200)
            env.gw.send_signal(signal.SIGHUP)
            got = self.messages(s, "READY=1")
            self.assertEqual(len(got), 2, got)
            self.assertTrue(got[0].startswith("RELOADING=1\nMONOTONIC_USEC="), got)
            self.assertGreater(int(got[0].split("MONOTONIC_USEC=")[1]), 0)
            self.assertIn("STATUS=serving (reloaded)", got[1])
            # a refused file: still READY=1 again, the running config serves
            with open(env.config, "a") as f:
                f.write("nonsense: [\n")
            env.gw.send_signal(signal.SIGHUP)
            got = self.messages(s, "READY=1")
            self.assertEqual(got[0].split("\n")[0], "RELOADING=1")
            self.assertIn("reload refused", got[1])
            self.assertEqual(env.get("/echo/x").status, 200)
            env.gw.send_signal(signal.SIGTERM)
            got = self.messages(s, "STOPPING=1")
            self.assertEqual(got, ["STOPPING=1\nSTATUS=draining"])
            self.assertEqual(env.gw.wait(timeout=10), 0)
        finally:
            env.stop()
            s.close()

    def test_path_socket(self):
        self.run_gateway(os.path.join(self.dir, "notify"))

    def test_abstract_socket(self):
        self.run_gateway("@pg-notify-test-%d" % os.getpid())

    def test_unusable_socket_is_no_failure(self):
        os.environ["NOTIFY_SOCKET"] = os.path.join(self.dir, "nobody-listens")
        env = pgtest.Env(config)
        try:
            env.start()
            self.assertEqual(env.get("/echo/x").status, 200)
            env.gw.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertEqual(env.get("/echo/x").status, 200)
            out = env.gateway_output()
            self.assertEqual(out.count(b"NOTIFY_SOCKET"), 1, out[-2000:])  # said once
        finally:
            env.stop()  # raises unless it exited 0


if __name__ == "__main__":
    pgtest.main()
