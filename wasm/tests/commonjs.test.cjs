// The CommonJS entry (`require("signoff")`): a real CommonJS module, working
// where Node cannot `require` ES modules, sharing one instance with `import`.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");

const signoff = require("signoff");
const { checkCache } = require("signoff/conformance");

const rules = {
  levels: [{ name: "peer", ttlSeconds: 3600, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] }],
  defaultLevel: "peer",
};
const change = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  title: "Add bob",
  justification: "Bob joins the on-call rotation.",
};

test("require('signoff') gives the whole API, ready at once", async () => {
  const names = Object.keys(signoff).sort();
  for (const name of ["ApprovalManager", "CompiledRules", "MemoryCache", "SignoffError", "init", "initSync", "previewChange", "validateChange", "validateRules"]) {
    assert.ok(names.includes(name), `${name} is exported`);
  }
  await signoff.init();
  const manager = new signoff.ApprovalManager({ rules, cache: new signoff.MemoryCache() });
  const created = await manager.create(change, { id: "alice", roles: ["engineer"] });
  const approved = await manager.approve(created.id, { id: "bob", roles: ["engineer"] });
  assert.equal(approved.status, "approved");
  await assert.rejects(manager.approve(created.id, { id: "carol", roles: ["engineer"] }), (error) => {
    assert.ok(error instanceof signoff.SignoffError);
    assert.equal(error.code, "not_pending");
    return true;
  });
});

test("import and require share one instance", async () => {
  const esm = await import("signoff");
  assert.equal(esm.SignoffError, signoff.SignoffError);
  assert.equal(esm.ApprovalManager, signoff.ApprovalManager);
  assert.equal(esm.default, signoff.init);
  // A MemoryCache made through require serves a manager made through import.
  const cache = new signoff.MemoryCache();
  const manager = new esm.ApprovalManager({ rules, cache });
  await manager.create(change, { id: "alice", roles: ["engineer"] });
  assert.equal(cache.size > 0, true);
});

test("it loads where Node cannot require ES modules", () => {
  const script = `
    const { validateRules, SignoffError } = require("signoff");
    const { checkCache } = require("signoff/conformance");
    process.stdout.write(JSON.stringify({ problems: validateRules(${JSON.stringify(rules)}), error: typeof SignoffError, check: typeof checkCache }));
  `;
  const output = execFileSync(process.execPath, ["--no-experimental-require-module", "-e", script], { cwd: __dirname, encoding: "utf8" });
  assert.deepEqual(JSON.parse(output), { problems: [], error: "function", check: "function" });
});

test("require('signoff/conformance') checks a cache", async () => {
  const { MapCache } = await import("signoff/examples/map-cache.mjs");
  const report = await checkCache(new MapCache());
  assert.ok(report.ok, JSON.stringify(report.checks));
});
