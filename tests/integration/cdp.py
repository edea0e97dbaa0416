"""cdp -- headless Chromium driven over the Chrome DevTools Protocol on --remote-debugging-pipe
(Chromium reads NUL-terminated JSON messages on fd 3 and writes its own to fd 4). Standard library
only: no npm, no pip. One Browser per test; close() kills every process it started, also when a
test fails. Every wait is bounded."""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# without the background-networking flags Chromium keeps trying to reach Google's servers,
# which on a closed network is a flood of failing connections
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage",
    "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--password-store=basic", "--mute-audio", "--hide-scrollbars", "--window-size=1280,900",
    "--remote-debugging-pipe",
]


def available():
    """None when Chromium can run here, else why not."""
    if not os.access(CHROMIUM, os.X_OK):
        return "%s not found (Debian package chromium; deploy/deps.sh installs it)" % CHROMIUM
    return None


class CDPError(RuntimeError):
    pass


class CDPTimeout(CDPError):
    pass


class Browser:
    def __init__(self, timeout=10.0):
        self.timeout = timeout  # default bound on every call
        self.profile = tempfile.mkdtemp(prefix="pg-chromium-")
        self.next_id = 0
        self.events = []  # (sessionId, method, params), oldest first
        self.rbuf = b""
        self.proc = None
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        to_r, self.to_w = os.pipe()      # we write, Chromium reads on fd 3
        self.from_r, from_w = os.pipe()  # Chromium writes on fd 4, we read

        def fds_3_4():
            # via fds >= 10 first: one of the pipe ends may itself be fd 3 or 4
            a = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.close(a)
            os.close(b)

        try:
            self.proc = subprocess.Popen(
                [CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile, "about:blank"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                close_fds=False, preexec_fn=fds_3_4, start_new_session=True)
        except Exception:
            self.close()
            raise
        finally:
            os.close(to_r)
            os.close(from_w)

    # -- the pipe --

    def _send(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        end = time.monotonic() + self.timeout
        while data:
            _, w, _ = select.select([], [self.to_w], [], max(0.0, end - time.monotonic()))
            if not w:
                raise CDPError("chromium does not read its pipe")
            data = data[os.write(self.to_w, data):]

    def _read_one(self, end):
        while b"\0" not in self.rbuf:
            left = end - time.monotonic()
            if left <= 0:
                raise CDPTimeout("no message from chromium in time")
            r, _, _ = select.select([self.from_r], [], [], left)
            if r:
                chunk = os.read(self.from_r, 1 << 16)
                if not chunk:
                    raise CDPError("chromium closed its pipe (exit %r)" % self.proc.poll())
                self.rbuf += chunk
        raw, self.rbuf = self.rbuf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=None):
        """Send one command and wait for its answer; events seen meanwhile are kept."""
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send(msg)
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read_one(end)
            if m.get("id") == mid:
                if "error" in m:
                    raise CDPError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self.events.append((m.get("sessionId"), m["method"], m.get("params", {})))

    # -- tabs --

    def new_tab(self, url="about:blank"):
        """A new tab (target) attached in flat mode: its session id."""
        tid = self.call("Target.createTarget", {"url": url})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        self.call("Runtime.enable", session=sid)
        self.call("Page.enable", session=sid)
        return sid

    def evaluate(self, sid, expr):
        """The value of the JavaScript expression in the tab (by value); raises on a throw."""
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, session=sid)
        if "exceptionDetails" in r:
            raise CDPError("evaluate %r: %s" % (expr[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_for(self, sid, expr, timeout, interval=0.1):
        """Poll expr (returning a JSON-able value) until it is truthy; its value. On timeout
        raises with the last value seen."""
        end = time.monotonic() + timeout
        last = None
        while True:
            last = self.evaluate(sid, expr)
            if last:
                return last
            if time.monotonic() > end:
                raise CDPError("timed out after %.1f s waiting for %s; last: %r" %
                               (timeout, expr[:120], last))
            self.pump(interval)

    def pump(self, seconds):
        """Read events for a while (instead of a blind sleep: the pipe must not fill up)."""
        end = time.monotonic() + seconds
        try:
            while True:
                m = self._read_one(end)
                if "method" in m:
                    self.events.append((m.get("sessionId"), m["method"], m.get("params", {})))
        except CDPTimeout:
            pass

    def navigate(self, sid, url, timeout=None):
        r = self.call("Page.navigate", {"url": url}, session=sid)
        if r.get("errorText"):
            raise CDPError("navigate %s: %s" % (url, r["errorText"]))
        self.wait_for(sid, "document.readyState === 'complete'", timeout or self.timeout)

    def type_text(self, sid, text):
        self.call("Input.insertText", {"text": text}, session=sid)

    def press_enter(self, sid):
        for t in ("keyDown", "keyUp"):
            p = {"type": t, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                 "nativeVirtualKeyCode": 13}
            if t == "keyDown":
                p["text"] = "\r"
            self.call("Input.dispatchKeyEvent", p, session=sid)

    def screenshot(self, sid, path):
        """The whole page (not only the viewport) as a PNG at path."""
        m = self.call("Page.getLayoutMetrics", session=sid)
        size = m.get("cssContentSize") or m["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        r = self.call("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                 "captureBeyondViewport": True}, session=sid)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def take_events(self, sid, method):
        """The params of the tab's events of that method seen so far, removed from the list."""
        took = [p for s, m, p in self.events if s == sid and m == method]
        self.events = [e for e in self.events if not (e[0] == sid and e[1] == method)]
        return took

    def exceptions(self, sid):
        """Uncaught JavaScript exceptions reported in the tab so far."""
        return [p for s, m, p in self.events if s == sid and m == "Runtime.exceptionThrown"]

    def log_tail(self, n=3000):
        self.log.flush()
        with open(os.path.join(self.profile, "chromium.log"), "rb") as f:
            return f.read()[-n:].decode("latin-1")

    def close(self):
        """Stop Chromium and every process it started (its own process group), remove the
        profile. Safe to call twice."""
        p, self.proc = self.proc, None
        if p and p.poll() is None:
            try:
                self.call("Browser.close", timeout=2)
            except (CDPError, OSError):
                pass
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        if p:
            # its own process group (start_new_session): the renderers and the zygote too,
            # and nothing that is not ours
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
        for fd in ("to_w", "from_r"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)
        if self.log and not self.log.closed:
            self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
