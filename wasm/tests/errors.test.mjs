// Every error code as JavaScript sees it: a SignoffError (an Error) with
// `code` and, where there are any, `details`; and malformed inputs of every
// kind, which must give `invalid_request` and never a trap or a string.
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  ApprovalManager,
  MemoryCache,
  SignoffError,
  previewChange,
  validateChange,
  validateRules,
} from "signoff";
import {
  MapCache,
  alice,
  bob,
  carol,
  change,
  dave,
  items,
  manualClock,
  rejects,
  rules,
  sequentialIds,
  throws,
} from "./helpers.mjs";

function setup(extra = {}) {
  const clock = manualClock();
  const manager = new ApprovalManager({
    rules: extra.rules ?? rules,
    cache: extra.cache ?? new MemoryCache({ clock }),
    clock,
    ids: sequentialIds(),
  });
  return { clock, manager };
}

describe("every error code", () => {
  test("invalid_request lists every problem in details", async () => {
    const { manager } = setup();
    const error = await rejects(manager.create({ ...change, title: "", riskScore: 101, colour: "red" }, alice), "invalid_request");
    assert.deepEqual(items(error.details), [
      { path: "title", code: "too_short" },
      { path: "riskScore", code: "out_of_range" },
      { path: "colour", code: "unknown_field" },
    ]);
    assert.ok(error.details.every((item) => typeof item.message === "string" && item.message.length > 0));
  });

  test("not_found for an action on an unknown request", async () => {
    const { manager } = setup();
    await rejects(manager.approve("00000000-0000-4000-8000-0000000000ff", bob), "not_found");
    await rejects(manager.comment("nope", bob, { text: "hi" }), "not_found");
  });

  test("expired once the request is past its expiresAt", async () => {
    const { clock, manager } = setup();
    const created = await manager.create(change, alice);
    clock.advance(3600 * 1000);
    await rejects(manager.approve(created.id, bob), "expired");
    await rejects(manager.cancel(created.id, alice), "expired");
  });

  test("not_pending for a terminal request", async () => {
    const { manager } = setup();
    const created = await manager.create(change, alice);
    await manager.cancel(created.id, alice);
    const error = await rejects(manager.approve(created.id, bob), "not_pending");
    assert.equal(error.details, undefined);
  });

  test("self_approval when the requester approves or rejects", async () => {
    const { manager } = setup();
    const created = await manager.create(change, alice);
    await rejects(manager.approve(created.id, alice), "self_approval");
    await rejects(manager.reject(created.id, alice, { reason: "mine" }), "self_approval");
  });

  test("already_approved for a second approval, or a rejection after approving", async () => {
    const { manager } = setup();
    const created = await manager.create(change, alice);
    await manager.approve(created.id, bob);
    await rejects(manager.approve(created.id, bob), "already_approved");
    await rejects(manager.reject(created.id, bob, { reason: "changed my mind" }), "already_approved");
  });

  test("not_eligible without a role of the current stage", async () => {
    const { manager } = setup();
    const created = await manager.create(change, alice);
    await rejects(manager.approve(created.id, dave), "not_eligible");
  });

  test("forbidden when someone else cancels", async () => {
    const { manager } = setup();
    const created = await manager.create(change, alice);
    await rejects(manager.cancel(created.id, bob), "forbidden");
  });

  test("rate_limited with details.retryAfterSeconds", async () => {
    const { clock, manager } = setup({ rules: { ...rules, rateLimit: { requests: 1, perSeconds: 60 } } });
    await manager.create(change, alice);
    const error = await rejects(manager.create(change, alice), "rate_limited");
    assert.deepEqual(error.details, { retryAfterSeconds: 60 });
    clock.advance(59_500);
    assert.deepEqual((await rejects(manager.create(change, alice), "rate_limited")).details, { retryAfterSeconds: 1 });
    await manager.create(change, bob);
  });

  test("conflict for an idempotency key reused with another change", async () => {
    const { manager } = setup();
    await manager.create(change, alice, { idempotencyKey: "once" });
    await rejects(manager.create({ ...change, title: "Something else" }, alice, { idempotencyKey: "once" }), "conflict");
  });

  test("the order of docs/CONTRACT.md section 9: invalid_request before not_found", async () => {
    const { manager } = setup();
    await rejects(manager.reject("nope", bob, { reason: "" }), "invalid_request");
  });
});

