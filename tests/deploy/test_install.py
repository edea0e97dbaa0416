"""test_install -- `cmake --install BUILD --prefix P` into a temporary prefix puts the binary in
bin/, the systemd unit in lib/systemd/system/ (its ExecStart= pointing at P's binary) and the
example configs in share/doc/panelgate/; the installed binary runs --version."""

import os
import shutil
import subprocess
import tempfile
import unittest

import deploytest as dt


class Install(unittest.TestCase):
    def test_install_into_prefix(self):
        cmake = shutil.which("cmake")
        self.assertTrue(cmake, "cmake not found")
        self.assertTrue(os.path.exists(os.path.join(dt.BUILD, "cmake_install.cmake")),
                        "PG_BUILD_DIR %s is not a configured build tree" % dt.BUILD)
        prefix = tempfile.mkdtemp(prefix="pginstall-")
        try:
            p = subprocess.run([cmake, "--install", dt.BUILD, "--prefix", prefix],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            binary = os.path.join(prefix, "bin", "panelgate")
            unit = os.path.join(prefix, "lib", "systemd", "system", "panelgate.service")
            example = os.path.join(prefix, "share", "doc", "panelgate", "example.yaml")
            for f in (binary, unit, example,
                      os.path.join(prefix, "share", "doc", "panelgate", "panelgate.yaml")):
                self.assertTrue(os.path.isfile(f), "%s not installed:\n%s" % (f, p.stdout))
            self.assertTrue(os.access(binary, os.X_OK))
            v = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
            self.assertEqual(v.returncode, 0, v.stderr)
            self.assertRegex(v.stdout, r"^panelgate \d+\.\d+\.\d+\n$")
            text = dt.readf(unit)
            self.assertIn("ExecStart=%s -c /etc/panelgate/panelgate.yaml" % binary, text)
            self.assertIn("ExecReload=%s --check -c /etc/panelgate/panelgate.yaml" % binary, text)
            self.assertNotIn("/usr/bin/panelgate", text)
            with open(example, encoding="utf-8") as a:
                self.assertEqual(a.read(), dt.read("conf", "example.yaml"))
        finally:
            shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
