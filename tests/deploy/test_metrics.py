"""test_metrics -- the dashboard and the alerts query what the gateway exports. A real panelgate
behind the fake panels gets traffic that makes every series appear (a login that works and one
the panel refuses, a consumer's 429, a panel's 429 and the cool-down after it, an unreachable
panel); then every metric name in deploy/grafana/panelgate.json's and
deploy/prometheus/alerts.yml's PromQL (panelgate_[a-z_]+) must be a sample name of the live
/_gateway/metrics, read with a metrics-only admin key (allow: []), and every label those
queries select, group by, or print must be one the metric carries (or instance/job, which
Prometheus adds)."""

import json
import re
import unittest

import deploytest as dt
import pgtest
from pgtest import KEY_ALICE, KEY_BOB, KEY_CAROL, sha

TARGET_LABELS = {"instance", "job"}  # added by Prometheus at scrape time


def config(env):
    return """
listen: {address: 127.0.0.1, port: %(port)d}
consumers:
  - {name: alice, key: "%(alice)s", allow: ["*"]}
  - {name: bob, key: "%(bob)s", allow: [echo], rate_limit: {rate: 1/hour, burst: 1}}
  - {name: scraper, key: "%(carol)s", admin: true, allow: []}
upstreams:
  - {name: echo, url: "http://127.0.0.1:%(echo)d", auth: {type: static, bearer: fake-token}}
  - {name: echo-cd, url: "http://127.0.0.1:%(echo)d", auth: {type: static, bearer: fake-token}}
  - name: navixy
    url: "http://127.0.0.1:%(navixy)d/v2"
    auth: {type: navixy_session, login: fake-navixy-user, password: fake-navixy-pass}
  - name: navixy-bad
    url: "http://127.0.0.1:%(navixy)d/v2"
    auth: {type: navixy_session, login: fake-navixy-user, password: wrong-fake-password}
  - {name: dead, url: "http://127.0.0.1:%(refuse)d", timeout: 2s,
     auth: {type: static, bearer: fake-token}}
""" % {"port": env.port, "alice": sha(KEY_ALICE), "bob": sha(KEY_BOB), "carol": sha(KEY_CAROL),
       "echo": env.echo_port, "navixy": env.navixy_port, "refuse": env.refuse_port}


