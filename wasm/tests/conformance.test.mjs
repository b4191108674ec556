// The cache conformance check of the package (`signoff/conformance`): it
// passes for every cache of the examples, and fails, naming the broken
// guarantee, for stores without compare-and-swap or without ordered ranges.
import "fake-indexeddb/auto";
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { checkCache } from "signoff/conformance";
import { KvStore, kvCache } from "../examples/edge/kv.mjs";
import { IndexedDbCache } from "signoff/indexeddb";
import { MapCache, promiseCache, thenableCache, yieldingCache } from "./helpers.mjs";

const failed = (report) => report.checks.filter((check) => !check.ok).map((check) => check.name);

describe("safe caches pass", () => {
  const caches = {
    "the Map cache (answering values)": () => new MapCache(),
    "the Map cache answering Promises": () => promiseCache(),
    "the Map cache answering thenable objects": () => thenableCache("object"),
    "the Map cache answering thenable functions": () => thenableCache("function"),
    "a cache whose commits yield to the event loop": () => yieldingCache(),
    "the edge KV cache (atomic checks)": () => kvCache(new KvStore()),
    "the IndexedDB cache": () => IndexedDbCache.open("conformance"),
  };
  for (const [name, make] of Object.entries(caches)) {
    test(name, async () => {
      const report = await checkCache(await make());
      assert.deepEqual(failed(report), [], JSON.stringify(report.checks.filter((check) => !check.ok)));
      assert.ok(report.ok);
      assert.ok(report.checks.length >= 8);
    });
  }

  test("it leaves nothing behind", async () => {
    const store = new KvStore();
    await checkCache(kvCache(store));
    assert.deepEqual(await store.list({ prefix: "", limit: 1000 }), []);
  });
});

/**
 * A cache over a store like Workers KV: it can read and write single keys,
 * but has no atomic check-and-write, so a commit reads the checked versions
 * and then writes, with the network (an await) in between.
 */
function workersKvLikeCache() {
  const inner = new MapCache();
  const values = new Map();
  let lastVersion = 0;
  const network = () => new Promise((resolve) => setTimeout(resolve, 1));
  return {
    async get(key) {
      await network();
      return values.get(key) ?? null;
    },
    async commit(batch) {
      for (const { key, version } of batch.checks) {
        await network();
        if ((values.get(key)?.version ?? null) !== version) return false;
      }
      await network();
      for (const key of batch.deletes) values.delete(key);
      for (const { key, value } of batch.puts) values.set(key, { value, version: ++lastVersion });
      // The index lives in an ordered structure: only atomicity is missing.
      inner.commit({ checks: [], puts: [], deletes: [], indexAdds: batch.indexAdds, indexRemoves: batch.indexRemoves });
      return true;
    },
    range: (index, after, limit) => inner.range(index, after, limit),
  };
}

describe("unsafe caches fail, naming what is broken", () => {
  test("a Workers-KV-like cache without compare-and-swap loses increments", async () => {
    const report = await checkCache(workersKvLikeCache());
    assert.equal(report.ok, false);
    assert.deepEqual(failed(report), ["32 concurrent compare-and-swap increments are all counted"]);
    assert.match(report.checks.find((check) => !check.ok).message, /commits are not atomic/);
  });

  test("a cache that ignores checks", async () => {
    const inner = new MapCache();
    const cache = {
      get: (key) => inner.get(key),
      commit: (batch) => inner.commit({ ...batch, checks: [] }),
      range: (index, after, limit) => inner.range(index, after, limit),
    };
    const names = failed(await checkCache(cache));
    assert.ok(names.includes("a failed check changes nothing: values and index entries"), names.join("; "));
  });

  test("a cache whose versions restart after a delete", async () => {
    const values = new Map();
    const inner = new MapCache();
    const cache = {
      get: (key) => values.get(key) ?? null,
      commit(batch) {
        for (const { key, version } of batch.checks) if ((values.get(key)?.version ?? null) !== version) return false;
        for (const key of batch.deletes) values.delete(key);
        for (const { key, value } of batch.puts) values.set(key, { value, version: (values.get(key)?.version ?? 0) + 1 });
        return inner.commit({ checks: [], puts: [], deletes: [], indexAdds: batch.indexAdds, indexRemoves: batch.indexRemoves });
      },
      range: (index, after, limit) => inner.range(index, after, limit),
    };
    assert.deepEqual(failed(await checkCache(cache)), ["versions move on every put and are never reused for a key"]);
  });

  test("a cache whose ranges come in insertion order", async () => {
    const inner = new MapCache();
    const entries = new Map();
    const cache = {
      get: (key) => inner.get(key),
      commit(batch) {
        const committed = inner.commit(batch);
        if (committed) {
          for (const { index, sortKey, member } of batch.indexAdds) {
            if (!entries.has(index)) entries.set(index, []);
            entries.get(index).push({ sortKey, member });
          }
          for (const { index, sortKey, member } of batch.indexRemoves) {
            entries.set(index, (entries.get(index) ?? []).filter((e) => e.sortKey !== sortKey || e.member !== member));
          }
        }
        return committed;
      },
      range(index, after, limit) {
        const list = entries.get(index) ?? [];
        const start = after ? list.findIndex((e) => e.sortKey === after.sortKey && e.member === after.member) + 1 : 0;
        return list.slice(start, start + limit);
      },
    };
    const names = failed(await checkCache(cache));
    assert.ok(names.includes("range answers entries in (sortKey, member) order, strictly after `after`, within `limit`"), names.join("; "));
  });

  test("a cache that throws is reported, not thrown", async () => {
    const report = await checkCache({ get: () => { throw new Error("down"); }, commit: () => true, range: () => [] });
    assert.equal(report.ok, false);
    assert.match(report.checks[0].message, /threw: down/);
  });
});
