"""test_k8s -- deploy/k8s/: every manifest validates offline against the Kubernetes API's
OpenAPI schemas (kubernetes-models, tests/deploy/node/validate.js), and a manifest with a field
of the wrong type is refused; the Deployment has what production needs (2+ replicas, probes on
/_gateway/health at the config's port, a preStop, a grace period longer than preStop +
drain_timeout, requests and limits, read-only root, non-root, no capabilities, RuntimeDefault
seccomp); the ConfigMap's config uses the redis store and passes `panelgate --check` with the
Secret's values as its file: secrets; the Secret holds only placeholders; the HPA, PDB,
Service, Redis and kustomization fit together."""

import glob
import os
import re
import tempfile
import unittest

import deploytest as dt

K8S = dt.src("deploy", "k8s")
SECRETS = "/run/secrets/panelgate/"


def manifests():
    return sorted(glob.glob(os.path.join(K8S, "*.yaml")))


class K8s(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = {}
        for f in manifests():
            for d in dt.yaml_docs(f):
                cls.objs[(d["kind"], d.get("metadata", {}).get("name"))] = d
        cls.dep = cls.objs[("Deployment", "panelgate")]
        cls.pod = cls.dep["spec"]["template"]["spec"]
        cls.ctr = cls.pod["containers"][0]
        cls.cm = cls.objs[("ConfigMap", "panelgate-config")]
        cls.conf = cls.cm["data"]["panelgate.yaml"]
        cls.secret = cls.objs[("Secret", "panelgate-secrets")]

    def test_schemas(self):
        rc, out, err = dt.validate_js("k8s", manifests())
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^objects: 8 valid, 0 invalid$")
        for kind in ("apps/v1 Deployment/panelgate", "v1 Service/panelgate",
                     "v1 ConfigMap/panelgate-config", "v1 Secret/panelgate-secrets",
                     "autoscaling/v2 HorizontalPodAutoscaler/panelgate",
                     "policy/v1 PodDisruptionBudget/panelgate", "apps/v1 Deployment/redis",
                     "v1 Service/redis"):
            self.assertIn(kind, out)

    def test_schema_check_can_fail(self):
        """The same validation refuses a wrong type, a missing required field and an unknown
        kind: copies of our manifests, broken once each."""
        dep = dt.readf(os.path.join(K8S, "deployment.yaml"))
        hpa = dt.readf(os.path.join(K8S, "hpa.yaml"))
        broken = {
            "replicas.yaml": dep.replace("replicas: 2", 'replicas: "two"'),
            "port.yaml": dep.replace("containerPort: 8080", "containerPort: http"),
            "noselector.yaml": re.sub(r"(?m)^  selector:\n(    .*\n)+", "", dep),
            "hpa.yaml": hpa.replace("averageUtilization: 70", "averageUtilization: high"),
            "kind.yaml": "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n",
        }
        self.assertNotEqual(broken["noselector.yaml"], dep)
        with tempfile.TemporaryDirectory() as d:
            for name, text in broken.items():
                path = os.path.join(d, name)
                with open(path, "w") as f:
                    f.write(text)
                rc, out, err = dt.validate_js("k8s", [path])
                self.assertEqual(rc, 1, name + ": " + out + err)
                self.assertRegex(out, r"(?m)^FAIL ", name)
        # messages name the field
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.yaml")
            with open(path, "w") as f:
                f.write(broken["replicas.yaml"])
            _, out, _ = dt.validate_js("k8s", [path])
            self.assertIn("spec/replicas must be integer", out)

    def test_deployment(self):
        spec, pod, c = self.dep["spec"], self.pod, self.ctr
        self.assertGreaterEqual(spec["replicas"], 2)
        self.assertEqual(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        self.assertEqual(spec["selector"]["matchLabels"],
                         {k: v for k, v in spec["template"]["metadata"]["labels"].items()
                          if k in spec["selector"]["matchLabels"]})
        sc, csc = pod["securityContext"], c["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertNotEqual(sc["runAsUser"], 0)
        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", csc["capabilities"])
        self.assertFalse(pod["automountServiceAccountToken"])
        for k in ("cpu", "memory"):
            self.assertIn(k, c["resources"]["requests"])
            self.assertIn(k, c["resources"]["limits"])
        # the image runs as the Dockerfile's user
        self.assertIn("USER %d:%d" % (sc["runAsUser"], sc["runAsGroup"]),
                      dt.read("deploy", "docker", "Dockerfile"))

    def test_probes_match_config(self):
        conf = dt.active(self.conf)
        m = re.search(r"listen: \{address: ([0-9.]+), port: (\d+)\}", conf)
        self.assertTrue(m, conf)
        self.assertEqual(m.group(1), "0.0.0.0")  # the kubelet probes the pod's IP
        port = int(m.group(2))
        ports = {p["name"]: p["containerPort"] for p in self.ctr["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            g = self.ctr[probe]["httpGet"]
            self.assertEqual(g["path"], "/_gateway/health", probe)
            self.assertEqual(ports.get(g["port"], g["port"]), port, probe)
        svc = self.objs[("Service", "panelgate")]["spec"]
        self.assertEqual(ports.get(svc["ports"][0]["targetPort"]), port)
        self.assertEqual(svc["selector"], self.dep["spec"]["selector"]["matchLabels"])

    def test_grace_longer_than_prestop_and_drain(self):
        m = re.search(r"(?m)^drain_timeout:\s*(\S+)", dt.active(self.conf))
        drain = dt.duration_ms(m.group(1)) if m else 10000
        cmd = self.ctr["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(cmd[0], "sleep")
        pre = dt.duration_ms(cmd[1])
        grace = self.pod["terminationGracePeriodSeconds"] * 1000
        self.assertGreater(grace, pre + drain)

    def test_config_mounts_and_check(self):
        mounts = {m["name"]: m for m in self.ctr["volumeMounts"]}
        vols = {v["name"]: v for v in self.pod["volumes"]}
        cfg = next(n for n, v in vols.items() if "configMap" in v)
        self.assertEqual(vols[cfg]["configMap"]["name"], "panelgate-config")
        self.assertEqual(mounts[cfg]["mountPath"] + "/panelgate.yaml", self.ctr["args"][-1])
        sec = next(n for n, v in vols.items() if "secret" in v)
        self.assertEqual(vols[sec]["secret"]["secretName"], "panelgate-secrets")
        self.assertEqual(mounts[sec]["mountPath"].rstrip("/") + "/", SECRETS)
        self.assertTrue(mounts[sec]["readOnly"] and mounts[cfg]["readOnly"])
        # redis store with session_key from the Secret
        conf = dt.active(self.conf)
        self.assertRegex(conf, r"rate_limit_store:\n\s+type: redis\n\s+url: \"redis://")
        self.assertIn('session_key: "file:%ssession_key"' % SECRETS, conf)
        # every file: secret is a key of the Secret, and --check passes with its values
        data = self.secret["stringData"]
        names = dt.secret_files(conf, SECRETS)
        self.assertLessEqual(set(names), set(data))
        env = {}
        for e in self.ctr.get("env", []):
            ref = e["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref["name"], "panelgate-secrets")
            env[e["name"]] = data[ref["key"]]
        self.assertEqual(set(dt.env_names(conf)), set(env))
        rc, out = dt.check_config(self.conf, env, {n: data[n] for n in names}, SECRETS)
        self.assertEqual(rc, 0, out)

    def test_secret_is_placeholders(self):
        for k, v in self.secret["stringData"].items():
            self.assertTrue(v.startswith("REPLACE-ME-fake-") or re.fullmatch(r"0{64}", v),
                            "%s does not look like a placeholder" % k)
        self.assertNotIn("data", self.secret)

    def test_hpa_pdb_redis(self):
        hpa = self.objs[("HorizontalPodAutoscaler", "panelgate")]["spec"]
        self.assertEqual(hpa["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": "panelgate"})
        self.assertGreaterEqual(hpa["minReplicas"], 2)
        self.assertGreater(hpa["maxReplicas"], hpa["minReplicas"])
        pdb = self.objs[("PodDisruptionBudget", "panelgate")]["spec"]
        self.assertEqual(pdb["selector"]["matchLabels"], self.dep["spec"]["selector"]["matchLabels"])
        self.assertLess(pdb["minAvailable"], hpa["minReplicas"])  # a drain can proceed
        # the config's redis url names the redis Service and its port
        m = re.search(r'url: "redis://[^@]*@([a-z0-9-]+):(\d+)/', self.conf)
        rsvc = self.objs[("Service", m.group(1))]["spec"]
        self.assertEqual(rsvc["ports"][0]["port"], int(m.group(2)))
        rdep = self.objs[("Deployment", m.group(1))]["spec"]
        self.assertEqual(rsvc["selector"], rdep["selector"]["matchLabels"])
        rc = rdep["template"]["spec"]["containers"][0]
        self.assertIn('--requirepass "$REDIS_PASSWORD"', " ".join(rc["args"]))
        self.assertEqual(rc["env"][0]["valueFrom"]["secretKeyRef"],
                         {"name": "panelgate-secrets", "key": "redis_password"})
        self.assertTrue(rdep["template"]["spec"]["securityContext"]["runAsNonRoot"])

    def test_kustomization_lists_every_manifest(self):
        k = dt.yaml_docs(os.path.join(K8S, "kustomization.yaml"))[0]
        listed = sorted(k["resources"])
        on_disk = sorted(os.path.basename(f) for f in manifests()
                         if not f.endswith("kustomization.yaml"))
        self.assertEqual(listed, on_disk)


if __name__ == "__main__":
    unittest.main(verbosity=2)
