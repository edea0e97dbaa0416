"""test_prometheus -- deploy/prometheus/alerts.yml passes `promtool check rules` and its unit
tests (`promtool test rules alerts_test.yml`); prometheus.yml passes `promtool check config`; a
broken rule is refused (the check can fail); the Grafana dashboard deploy/grafana/panelgate.json
is well formed and every query in it is valid PromQL (promtool parses each one as a recording
rule, Grafana's variables replaced). That the metric and label names exist is test_metrics.py's."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import deploytest as dt

PROMTOOL = shutil.which("promtool")
PROM = dt.src("deploy", "prometheus")


def promtool(*args, cwd=None):
    if not PROMTOOL:
        raise AssertionError("promtool not installed (Debian package prometheus; deploy/deps.sh)")
    p = subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    return p.returncode, p.stdout + p.stderr


def dashboard_exprs():
    d = json.loads(dt.read("deploy", "grafana", "panelgate.json"))
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return d, out


def grafana_to_promql(expr):
    """Grafana's variables as Prometheus would see them."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(upstream|instance|job)\}?", ".*", expr)


class Rules(unittest.TestCase):
    def test_check_rules(self):
        rc, out = promtool("check", "rules", os.path.join(PROM, "alerts.yml"))
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"SUCCESS: \d+ rules found")

    def test_unit_tests(self):
        rc, out = promtool("test", "rules", "alerts_test.yml", cwd=PROM)
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)

    def test_alerts_cover_the_issue(self):
        """Credentials rejected, error rate, p99, Redis store errors: each has an alert."""
        text = dt.read("deploy", "prometheus", "alerts.yml")
        for needle in ('panelgate_upstream_logins_total{result="failed"}',
                       'panelgate_upstream_errors_total{kind="auth"}',
                       'panelgate_requests_total{status=~"5.."}',
                       "histogram_quantile(0.99",
                       'panelgate_store_errors_total{store="redis"}'):
            self.assertIn(needle, text)

    def test_broken_rules_refused(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.yml")
            text = dt.read("deploy", "prometheus", "alerts.yml").replace(
                "> 0.05", "> > 0.05", 1)
            with open(bad, "w") as f:
                f.write(text)
            rc, out = promtool("check", "rules", bad)
        self.assertNotEqual(rc, 0, out)

    def test_check_config(self):
        """prometheus.yml, with its scrape key file provided."""
        with tempfile.TemporaryDirectory() as d:
            key = os.path.join(d, "key")
            with open(key, "w") as f:
                f.write("fake-scrape-key\n")
            text = dt.read("deploy", "prometheus", "prometheus.yml")
            self.assertIn("credentials_file: /etc/prometheus/panelgate-scrape-key", text)
            with open(os.path.join(d, "prometheus.yml"), "w") as f:
                f.write(text.replace("/etc/prometheus/panelgate-scrape-key", key))
            shutil.copy(os.path.join(PROM, "alerts.yml"), d)
            rc, out = promtool("check", "config", os.path.join(d, "prometheus.yml"))
        self.assertEqual(rc, 0, out)
        self.assertIn("metrics_path: /_gateway/metrics", text)


class Dashboard(unittest.TestCase):
    def test_shape(self):
        d, exprs = dashboard_exprs()
        self.assertEqual(d["uid"], "panelgate")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertTrue(p.get("targets"), p["title"])
        names = {v["name"] for v in d["templating"]["list"]}
        self.assertEqual(names, {"datasource", "instance", "upstream"})
        self.assertGreaterEqual(len(exprs), 15)

    def test_covers_the_issue(self):
        _, exprs = dashboard_exprs()
        text = "\n".join(e for _, e in exprs)
        for needle in ("panelgate_requests_total", "panelgate_upstream_errors_total",
                       "histogram_quantile(0.5,", "histogram_quantile(0.99,",
                       "panelgate_rate_limited_total", 'scope="cooldown"',
                       "panelgate_upstream_logins_total", "panelgate_connections_active",
                       "panelgate_store_errors_total", "panelgate_inflight_requests"):
            self.assertIn(needle, text)

    def test_queries_are_promql(self):
        _, exprs = dashboard_exprs()
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:q%d" % i, "expr": grafana_to_promql(e)}
            for i, (_, e) in enumerate(exprs)]}]}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "dash.yml")
            with open(path, "w") as f:
                json.dump(rules, f)  # JSON is YAML
            rc, out = promtool("check", "rules", path)
            self.assertEqual(rc, 0, out)
            # and the same check refuses a query that is not PromQL
            rules["groups"][0]["rules"].append({"record": "dashboard:bad",
                                                 "expr": "sum by (upstream (x)"})
            with open(path, "w") as f:
                json.dump(rules, f)
            rc, out = promtool("check", "rules", path)
            self.assertNotEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
