"""deploytest -- helpers for the checks of deploy/ and conf/ (tests/deploy/test_*.py): paths,
`panelgate --check` on a config whose secret files and environment the test provides, durations,
and the node helper (tests/deploy/node/validate.js) installed with `npm ci` into the build tree.
Standard library only; every test cleans up what it makes."""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.environ.get("PG_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PANELGATE = os.environ.get("PANELGATE", os.path.join(SOURCE, "build", "panelgate"))
BUILD = os.environ.get("PG_BUILD_DIR", os.path.join(SOURCE, "build"))
NODE_DIR = os.environ.get("PG_NODE_DIR", os.path.join(BUILD, "deploy-node"))

sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))


def src(*parts):
    return os.path.join(SOURCE, *parts)


def readf(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def read(*parts):
    return readf(src(*parts))


def skip(reason):
    """Exit 77 (ctest's SKIP_RETURN_CODE) with the reason on stdout."""
    print("SKIP: " + reason)
    sys.stdout.flush()
    sys.exit(77)


_UNITS_MS = {"ms": 1, "s": 1000, "min": 60000, "h": 3600000}


def duration_ms(text):
    """panelgate's and systemd's durations as ms: '10s', '500ms', '5min', '1h', '30' (s)."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|min|h)?\s*", str(text))
    if not m:
        raise ValueError("bad duration %r" % text)
    return int(m.group(1)) * _UNITS_MS[m.group(2) or "s"]


def check_config(text, env=None, files=None, prefix=None):
    """Run `panelgate --check` on a config text. files: {name: content} written into a temp
    dir; every `file:<prefix>` in the text is pointed at that dir. env: extra environment (the
    rest is the test's environment without the variables the config names, so an unset one is
    noticed). Returns (exit code, output)."""
    tmp = tempfile.mkdtemp(prefix="pgdeploy-")
    try:
        for name, content in (files or {}).items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(content)
        if prefix:
            text = text.replace("file:" + prefix, "file:" + tmp + "/")
        path = os.path.join(tmp, "panelgate.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        named = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
        e = {k: v for k, v in os.environ.items() if k not in named}
        e.update(env or {})
        p = subprocess.run([PANELGATE, "--check", "-c", path], env=e, capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def secret_files(text, prefix):
    """The names of the files a config reads as file:<prefix>NAME."""
    return sorted(set(re.findall(r"file:" + re.escape(prefix) + r"([A-Za-z0-9_.-]+)", text)))


def env_names(text):
    """The ${NAME}s a config reads (comments included: a commented key shows what to set)."""
    return sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)))


def active(text):
    """The config text without its comment lines and trailing comments (a rough cut, enough
    for the files here: no '#' inside values)."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        if line.strip():
            out.append(line)
    return "\n".join(out) + "\n"


# ---- node: tests/deploy/node/validate.js ----

def node_ready():
    """Install tests/deploy/node's locked packages into NODE_DIR (npm ci, once per lock file;
    parallel tests wait for each other) and return the environment to run validate.js with."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node and npm are needed (deploy/deps.sh installs nodejs and npm)")
    os.makedirs(NODE_DIR, exist_ok=True)
    lock_src = src("tests", "deploy", "node", "package-lock.json")
    with open(lock_src, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(NODE_DIR, "installed.sha256")
    with open(os.path.join(NODE_DIR, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        have = readf(stamp).strip() if os.path.exists(stamp) else ""
        if have != want or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
            for n in ("package.json", "package-lock.json"):
                shutil.copyfile(src("tests", "deploy", "node", n), os.path.join(NODE_DIR, n))
            p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError("npm ci in %s failed:\n%s%s" % (NODE_DIR, p.stdout, p.stderr))
            with open(stamp, "w") as f:
                f.write(want + "\n")
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(NODE_DIR, "node_modules")
    return env


def validate_js(mode, files):
    """Run validate.js (mode k8s or json) on files: (exit code, stdout, stderr)."""
    env = node_ready()
    p = subprocess.run(["node", src("tests", "deploy", "node", "validate.js"), mode] + list(files),
                       env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def yaml_docs(path):
    """Every YAML document of path (parsed by the `yaml` npm package), as Python objects."""
    import json
    rc, out, err = validate_js("json", [path])
    if rc != 0:
        raise RuntimeError("cannot parse %s: %s" % (path, err or out))
    return json.loads(out)[0]["docs"]
