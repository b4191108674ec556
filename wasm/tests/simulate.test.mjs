// Rules what-if in JS (docs/CONTRACT.md section 13): the free function over
// the requests it is given, and a manager's over its own cache; the
// scenarios shared by every build are in tests/vectors/simulate.json.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApprovalManager, MemoryCache, simulateRules, validateRules } from "signoff";
import { alice, change, manualClock, rejects, rules, sequentialIds, throws } from "./helpers.mjs";

const crowdForIam = {
  ...rules,
  rules: [...rules.rules, { name: "iam-to-crowd", when: { policyTypes: ["iam"] }, level: "crowd" }],
};

test("a manager re-decides the requests of its cache, and stores nothing", async () => {
  const cache = new MemoryCache();
  const manager = new ApprovalManager({ rules, cache, clock: manualClock(), ids: sequentialIds() });
  const iam = await manager.create(change, alice);
  await manager.create({ ...change, policyType: "docs", policyId: "docs/readme" }, alice);
  const before = cache.size;

  const what = await manager.simulateRules(crowdForIam);
  assert.equal(what.valid, true);
  assert.equal(what.examined, 2);
  assert.equal(what.changed, 1);
  assert.deepEqual(
    what.items.map((item) => [item.id, item.level, item.newLevel]),
    [[iam.id, "peer", "crowd"]],
  );
  assert.equal(what.items[0].newExplanation.decidingRule, "iam-to-crowd");
  assert.equal(cache.size, before);
  assert.equal((await manager.get(iam.id)).level, "peer");

  const withPrincipals = await manager.simulateRules(rules, { limit: 1, principals: [alice] });
  assert.deepEqual(withPrincipals.warnings.map((warning) => warning.path), ["levels[1].stages[0]", "levels[2].stages[0]"]);
  const invalid = await manager.simulateRules({ levels: "none" });
  assert.equal(invalid.valid, false);
  assert.equal(invalid.examined, 0);
  await rejects(manager.simulateRules(rules, { limit: 0 }), "invalid_request");
  await rejects(manager.simulateRules(rules, { principals: [{ id: "system", roles: [] }] }), "invalid_request");
});

test("the free function takes stored requests only, and principals as every build reads them", async () => {
  const manager = new ApprovalManager({ rules, cache: new MemoryCache(), clock: manualClock(), ids: sequentialIds() });
  const filed = await manager.create(change, alice);
  const what = simulateRules(crowdForIam, [filed]);
  assert.equal(what.changed, 1);
  assert.deepEqual(what.warnings, []);
  throws(() => simulateRules(crowdForIam, [{ id: "not a request" }]), "invalid_request");
  throws(() => simulateRules(crowdForIam, [filed], { principals: "alice" }), "invalid_request");
  throws(() => simulateRules(crowdForIam, [filed], { limit: 3 }), "invalid_request");
  const notJson = simulateRules(() => 1, [filed]);
  assert.equal(notJson.valid, false);
});

test("validateRules names the stages the given principals could never meet, after the problems, as warnings", () => {
  const bob = { id: "bob", roles: ["security"] };
  const findings = validateRules(rules, { principals: [alice, bob] });
  assert.ok(findings.length > 0);
  assert.ok(findings.every((finding) => finding.code === "unsatisfiable"), JSON.stringify(findings));
  assert.ok(findings.every((finding) => /^levels\[\d+\]\.stages\[\d+\]/.test(finding.path)));
  // Without principals nothing is judged, and a valid document has no finding.
  assert.deepEqual(validateRules(rules), []);
  assert.deepEqual(validateRules(rules, {}), []);
  // An invalid document has problems only: its warnings cannot be judged.
  const invalid = validateRules({ ...rules, defaultLevel: "nowhere" }, { principals: [alice] });
  assert.ok(invalid.length > 0);
  assert.ok(invalid.every((finding) => finding.code !== "unsatisfiable"));
  throws(() => validateRules(rules, { principals: "alice" }), "invalid_request");
  throws(() => validateRules(rules, { principals: [{ id: "system", roles: [] }] }), "invalid_request");
  throws(() => validateRules(rules, { limit: 3 }), "invalid_request");
});

test("list({ q }) finds requests by title or policyId, ignoring case, and binds its cursor to the text", async () => {
  const manager = new ApprovalManager({ rules, cache: new MemoryCache(), clock: manualClock(), ids: sequentialIds() });
  const okta = await manager.create({ ...change, title: "Rotate the OKTA signing key", policyId: "iam/okta" }, alice);
  const edge = await manager.create({ ...change, title: "Open 443 on the edge", policyId: "fw/Edge-1" }, alice);
  await manager.create({ ...change, title: "Something else", policyId: "iam/other" }, alice);
  assert.deepEqual((await manager.list({ q: "okta" })).items.map((item) => item.id), [okta.id]);
  assert.deepEqual((await manager.list({ q: "  EDGE-1 " })).items.map((item) => item.id), [edge.id]);
  assert.deepEqual((await manager.list({ q: "nothing like it" })).items, []);
  const first = await manager.list({ q: "e", limit: 1 });
  assert.equal(first.items.length, 1);
  assert.ok(first.nextCursor);
  await rejects(manager.list({ q: "o", cursor: first.nextCursor }), "invalid_request");
  await rejects(manager.list({ q: "x".repeat(201) }), "invalid_request");
  await rejects(manager.list({ q: "   " }), "invalid_request");
  assert.equal((await manager.list({ q: "x".repeat(200) })).items.length, 0);
});