describe("unavailable when the cache fails", () => {
  const failures = {
    "get throws": { get() { throw new Error("disk on fire"); } },
    "get throws a non-Error": { get() { throw "a string"; } },
    "get rejects": { get: () => Promise.reject(new Error("network down")) },
    "get answers a number": { get: () => 42 },
    "get answers bytes as a string": { get: () => ({ value: "bytes", version: 1 }) },
    "get answers a negative version": { get: () => ({ value: new Uint8Array(), version: -1 }) },
    "commit throws": { commit() { throw new TypeError("read-only"); } },
    "commit rejects": { commit: () => Promise.reject(new Error("timeout")) },
    "commit answers a thenable function that rejects": {
      commit: () => Object.assign(() => true, { then: (_resolve, reject) => reject(new Error("storage reset")) }),
    },
    "commit answers neither true nor false": { commit: () => "maybe" },
    "range throws": { range() { throw new Error("no index"); } },
    "range answers too many entries": { range: () => Array.from({ length: 600 }, (_, i) => ({ sortKey: "k", member: `m${i}` })) },
    "range answers entries out of order": { range: () => [{ sortKey: "b", member: "1" }, { sortKey: "a", member: "2" }] },
    "range answers something else": { range: () => ({ length: 1 }) },
  };
  for (const [name, override] of Object.entries(failures)) {
    test(name, async () => {
      const inner = new MapCache();
      const cache = {
        get: (key) => inner.get(key),
        commit: (batch) => inner.commit(batch),
        range: (index, after, limit) => inner.range(index, after, limit),
        ...override,
      };
      const { manager } = setup({ cache });
      const attempt = async () => {
        const created = await manager.create(change, alice);
        await manager.get(created.id);
        await manager.list();
      };
      const error = await rejects(attempt, "unavailable");
      assert.match(error.message, /^cache unavailable: cache\.(get|commit|range) /);
    });
  }

  test("a failed commit stored nothing, and the manager works once the cache does", async () => {
    const inner = new MapCache();
    let broken = true;
    const cache = {
      get: (key) => inner.get(key),
      commit: (batch) => {
        if (broken) throw new Error("down");
        return inner.commit(batch);
      },
      range: (index, after, limit) => inner.range(index, after, limit),
    };
    const { manager } = setup({ cache });
    await rejects(manager.create(change, alice), "unavailable");
    broken = false;
    assert.deepEqual((await manager.list()).items, []);
    const created = await manager.create(change, alice);
    assert.equal(created.status, "pending");
  });
});

