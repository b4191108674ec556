// Batched reads through a JavaScript cache (docs/CONTRACT.md section 6): a
// cache that has `getMany` is asked for a listing page's items in one call,
// whatever the page's `limit`; one without it gets one `get` per item. The
// counts are deterministic, so they are asserted exactly.
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { ApprovalManager } from "signoff";
import { checkCache } from "signoff/conformance";
import { MapCache, T0, alice, change, manualClock, rules, sequentialIds } from "./helpers.mjs";

/** A MapCache that counts its calls, with or without `getMany`. */
function countingCache({ batched }) {
  const inner = new MapCache();
  const calls = { get: 0, getMany: 0, getManyKeys: 0, range: 0, commit: 0 };
  const cache = {
    calls,
    get(key) {
      calls.get += 1;
      return inner.get(key);
    },
    commit(batch) {
      calls.commit += 1;
      return inner.commit(batch);
    },
    range(index, after, limit) {
      calls.range += 1;
      return inner.range(index, after, limit);
    },
  };
  if (batched) {
    cache.getMany = (keys) => {
      calls.getMany += 1;
      calls.getManyKeys += keys.length;
      return keys.map((key) => inner.get(key));
    };
  }
  return cache;
}

async function filled(cache, count) {
  const clock = manualClock(T0);
  const manager = new ApprovalManager({ rules, cache, clock, ids: sequentialIds() });
  for (let n = 0; n < count; n++) {
    await manager.create({ ...change, policyId: `iam/p-${n}` }, alice);
  }
  return manager;
}

const reset = (calls) => {
  for (const name of Object.keys(calls)) calls[name] = 0;
};

describe("a listing page", () => {
  for (const limit of [1, 50, 120]) {
    test(`of limit ${limit} reads its items with one getMany`, async () => {
      const cache = countingCache({ batched: true });
      const manager = await filled(cache, 120);
      reset(cache.calls);
      const page = await manager.list({ status: "pending", limit });
      assert.equal(page.items.length, limit);
      assert.equal(cache.calls.get, 0, "no item is read on its own");
      assert.equal(cache.calls.getMany, 1);
      // The page's items, and at most one more, which tells whether a next
      // page exists.
      assert.ok(cache.calls.getManyKeys >= limit && cache.calls.getManyKeys <= limit + 1, `${cache.calls.getManyKeys} keys`);
      assert.equal(cache.calls.commit, 0, "a listing writes nothing");
    });
  }

  test("over a cache without getMany reads each item with get, and answers the same", async () => {
    const plain = countingCache({ batched: false });
    const batched = countingCache({ batched: true });
    const managers = [await filled(plain, 30), await filled(batched, 30)];
    reset(plain.calls);
    reset(batched.calls);
    const [one, other] = await Promise.all(managers.map((manager) => manager.list({ limit: 30 })));
    assert.equal(batched.calls.getMany, 1);
    assert.equal(plain.calls.getMany, 0);
    assert.equal(plain.calls.get, 30);
    assert.deepEqual(one, other);
  });
});

describe("checkCache judges getMany", () => {
  test("a getMany that answers what get answers passes", async () => {
    const report = await checkCache(countingCache({ batched: true }));
    assert.ok(report.checks.some((check) => check.name.startsWith("getMany")));
    assert.deepEqual(report.checks.filter((check) => !check.ok), []);
  });

  test("a getMany that answers in another order fails, by name", async () => {
    const cache = countingCache({ batched: true });
    const inner = cache.getMany;
    cache.getMany = (keys) => inner(keys).reverse();
    const report = await checkCache(cache);
    assert.deepEqual(
      report.checks.filter((check) => !check.ok).map((check) => check.name),
      ["getMany answers what get answers, one item per key, in order"],
    );
  });
});
