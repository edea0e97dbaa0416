"""test_configs -- conf/example.yaml is the reference every deployment starts from: it passes
`panelgate --check` with the environment variables and secret files it names, it shows every key
of the gateway's key tables (gateway/conf.c, gateway/cstore.c, plugins/*/) and every auth type,
and the configs derived from it say so. (The Kubernetes, systemd and compose configs are checked
by test_k8s.py, test_systemd.py and test_container.py.)"""

import glob
import os
import re
import unittest

import deploytest as dt

SECRETS = "/run/secrets/panelgate/"


def example_inputs(text):
    """Fake values for every ${NAME} and file: secret example.yaml reads."""
    env = {n: "fake-" + n.lower() for n in dt.env_names(dt.active(text))}
    files = {n: "fake-%s\n" % n for n in dt.secret_files(dt.active(text), SECRETS)}
    return env, files


def key_tables():
    """(key, enum options or None) of every row of the config key tables."""
    rows = []
    paths = [dt.src("gateway", "conf.c"), dt.src("gateway", "cstore.c")]
    paths += sorted(glob.glob(dt.src("plugins", "*", "*.c")))
    row = re.compile(r'\{\s*"([a-z_]+)",\s*(PG_CONF_[A-Z]+|CORE\(K_[A-Z_]+\))[^}]*?'
                     r'(?:"([a-z|]+)")?\s*,\s*(?:NULL|\w+)\s*\}', re.S)
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for m in row.finditer(f.read()):
                rows.append((m.group(1), m.group(3) if m.group(2) == "PG_CONF_ENUM" else None))
    return rows


class Example(unittest.TestCase):
    def setUp(self):
        self.text = dt.read("conf", "example.yaml")

    def test_passes_check(self):
        env, files = example_inputs(self.text)
        self.assertTrue(env and files, "example.yaml should read secrets from both")
        rc, out = dt.check_config(self.text, env, files, SECRETS)
        self.assertEqual(rc, 0, out)
        self.assertIn("ok (", out)

    def test_check_needs_what_it_names(self):
        """The inputs above are what the check used: without one secret file, or one
        environment variable, the same file is refused naming the line."""
        env, files = example_inputs(self.text)
        missing = sorted(files)[0]
        del files[missing]
        rc, out = dt.check_config(self.text, env, files, SECRETS)
        self.assertEqual(rc, 1, out)
        self.assertIn(missing, out)
        env, files = example_inputs(self.text)
        gone = sorted(env)[0]
        del env[gone]
        rc, out = dt.check_config(self.text, env, files, SECRETS)
        self.assertEqual(rc, 1, out)
        self.assertIn("'%s' is not set" % gone, out)

    def test_every_key_is_shown(self):
        rows = key_tables()
        self.assertGreater(len(rows), 40, "the key-table regex found too few rows")
        for key, options in rows:
            self.assertRegex(self.text, r"(?m)(^|[\s{,])%s:" % re.escape(key),
                             "example.yaml does not show the key %r" % key)
            for opt in (options or "").split("|"):
                if opt:
                    self.assertRegex(self.text, r"\b%s\b" % re.escape(opt),
                                     "example.yaml does not name %r (a value of %s)" % (opt, key))
        # the keys handled outside the tables
        for key in ("type", "upstreams", "consumers", "rate_limit_store", "resolver", "tls"):
            self.assertRegex(self.text, r"(?m)(^|[\s{,])%s:" % key)

    def test_every_auth_type_is_active(self):
        types = []
        for p in sorted(glob.glob(dt.src("plugins", "*", "*.c"))):
            with open(p, encoding="utf-8") as f:
                types += re.findall(r'\.type = "([a-z_]+)"', f.read())
        self.assertEqual(len(types), 5, types)
        act = dt.active(self.text)
        for t in types:
            self.assertRegex(act, r"type: %s\b" % t, "no active %s upstream in example.yaml" % t)
        # static: headers and basic active, bearer shown
        self.assertRegex(act, r"headers: \{X-Api-Key: \"file:")
        self.assertRegex(act, r"basic: \{user:")
        self.assertIn("bearer:", self.text)

    def test_secrets_by_env_or_file_only(self):
        """No secret in the clear: every secret key of the active text is ${NAME} or file:."""
        secret_keys = ("password", "api_secret", "token", "session_key", "X-Api-Key", "api_key")
        act = dt.active(self.text)
        for key in secret_keys:
            for m in re.finditer(r'\b%s: ("[^"]*"|[^,}\s]+)' % re.escape(key), act):
                v = m.group(1).strip()
                self.assertRegex(v, r'^"(\$\{[A-Z_]+\}|file:/\S+)"$',
                                 "%s: %s is not from the environment or a file" % (key, v))

    def test_redis_block_is_valid(self):
        """The commented redis store block, switched on, passes the check too."""
        lines = self.text.splitlines()
        start = lines.index("# rate_limit_store:")
        block = ["rate_limit_store:"]
        for line in lines[start + 1:]:
            if not line.startswith("#   "):
                break
            block.append(re.sub(r"\s+# .*$", "", line[1:]))
        self.assertGreater(len(block), 6, block)
        text = self.text.replace("rate_limit_store: {type: local}", "\n".join(block))
        env, files = example_inputs(text)
        env["REDIS_PASSWORD"] = "fake-redis-password"
        files["session_key"] = "00" * 32 + "\n"
        rc, out = dt.check_config(text, env, files, SECRETS)
        self.assertEqual(rc, 0, out)

    def test_derived_configs_say_so(self):
        for parts in (("deploy", "systemd", "panelgate.yaml"), ("deploy", "k8s", "configmap.yaml"),
                      ("deploy", "docker", "panelgate.yaml")):
            head = dt.read(*parts)[:600]
            self.assertIn("derived from conf/example.yaml", head, os.path.join(*parts))
            self.assertIn("/".join(parts), self.text, "example.yaml should name " + "/".join(parts))

    def test_demo_passes_check(self):
        rc, out = dt.check_config(dt.read("conf", "demo.yaml"))
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
