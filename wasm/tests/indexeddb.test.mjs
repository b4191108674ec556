// The IndexedDB cache of wasm/README.md (wasm/examples/indexeddb-cache.mjs),
// run in Node over fake-indexeddb, an implementation of the IndexedDB API.
import "fake-indexeddb/auto";
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApprovalManager } from "signoff";
import { openIndexedDbCache } from "../examples/indexeddb-cache.mjs";
import { alice, bob, carol, change, manualClock, rejects, rules, sequentialIds } from "./helpers.mjs";

let databases = 0;

async function setup() {
  const clock = manualClock();
  databases += 1;
  const cache = await openIndexedDbCache(`signoff-test-${databases}`, { clock });
  const manager = new ApprovalManager({ rules, cache, clock, ids: sequentialIds() });
  return { cache, clock, manager };
}

test("the lifecycle over IndexedDB", async () => {
  const { cache, clock, manager } = await setup();
  const created = await manager.create(change, alice);
  clock.advance(1000);
  const second = await manager.create({ ...change, priority: "urgent" }, bob);
  assert.deepEqual((await manager.list()).items.map((item) => item.id), [second.id, created.id]);
  const page = await manager.list({ limit: 1 });
  assert.deepEqual((await manager.list({ limit: 1, cursor: page.nextCursor })).items.map((item) => item.id), [created.id]);
  await manager.approve(created.id, bob);
  const approved = await manager.approve(created.id, carol);
  assert.equal(approved.status, "approved");
  assert.deepEqual(await manager.get(created.id), approved);
  assert.deepEqual((await manager.list({ status: "approved" })).items.map((item) => item.id), [created.id]);
  assert.deepEqual((await manager.list()).items.map((item) => item.id), [second.id]);
  await rejects(manager.approve(created.id, { id: "dave", roles: ["engineer"] }), "not_pending");
  cache.close();
});

test("concurrent approvals over IndexedDB each count once", async () => {
  const { cache, manager } = await setup();
  const created = await manager.create({ ...change, policyType: "crowd" }, alice);
  const approvals = Array.from({ length: 16 }, (_, i) => manager.approve(created.id, { id: `p${i}`, roles: [] }));
  await Promise.all(approvals);
  const final = await manager.get(created.id);
  assert.equal(final.approvals.length, 16);
  assert.equal(final.version, 17);
  cache.close();
});

test("idempotency records lapse after 24 hours on the cache's clock", async () => {
  const { cache, clock, manager } = await setup();
  const first = await manager.create(change, alice, { idempotencyKey: "k" });
  assert.equal((await manager.create(change, alice, { idempotencyKey: "k" })).id, first.id);
  clock.advance(24 * 3600 * 1000);
  assert.notEqual((await manager.create(change, alice, { idempotencyKey: "k" })).id, first.id);
  cache.close();
});
