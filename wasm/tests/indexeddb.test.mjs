// The package's IndexedDB cache (`signoff/indexeddb`, the one the policy
// editor's local mode uses), run in Node over fake-indexeddb, an
// implementation of the IndexedDB API.
import "fake-indexeddb/auto";
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApprovalManager } from "signoff";
import { IndexedDbCache } from "signoff/indexeddb";
import { alice, bob, carol, change, manualClock, rejects, rules, sequentialIds } from "./helpers.mjs";

let databases = 0;

async function setup() {
  const clock = manualClock();
  databases += 1;
  const cache = await IndexedDbCache.open(`signoff-test-${databases}`, { clock });
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

test("over IndexedDB, index changes arrive flat and a page is one getMany", async () => {
  const { cache, clock } = await setup();
  const calls = { get: 0, getMany: 0 };
  const shapes = new Set();
  const recorded = {
    get: (key) => (calls.get++, cache.get(key)),
    getMany: (keys) => (calls.getMany++, cache.getMany(keys)),
    commit: (batch) => {
      for (const change of [...batch.indexAdds, ...batch.indexRemoves]) shapes.add(Object.keys(change).sort().join(","));
      return cache.commit(batch);
    },
    range: (index, after, limit) => cache.range(index, after, limit),
  };
  const manager = new ApprovalManager({ rules, cache: recorded, clock, ids: sequentialIds() });
  for (let i = 0; i < 4; i++) {
    clock.advance(1000);
    await manager.create({ ...change, title: `change ${i}` }, alice);
  }
  assert.deepEqual([...shapes], ["index,member,sortKey"]);
  calls.get = 0;
  calls.getMany = 0;
  const page = await manager.list({ limit: 3 });
  assert.equal(page.items.length, 3);
  assert.deepEqual(calls, { get: 0, getMany: 1 });
  cache.close();
});

test("a database written by version 1, with bare-byte index keys, is re-keyed on open", async () => {
  const name = `signoff-v1-${Math.random()}`;
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    for (const store of ["values", "indexes", "meta"]) open.result.createObjectStore(store);
  };
  const old = await new Promise((resolve, reject) => {
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const utf8 = (text) => new TextEncoder().encode(text);
  const tx = old.transaction("indexes", "readwrite");
  for (const [sortKey, member] of [["b", "2"], ["a", "9"]]) {
    tx.objectStore("indexes").put({ sortKey, member }, ["idx", utf8(sortKey), utf8(member)]);
  }
  await new Promise((resolve) => (tx.oncomplete = resolve));
  old.close();

  const cache = await IndexedDbCache.open(name);
  assert.deepEqual(await cache.range("idx", null, 10), [
    { sortKey: "a", member: "9" },
    { sortKey: "b", member: "2" },
  ]);
  assert.deepEqual(await cache.range("idx", { sortKey: "a", member: "9" }, 10), [{ sortKey: "b", member: "2" }]);
  assert.equal(await cache.commit({ indexAdds: [{ index: "idx", sortKey: "", member: "" }] }), "committed");
  assert.deepEqual((await cache.range("idx", null, 1))[0], { sortKey: "", member: "" });
  cache.close();
});