def exposition(text):
    """{sample name: set of label names} and {family: type} of a Prometheus text page."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        assert m, line
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        samples.setdefault(m.group(1), set()).update(labels)
    return samples, types


def queries():
    """(where, PromQL, legend or None) of the dashboard and the alerts."""
    out = []
    d = json.loads(dt.read("deploy", "grafana", "panelgate.json"))
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append(("dashboard: " + p["title"], t["expr"], t.get("legendFormat")))
    for v in d["templating"]["list"]:
        if isinstance(v.get("query"), dict):
            out.append(("dashboard variable " + v["name"], v["query"]["query"], None))
    docs = dt.yaml_docs(dt.src("deploy", "prometheus", "alerts.yml"))
    for g in docs[0]["groups"]:
        for r in g["rules"]:
            text = json.dumps(r.get("annotations", {}))
            out.append(("alert " + r["alert"], r["expr"], text))
    return out


def selectors(expr):
    """(metric, {label names}) of each panelgate_ selector in expr."""
    out = []
    for m in re.finditer(r"\b(panelgate_[a-z_]+)\b(\{([^}]*)\})?", expr):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(3) or ""))
        out.append((m.group(1), labels))
    return out


def grouping(expr):
    """Label names of every by (...) / without (...) clause, one set per clause."""
    return [set(x.strip() for x in m.group(2).split(",") if x.strip())
            for m in re.finditer(r"\b(by|without)\s*\(([^)]*)\)", expr)]


def label_values_label(expr):
    m = re.match(r"label_values\((.*),\s*([a-z_]+)\)$", expr)
    return (m.group(1), m.group(2)) if m else (None, None)


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        navixy_port = pgtest.free_port()

        def conf(env):
            env.navixy_port = navixy_port
            return config(env)

        cls.env = pgtest.Env(conf, fake_args=["--navixy", str(navixy_port)]).start()
        try:
            cls.traffic()
            r = cls.env.get("/_gateway/metrics", key=KEY_CAROL)
            assert r.status == 200, r
            cls.page = r.body.decode()
            cls.samples, cls.types = exposition(cls.page)
        except Exception:
            cls.env.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    @classmethod
    def traffic(cls):
        e = cls.env
        want = [
            ("/echo/hello", KEY_ALICE, 200),
            ("/navixy/tracker/list", KEY_ALICE, 200),           # a login: result="ok"
            ("/navixy-bad/tracker/list", KEY_ALICE, 502),       # refused login: "failed", auth
            ("/dead/x", KEY_ALICE, 502),                        # refused connection
            ("/echo/a", KEY_BOB, 200),
            ("/echo/b", KEY_BOB, 429),                          # scope="consumer"
            # the panel's own 429 in a shape the gateway knows (DRF's {"detail"}): cool-down
            ("/echo-cd/status?code=429&header=Retry-After:30&body=%7B%22detail%22%3A%22Request"
             "%20was%20throttled.%22%7D", KEY_ALICE, 429),
            ("/echo-cd/hello", KEY_ALICE, 429),                 # scope="cooldown"
            ("/_gateway/metrics", KEY_BOB, 403),                # not an admin
        ]
        for path, key, status in want:
            r = e.get(path, key=key)
            assert r.status == status, (path, status, r)

    def test_traffic_made_every_family(self):
        for fam in ("panelgate_requests_total", "panelgate_request_duration_seconds_bucket",
                    "panelgate_upstream_logins_total", "panelgate_rate_limited_total",
                    "panelgate_upstream_errors_total", "panelgate_connections_active",
                    "panelgate_inflight_requests", "panelgate_store_errors_total"):
            self.assertIn(fam, self.samples, self.page)
        for series in ('result="ok"', 'result="failed"', 'scope="consumer"', 'scope="cooldown"',
                       'kind="auth"', 'kind="unavailable"', 'status="429"'):
            self.assertIn(series, self.page)

    def test_queried_names_are_exported(self):
        names = set()
        for where, expr, _ in queries():
            for name in re.findall(r"panelgate_[a-z_]+", expr):
                names.add(name)
                self.assertIn(name, self.samples, "%s queries %s, not exported" % (where, name))
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if base != name:
                    self.assertEqual(self.types.get(base), "histogram", name)
        self.assertGreaterEqual(len(names), 9, names)
        # and the check can fail: a misspelt name is not found
        self.assertNotIn("panelgate_request_total", self.samples)

    def test_queried_labels_exist(self):
        for where, expr, printed in queries():
            used = {}
            for name, labels in selectors(expr):
                have = self.samples[name] | TARGET_LABELS
                self.assertLessEqual(labels, have, "%s: %s{%s}" % (where, name, labels - have))
                used[name] = self.samples[name]
            on_metrics = set().union(*used.values()) | TARGET_LABELS if used else TARGET_LABELS
            for g in grouping(expr):
                self.assertLessEqual(g, on_metrics, "%s: by %s" % (where, g - on_metrics))
            metric, label = label_values_label(expr)
            if label:
                self.assertIn(label, on_metrics, where)
            # labels printed by a legend or an annotation survive the aggregation
            if printed:
                shown = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", printed))
                shown |= set(re.findall(r"\$labels\.([a-z_]+)", printed))
                outer = grouping(expr)
                for label in shown:
                    ok = all(label in g for g in outer) if outer else label in on_metrics
                    self.assertTrue(ok, "%s prints %s, which its query drops" % (where, label))

    def test_label_check_can_fail(self):
        bad = 'sum by (panel) (rate(panelgate_requests_total{code="500"}[5m]))'
        (name, labels), = selectors(bad)
        self.assertFalse(labels <= self.samples[name] | TARGET_LABELS)
        self.assertFalse(grouping(bad)[0] <= self.samples[name] | TARGET_LABELS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
