// validate.js -- offline checks for deploy/, run by tests/deploy/*.py (node >= 18, CommonJS so
// NODE_PATH can point at node_modules in the build tree).
//   node validate.js k8s FILE...   every Kubernetes object in FILEs against the API's OpenAPI
//                                  schema (kubernetes-models' validate(): types, required fields,
//                                  enums, formats); one line per object; exit 1 on any failure
//   node validate.js json FILE...  every YAML document of FILEs as JSON: [{file, docs: [...]}]
// Kubernetes reads manifests as YAML 1.1 (0440 is octal, `on` is true), so `k8s` does too.
// kubernetes-models does not reject unknown fields (the API server would, with
// --validate=strict); the Python tests assert the fields that matter by name.
"use strict";

const fs = require("fs");
const YAML = require("yaml");

function load(file, version) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { version });
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const v = d.toJS({ maxAliasCount: 100 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

// apps/v1 Deployment -> kubernetes-models/apps/v1/Deployment; v1 Service -> .../v1/Service
function modelFor(obj) {
  if (!obj || typeof obj !== "object" || typeof obj.apiVersion !== "string" ||
      typeof obj.kind !== "string")
    throw new Error("not a Kubernetes object (apiVersion and kind are required strings)");
  if (!/^[A-Za-z0-9.\/-]+$/.test(obj.apiVersion) || !/^[A-Za-z0-9]+$/.test(obj.kind))
    throw new Error(`bad apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
  let mod;
  try {
    mod = require(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
  } catch (e) {
    throw new Error(`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
  }
  const cls = mod[obj.kind];
  if (typeof cls !== "function") throw new Error(`no model for ${obj.kind}`);
  return cls;
}

function k8s(files) {
  let failed = 0, checked = 0;
  for (const file of files) {
    let docs;
    try {
      docs = load(file, "1.1");
    } catch (e) {
      console.log(`FAIL ${file}: ${e.message}`);
      failed++;
      continue;
    }
    for (const obj of docs) {
      const name = `${obj && obj.kind}/${obj && obj.metadata && obj.metadata.name}`;
      if (obj && typeof obj.apiVersion === "string" &&
          obj.apiVersion.startsWith("kustomize.config.k8s.io/")) {
        console.log(`skip ${file} ${name} (kustomize's own file, not an API object)`);
        continue;
      }
      try {
        const Model = modelFor(obj);
        new Model(obj).validate();
        console.log(`ok ${file} ${obj.apiVersion} ${name}`);
        checked++;
      } catch (e) {
        console.log(`FAIL ${file} ${name}: ${e.message}`);
        failed++;
      }
    }
  }
  console.log(`objects: ${checked} valid, ${failed} invalid`);
  return failed || checked === 0 ? 1 : 0;
}

function json(files) {
  const out = files.map((file) => ({ file, docs: load(file, "1.2") }));
  process.stdout.write(JSON.stringify(out));
  return 0;
}

const [mode, ...files] = process.argv.slice(2);
if (!files.length || (mode !== "k8s" && mode !== "json")) {
  console.error("usage: node validate.js k8s|json FILE...");
  process.exit(2);
}
try {
  process.exit(mode === "k8s" ? k8s(files) : json(files));
} catch (e) {
  console.error(`validate.js: ${e.message}`);
  process.exit(1);
}
