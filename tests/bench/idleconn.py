#!/usr/bin/env python3
"""idleconn.py -- open N keep-alive connections to 127.0.0.1:PORT, make one request on each
(GET PATH with `Authorization: Bearer KEY`, HTTP/1.1), and keep them open. Used by idle.sh.

Without --hold-file the connections are closed again at once (a warm-up). With --hold-file
the client prints "READY <n>" once all N answered 200, waits until that file exists (or
--max-wait seconds pass), prints "OPEN <k>" (how many the server had not closed meanwhile) and
closes them. Any non-200 answer or socket error ends it with status 1 and a message on stderr.
Standard library only.
"""
import argparse
import os
import resource
import socket
import sys
import time


def fail(msg):
    sys.stderr.write("idleconn: %s\n" % msg)
    sys.exit(1)


def read_response(s):
    """Read one HTTP/1.1 response from s; return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response header")
        buf += chunk
        if len(buf) > 1 << 20:
            raise ConnectionError("response header too large")
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ConnectionError("bad status line %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"connection", b"").lower() == b"close":
        raise ConnectionError("the server answered Connection: close")
    if b"content-length" in headers:
        want = int(headers[b"content-length"])
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in the body")
            body += chunk
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in the chunked body")
            body += chunk
    else:
        raise ConnectionError("no content-length and not chunked: cannot keep the connection")
    return status


def still_open(s):
    """True unless the server closed s (EOF or reset); never blocks."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("--hold-file")
    ap.add_argument("--max-wait", type=float, default=300.0)
    a = ap.parse_args()

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if a.n + 64 > soft:
        fail("open-file limit %d is too low for %d connections (ulimit -n)" % (soft, a.n))
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
           "User-Agent: idleconn\r\n\r\n" % (a.path, a.port, a.key)).encode()
    socks = []
    t0 = time.monotonic()
    for i in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", a.port))
            s.sendall(req)
            status = read_response(s)
        except OSError as e:  # ConnectionError included
            fail("connection %d: %s" % (i + 1, e))
        if status != 200:
            fail("connection %d: status %d, not 200" % (i + 1, status))
        socks.append(s)
    took = time.monotonic() - t0

    if a.hold_file:
        print("READY %d %.3f" % (len(socks), took), flush=True)
        deadline = time.monotonic() + a.max_wait
        while not os.path.exists(a.hold_file):
            if time.monotonic() > deadline:
                fail("%s did not appear within %.0f s" % (a.hold_file, a.max_wait))
            time.sleep(0.05)
        print("OPEN %d" % sum(1 for s in socks if still_open(s)), flush=True)
    else:
        print("DONE %d %.3f" % (len(socks), took), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
