// Rules what-if in JS (docs/CONTRACT.md section 13): the free function over
// the requests it is given, and a manager's over its own cache; the
// scenarios shared by every build are in tests/vectors/simulate.json.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApprovalManager, MemoryCache, simulateRules } from "signoff";
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
