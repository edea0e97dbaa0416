"""test_container -- deploy/docker/Dockerfile, deploy/compose.yaml and deploy/nginx/ checked
without a container engine (CI has none; deploy/docker/podman-smoke.sh runs them for real where
podman is): the stages and what each installs (the runtime stage has a package for every shared
library panelgate and the fake panels load, and no -dev package), the non-root user, the
HEALTHCHECK's path and port against the config compose mounts, the mounts against the image's
CMD, the fake panels' ports against the config's upstreams, nginx's upstreams against the
instances (and `nginx -t`), and the compose config passing `panelgate --check` with the
committed fake secrets."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import deploytest as dt
import pgtest

DOCKERFILE = dt.src("deploy", "docker", "Dockerfile")
SECRETS = "/run/secrets/panelgate/"


def stages(text):
    """{stage name: its text} of a Dockerfile (continuation lines joined), in order."""
    text = re.sub(r"\\\n", " ", text)
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            name = m.group(2) or m.group(1)
            out[name] = line + "\n"
        elif name and not line.lstrip().startswith("#"):
            out[name] += line + "\n"
    return out


def apt_packages(stage):
    pkgs = []
    for m in re.finditer(r"apt-get install ([^&]*)", stage):
        pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def needed_packages(binary):
    """Debian packages of the shared libraries binary names in its NEEDED entries."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    pkgs = set()
    for so in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
        p = subprocess.run(["dpkg-query", "-S", "*/" + so], capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError("no Debian package holds %s (needed by %s)" % (so, binary))
        pkgs.add(p.stdout.split(":")[0].strip())
    return pkgs


class Container(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.df = dt.readf(DOCKERFILE)
        cls.st = stages(cls.df)
        cls.compose = dt.yaml_docs(dt.src("deploy", "compose.yaml"))[0]
        cls.conf_text = dt.read("deploy", "docker", "panelgate.yaml")
        cls.conf = dt.active(cls.conf_text)
        m = re.search(r"listen: \{address: ([0-9.]+), port: (\d+)\}", cls.conf)
        cls.listen_addr, cls.port = m.group(1), int(m.group(2))

    def test_stages(self):
        self.assertEqual(list(self.st), ["build", "fakepanels", "runtime"])  # runtime: default
        for name, text in self.st.items():
            self.assertTrue(text.startswith("FROM debian:12-slim AS %s" % name), name)
        self.assertTrue(any(p.endswith("-dev") for p in apt_packages(self.st["build"])))
        for name in ("fakepanels", "runtime"):
            pk = apt_packages(self.st[name])
            self.assertFalse([p for p in pk if p.endswith("-dev")], name)
            self.assertIn("--no-install-recommends", self.st[name])
            self.assertIn("rm -rf /var/lib/apt/lists/*", self.st[name])
            self.assertIn("COPY --from=build", self.st[name])

    def test_runtime_libraries(self):
        """Every library the binaries load comes from a package the stage installs (or libc)."""
        if not shutil.which("readelf") or not shutil.which("dpkg-query"):
            self.skipTest("readelf or dpkg-query missing")
        base = {"libc6"}
        for binary, stage in ((pgtest.PANELGATE, "runtime"), (pgtest.FAKEPANELS, "fakepanels")):
            need = needed_packages(binary) - base
            self.assertTrue(need, binary)
            have = {p.split(":")[0] for p in apt_packages(self.st[stage])}
            # libcrypto comes with libssl3; jemalloc only when linked (PG_JEMALLOC)
            self.assertEqual(need - have, set(), "%s stage lacks packages for %s" % (stage,
                                                                                       binary))

    def test_user_healthcheck_entrypoint(self):
        rt = self.st["runtime"]
        m = re.search(r"(?m)^USER (\d+):(\d+)$", rt)
        self.assertTrue(m and int(m.group(1)) != 0 and int(m.group(2)) != 0, "numeric non-root")
        self.assertIn("groupadd --system --gid %s panelgate" % m.group(2), rt)
        hc = re.search(r'HEALTHCHECK .*CMD \[(.*)\]', rt)
        self.assertTrue(hc, rt)
        url = re.search(r'"http://127\.0\.0\.1:(\d+)(/[^"]*)"', hc.group(1))
        self.assertEqual(url.group(2), "/_gateway/health")
        self.assertEqual(int(url.group(1)), self.port)
        self.assertIn('"curl", "-fsS"', hc.group(1))
        self.assertIn("curl", apt_packages(rt))
        self.assertRegex(rt, r"(?m)^EXPOSE %d$" % self.port)
        self.assertIn('ENTRYPOINT ["/usr/local/bin/panelgate"]', rt)
        self.assertIn('CMD ["-c", "/etc/panelgate/panelgate.yaml"]', rt)
        self.assertEqual(self.listen_addr, "0.0.0.0")

    def test_compose_services(self):
        svcs = self.compose["services"]
        self.assertEqual(set(svcs), {"redis", "fakepanels", "panelgate-1", "panelgate-2", "lb"})
        for n in ("panelgate-1", "panelgate-2"):
            s = svcs[n]
            self.assertEqual(s["build"], {"context": "..", "dockerfile": "deploy/docker/Dockerfile",
                                          "target": "runtime"})
            mounts = {v.split(":")[1]: v.split(":")[0] for v in s["volumes"]}
            self.assertEqual(mounts["/etc/panelgate/panelgate.yaml"], "./docker/panelgate.yaml")
            self.assertEqual(mounts[SECRETS.rstrip("/")], "./docker/secrets")
            for v in s["volumes"]:
                self.assertTrue(v.endswith(":ro"), v)
                self.assertTrue(os.path.exists(dt.src("deploy", v.split(":")[0])), v)
            self.assertTrue(s["read_only"])
            self.assertEqual(s["cap_drop"], ["ALL"])
            self.assertNotIn("ports", s)  # only the balancer publishes
            self.assertEqual(s["depends_on"]["redis"]["condition"], "service_healthy")
            m = re.search(r"(?m)^drain_timeout:\s*(\S+)", self.conf)
            self.assertGreater(dt.duration_ms(s["stop_grace_period"]), dt.duration_ms(m.group(1)))
        self.assertEqual(svcs["fakepanels"]["build"]["target"], "fakepanels")
        lb = svcs["lb"]
        self.assertEqual(lb["ports"], ["127.0.0.1:8080:8080"])
        self.assertEqual(lb["volumes"], ["./nginx/panelgate-lb.conf:/etc/nginx/conf.d/default.conf:ro"])
        for n in ("panelgate-1", "panelgate-2"):
            self.assertEqual(lb["depends_on"][n]["condition"], "service_healthy")

    def test_config_names_the_services(self):
        """Upstreams are the fake panels' service at the ports its CMD opens; the store is the
        redis service; public_url is the balancer's published port."""
        cmd = re.search(r'(?m)^CMD \[(.*)\]', self.st["fakepanels"]).group(1)
        args = re.findall(r'"([^"]+)"', cmd)
        fake_ports = {int(args[i + 1]) for i in range(0, len(args), 2)}
        used = {int(p) for p in re.findall(r"url: http://fakepanels:(\d+)", self.conf)}
        self.assertEqual(used, fake_ports)
        self.assertRegex(self.conf, r"url: redis://redis:6379/0")
        self.assertIn("public_url: http://127.0.0.1:8080", self.conf)
        self.assertIn('"--host", "0.0.0.0"', self.st["fakepanels"])

    def test_config_passes_check_with_the_fake_secrets(self):
        names = dt.secret_files(self.conf, SECRETS)
        on_disk = sorted(f for f in os.listdir(dt.src("deploy", "docker", "secrets"))
                         if f != "README")
        self.assertEqual(names, on_disk)
        files = {n: dt.read("deploy", "docker", "secrets", n) for n in names}
        rc, out = dt.check_config(self.conf_text, None, files, SECRETS)
        self.assertEqual(rc, 0, out)

    def test_nginx(self):
        text = dt.read("deploy", "nginx", "panelgate-lb.conf")
        servers = re.findall(r"(?m)^\s*server ([a-z0-9-]+):(\d+)", text)
        self.assertEqual(sorted(servers), [("panelgate-1", str(self.port)),
                                           ("panelgate-2", str(self.port))])
        self.assertRegex(text, r"(?m)^\s*listen 8080;")
        self.assertIn("proxy_pass http://panelgate;", text)
        if not shutil.which("nginx"):
            self.skipTest("nginx not installed")
        with tempfile.TemporaryDirectory() as d:
            # compose's names do not resolve here: the same file with addresses
            lb = os.path.join(d, "lb.conf")
            with open(lb, "w") as f:
                f.write(re.sub(r"server panelgate-\d:", "server 127.0.0.1:", text))
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\n"
                        "http { access_log off; include %s; }\n" % (d, d, lb))
            p = subprocess.run(["nginx", "-t", "-q", "-c", conf, "-p", d], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_image_tags_are_the_version(self):
        """compose's and the Deployment's image tags are the project's version."""
        version = re.search(r"project\(panelgate VERSION (\S+)", dt.read("CMakeLists.txt")).group(1)
        svcs = self.compose["services"]
        for n in ("panelgate-1", "panelgate-2", "fakepanels"):
            self.assertTrue(svcs[n]["image"].endswith(":" + version), svcs[n]["image"])
        dep = dt.read("deploy", "k8s", "deployment.yaml")
        self.assertRegex(dep, r"image: \S+/panelgate:%s\n" % re.escape(version))

    def test_dockerignore(self):
        text = dt.read(".dockerignore")
        for pat in (".git", "build*"):
            self.assertIn(pat, text.splitlines())


if __name__ == "__main__":
    unittest.main(verbosity=2)