describe("malformed inputs are invalid_request", () => {
  const { manager } = setup();

  test("a change that is not an object", async () => {
    for (const bad of ["change", 42, null, undefined, [change]]) {
      const error = await rejects(manager.create(bad, alice), "invalid_request");
      assert.deepEqual(items(error.details), [{ path: "", code: "invalid_type" }]);
    }
  });

  test("fields of the wrong type, missing or unknown", async () => {
    const error = await rejects(
      manager.create({ policyId: 7, policyType: "iam", changeKind: "rename", justification: ["x"], zzz: true }, alice),
      "invalid_request",
    );
    assert.deepEqual(items(error.details), [
      { path: "policyId", code: "invalid_type" },
      { path: "changeKind", code: "not_allowed" },
      { path: "title", code: "required" },
      { path: "justification", code: "invalid_type" },
      { path: "zzz", code: "unknown_field" },
    ]);
  });

  test("values that are not JSON data, each at its path", async () => {
    const cyclic = { ...change };
    cyclic.metadata = { self: cyclic };
    const cases = [
      [{ ...change, riskScore: NaN }, "riskScore"],
      [{ ...change, riskScore: Infinity }, "riskScore"],
      [{ ...change, riskScore: 10n }, "riskScore"],
      [{ ...change, title: () => "x" }, "title"],
      [{ ...change, title: Symbol("x") }, "title"],
      [{ ...change, metadata: new Map([["a", "b"]]) }, "metadata"],
      [{ ...change, metadata: { when: new Date(0) } }, "metadata.when"],
      [{ ...change, metadata: { list: [1, NaN] } }, "metadata.list[1]"],
      [cyclic, ""],
    ];
    for (const [bad, path] of cases) {
      const error = await rejects(manager.create(bad, alice), "invalid_request");
      assert.equal(error.details[0].path, path, JSON.stringify(error.details));
      assert.equal(error.details[0].code, "invalid_type");
      assert.deepEqual(
        validateChange(bad).map((item) => item.path),
        error.details.map((item) => item.path),
      );
    }
  });

  test("huge strings and deep nesting", async () => {
    const huge = await rejects(manager.create({ ...change, diff: "x".repeat(2 << 20) }, alice), "invalid_request");
    assert.deepEqual(items(huge.details), [{ path: "", code: "too_large" }]);
    const big = await rejects(manager.create({ ...change, diff: "x".repeat(300 * 1024) }, alice), "invalid_request");
    assert.deepEqual(items(big.details), [{ path: "diff", code: "too_large" }]);
    let deep = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const nested = await rejects(manager.create({ ...change, metadata: { deep } }, alice), "invalid_request");
    assert.equal(nested.details[0].code, "invalid_type");
    const longId = await rejects(manager.get("x".repeat(1 << 20)), "invalid_request");
    assert.deepEqual(items(longId.details), [{ path: "id", code: "too_long" }]);
  });

  test("a principal that is not { id, roles }", async () => {
    const created = await manager.create(change, alice);
    const cases = [
      ["alice", [{ path: "principal", code: "invalid_type" }]],
      [null, [{ path: "principal", code: "invalid_type" }]],
      [{ id: "system" }, [{ path: "principal.id", code: "not_allowed" }]],
      [{ id: "bob", roles: ["x", "x"] }, [{ path: "principal.roles[1]", code: "duplicate" }]],
      [{ id: "b\u202eb", roles: [] }, [{ path: "principal.id", code: "forbidden_character" }]],
      [{ roles: [] }, [{ path: "principal.id", code: "required" }]],
      [{ id: "", roles: [] }, [{ path: "principal.id", code: "too_short" }]],
      [{ id: "bob", roles: "engineer" }, [{ path: "principal.roles", code: "invalid_type" }]],
      [{ id: "bob", roles: ["engineer", 3] }, [{ path: "principal.roles[1]", code: "invalid_type" }]],
      [{ id: "bob", roles: [], admin: true }, [{ path: "principal.admin", code: "unknown_field" }]],
      [{ id: "b\u0000b", roles: [] }, [{ path: "principal.id", code: "forbidden_character" }]],
      [{ id: "bob", roles: Array.from({ length: 300 }, (_, i) => `r${i}`) }, [{ path: "principal.roles", code: "too_many" }]],
    ];
    for (const [principal, expected] of cases) {
      const error = await rejects(manager.approve(created.id, principal), "invalid_request");
      assert.deepEqual(items(error.details), expected, JSON.stringify(principal));
    }
    assert.equal((await manager.get(created.id)).approvals.length, 0);
  });

  test("ids that are not strings, and bodies of actions", async () => {
    const created = await manager.create(change, alice);
    for (const id of [42, null, undefined, { id: created.id }]) {
      const error = await rejects(manager.approve(id, bob), "invalid_request");
      assert.deepEqual(items(error.details), [{ path: "id", code: "invalid_type" }]);
    }
    await rejects(manager.approve(created.id, bob, { comment: 5 }), "invalid_request");
    await rejects(manager.approve(created.id, bob, { note: "x" }), "invalid_request");
    await rejects(manager.approve(created.id, bob, "ok"), "invalid_request");
    await rejects(manager.reject(created.id, bob), "invalid_request");
    await rejects(manager.reject(created.id, bob, { reason: "   " }), "invalid_request");
    await rejects(manager.comment(created.id, bob, {}), "invalid_request");
    await rejects(manager.comment(created.id, bob, { text: "x".repeat(4001) }), "invalid_request");
    await rejects(manager.create(change, alice, { idempotencyKey: "has space" }), "invalid_request");
    await rejects(manager.create(change, alice, { idempotency: "k" }), "invalid_request");
    await rejects(manager.expireDue({ limit: 0 }), "invalid_request");
    await rejects(manager.list({ limit: 501 }), "invalid_request");
    await rejects(manager.list({ cursor: "garbage" }), "invalid_request");
    await rejects(manager.list({ status: "done" }), "invalid_request");
    const page = await manager.list({ limit: 1 });
    await rejects(manager.list({ status: "approved", cursor: page.nextCursor }), "invalid_request");
    assert.equal((await manager.get(created.id)).version, 1);
  });

  test("manager options", () => {
    const cache = new MemoryCache();
    const cases = [
      [undefined, [{ path: "", code: "invalid_type" }]],
      [{}, [{ path: "cache", code: "required" }, { path: "rules", code: "required" }]],
      [{ rules, cache, colour: 1 }, [{ path: "colour", code: "unknown_field" }]],
      [{ rules, cache: {} }, [
        { path: "cache.get", code: "invalid_type" },
        { path: "cache.commit", code: "invalid_type" },
        { path: "cache.range", code: "invalid_type" },
      ]],
      [{ rules, cache: "redis" }, [{ path: "cache", code: "invalid_type" }]],
      [{ rules, cache, clock: 5 }, [{ path: "clock", code: "invalid_type" }]],
      [{ rules, cache, ids: "uuid" }, [{ path: "ids", code: "invalid_type" }]],
      [{ rules: { levels: [], defaultLevel: "x" }, cache }, [
        { path: "levels", code: "too_short" },
        { path: "defaultLevel", code: "unknown_level" },
      ]],
    ];
    for (const [options, expected] of cases) {
      const error = throws(() => new ApprovalManager(options), "invalid_request");
      assert.deepEqual(items(error.details), expected, JSON.stringify(options));
    }
    throws(() => new MemoryCache({ clock: "now" }), "invalid_request");
    throws(() => new MemoryCache({ tick: Date.now }), "invalid_request");
  });

  test("a clock that does not answer epoch milliseconds", async () => {
    for (const clock of [() => NaN, () => "now", () => { throw new Error("no time"); }]) {
      const broken = new ApprovalManager({ rules, cache: new MemoryCache(), clock });
      const error = await rejects(broken.create(change, alice), "invalid_request");
      assert.deepEqual(items(error.details), [{ path: "clock", code: "invalid_type" }]);
    }
  });

  test("an id source that does not answer UUIDs stores nothing", async () => {
    for (const ids of [() => "not-a-uuid", () => 7, () => "00000000-0000-0000-0000-000000000000", () => { throw new Error("empty"); }]) {
      const cache = new MemoryCache();
      const broken = new ApprovalManager({ rules, cache, ids });
      const error = await rejects(broken.create(change, alice), "invalid_request");
      assert.deepEqual(items(error.details), [{ path: "ids", code: "invalid_type" }]);
      assert.equal(cache.size, 0);
      assert.deepEqual((await broken.list()).items, []);
    }
  });

  test("synchronous functions throw SignoffError for invalid rules", () => {
    const error = throws(() => previewChange(change, { levels: "none" }), "invalid_request");
    assert.deepEqual(items(error.details), [{ path: "levels", code: "invalid_type" }, { path: "defaultLevel", code: "required" }]);
    throws(() => validateChange(change, { levels: [] }), "invalid_request");
    assert.deepEqual(items(validateRules(new Map())), [{ path: "", code: "invalid_type" }]);
    assert.deepEqual(items(previewChange(new Date(), rules).errors), [{ path: "", code: "invalid_type" }]);
  });

  test("after every failure above the module still works", async () => {
    const created = await manager.create(change, carol);
    assert.equal(created.status, "pending");
    assert.ok(created instanceof Object && !(created instanceof SignoffError));
  });
});
