// The JavaScript API of docs/CONTRACT.md section 8 over the three kinds of cache: the
// built-in MemoryCache, a cache answering plain values, and one answering
// Promises; plus concurrent approvals over a cache that interleaves commits.
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import init, {
  ApprovalManager,
  CompiledRules,
  MemoryCache,
  initSync,
  previewChange,
  validateChange,
  validateRules,
} from "signoff";
import {
  MapCache,
  T0,
  alice,
  bob,
  carol,
  change,
  manualClock,
  promiseCache,
  rejects,
  thenableCache,
  rules,
  sequentialIds,
  throws,
  yieldingCache,
} from "./helpers.mjs";

await init();

const caches = {
  "MemoryCache": (clock) => new MemoryCache({ clock }),
  "a cache answering plain values": (clock) => new MapCache({ clock }),
  "a cache answering Promises": (clock) => promiseCache(new MapCache({ clock })),
  "a cache answering thenable objects": (clock) => thenableCache("object", new MapCache({ clock })),
  "a cache answering thenable functions": (clock) => thenableCache("function", new MapCache({ clock })),
};

for (const [kind, makeCache] of Object.entries(caches)) {
  describe(`over ${kind}`, () => {
    function setup() {
      const clock = manualClock();
      const manager = new ApprovalManager({ rules, cache: makeCache(clock), clock, ids: sequentialIds() });
      return { clock, manager };
    }

    test("create, approve twice, and the request is approved", async () => {
      const { clock, manager } = setup();
      const created = await manager.create(change, alice);
      assert.equal(created.id, "00000000-0000-4000-8000-000000000001");
      assert.equal(created.status, "pending");
      assert.equal(created.stage, "review");
      assert.equal(created.level, "peer");
      assert.equal(created.requestedBy, "alice");
      assert.equal(created.createdAt, "2026-01-01T00:00:00.000Z");
      assert.equal(created.expiresAt, "2026-01-01T01:00:00.000Z");
      assert.equal(created.rulesDigest, manager.rulesDigest);
      clock.advance(1000);
      const once = await manager.approve(created.id, bob, { comment: " ok " });
      assert.match(created.changeDigest, /^[0-9a-f]{64}$/);
      assert.deepEqual(once.approvals, [
        { by: "bob", stage: "review", at: "2026-01-01T00:00:01.000Z", comment: "ok", changeDigest: created.changeDigest },
      ]);
      const twice = await manager.approve(created.id, carol);
      assert.equal(twice.status, "approved");
      assert.equal(twice.stage, undefined);
      assert.deepEqual(
        twice.history.map((entry) => `${entry.actor}:${entry.action}`),
        ["alice:create", "bob:approve", "carol:approve"],
      );
      assert.deepEqual(await manager.get(created.id), twice);
    });

    test("reject, cancel and comment answer the request after the action", async () => {
      const { manager } = setup();
      const first = await manager.create(change, alice);
      const rejected = await manager.reject(first.id, bob, { reason: "not now" });
      assert.equal(rejected.status, "rejected");
      assert.deepEqual(rejected.rejection, { by: "bob", stage: "review", at: "2026-01-01T00:00:00.000Z", reason: "not now" });
      const commented = await manager.comment(first.id, carol, { text: "noted" });
      assert.equal(commented.version, rejected.version + 1);
      assert.equal(commented.history.at(-1).comment, "noted");
      const second = await manager.create(change, alice);
      const cancelled = await manager.cancel(second.id, alice);
      assert.equal(cancelled.status, "cancelled");
    });

    test("a level without stages is approved at creation", async () => {
      const { manager } = setup();
      const created = await manager.create({ ...change, policyType: "docs" }, alice);
      assert.equal(created.status, "approved");
      assert.equal(created.level, "auto");
    });

    test("get answers null for unknown and malformed ids", async () => {
      const { manager } = setup();
      assert.equal(await manager.get("00000000-0000-4000-8000-000000000009"), null);
      assert.equal(await manager.get("not-a-uuid"), null);
    });

    test("list pages through pending requests with a cursor, urgent first", async () => {
      const { clock, manager } = setup();
      const created = [];
      for (let i = 0; i < 5; i++) {
        clock.advance(1000);
        created.push(await manager.create({ ...change, priority: i === 3 ? "urgent" : "normal" }, alice));
      }
      const first = await manager.list({ limit: 2 });
      assert.equal(first.items.length, 2);
      assert.equal(typeof first.nextCursor, "string");
      assert.equal(first.items[0].id, created[3].id);
      const rest = await manager.list({ limit: 10, cursor: first.nextCursor });
      assert.equal(rest.nextCursor, undefined);
      const seen = [...first.items, ...rest.items].map((request) => request.id);
      assert.deepEqual(seen, [created[3], created[0], created[1], created[2], created[4]].map((r) => r.id));
      const iam = await manager.list({ policyType: "iam", status: "pending" });
      assert.equal(iam.items.length, 5);
      assert.deepEqual((await manager.list({ status: "approved" })).items, []);
      // The summary view leaves out the diff, the justification and the
      // history; the full view (the default) keeps them.
      const summary = await manager.list({ view: "summary", limit: 1 });
      assert.equal(summary.items[0].id, created[3].id);
      assert.equal(summary.items[0].history, undefined);
      assert.equal(summary.items[0].change.justification, undefined);
      assert.equal(summary.items[0].change.title, change.title);
      assert.ok(Array.isArray(first.items[0].history));
      assert.equal(first.items[0].change.justification, change.justification);
    });

    test("expireDue expires what is due, at expiresAt, by system", async () => {
      const { clock, manager } = setup();
      const created = await manager.create(change, alice);
      clock.advance(3600 * 1000);
      const report = await manager.expireDue({ limit: 10 });
      assert.deepEqual(report, { expired: 1, ids: [created.id] });
      const expired = await manager.get(created.id);
      assert.equal(expired.status, "expired");
      assert.equal(expired.updatedAt, created.expiresAt);
      assert.equal(expired.history.at(-1).actor, "system");
      assert.deepEqual(await manager.expireDue(), { expired: 0, ids: [] });
    });

    test("an idempotency key replays the first request", async () => {
      const { manager } = setup();
      const first = await manager.create(change, alice, { idempotencyKey: "key-1" });
      const again = await manager.create({ ...change, environment: null }, alice, { idempotencyKey: "key-1" });
      assert.deepEqual(again, first);
      const other = await manager.create(change, bob, { idempotencyKey: "key-1" });
      assert.notEqual(other.id, first.id);
    });
  });
}

test("64 concurrent approvals of one request are each counted exactly once", async () => {
  const cache = yieldingCache();
  const manager = new ApprovalManager({ rules, cache, ids: sequentialIds() });
  const created = await manager.create({ ...change, policyType: "crowd" }, alice);
  assert.equal(created.stage, "everyone");
  const approvers = Array.from({ length: 64 }, (_, i) => ({ id: `approver-${i}`, roles: [] }));
  const answers = await Promise.all(approvers.map((principal) => manager.approve(created.id, principal)));
  assert.equal(answers.length, 64);
  const final = await manager.get(created.id);
  assert.equal(final.approvals.length, 64);
  assert.equal(new Set(final.approvals.map((approval) => approval.by)).size, 64);
  assert.equal(final.status, "approved");
  assert.equal(final.version, 65);
  assert.equal(answers.filter((answer) => answer.status === "approved").length, 1);
  assert.ok(cache.stats.conflicts > 0, "the approvals did interleave");
  await rejects(manager.approve(created.id, { id: "late", roles: [] }), "not_pending");
});

test("concurrent creates with one idempotency key store one request", async () => {
  const cache = yieldingCache();
  const manager = new ApprovalManager({ rules, cache });
  const answers = await Promise.all(
    Array.from({ length: 8 }, () => manager.create(change, alice, { idempotencyKey: "same" })),
  );
  assert.equal(new Set(answers.map((answer) => answer.id)).size, 1);
  assert.equal((await manager.list()).items.length, 1);
});

test("the default clock and ids are Date.now and crypto.randomUUID", async () => {
  const manager = new ApprovalManager({ rules, cache: new MemoryCache() });
  const before = Date.now();
  const created = await manager.create(change, alice);
  assert.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const createdAt = Date.parse(created.createdAt);
  assert.ok(createdAt >= before - 1 && createdAt <= Date.now() + 1);
});

test("a memory cache keeps TTLs on its clock and counts live values", async () => {
  const clock = manualClock();
  const cache = new MemoryCache({ clock });
  const manager = new ApprovalManager({ rules, cache, clock });
  await manager.create(change, alice, { idempotencyKey: "k" });
  // The request, the idempotency record, and the event log's head and event.
  assert.equal(cache.size, 4);
  clock.advance(24 * 3600 * 1000);
  assert.equal(cache.size, 3, "the idempotency record lapsed after 24 hours");
  clock.advance(6 * 24 * 3600 * 1000);
  assert.equal(cache.size, 2, "the event lapsed after 7 days");
});

test("managers over one MemoryCache share its store", async () => {
  const cache = new MemoryCache();
  const first = new ApprovalManager({ rules, cache });
  const second = new ApprovalManager({ rules, cache });
  const created = await first.create(change, alice);
  assert.equal((await second.get(created.id)).id, created.id);
});

test("validateChange, previewChange and validateRules are synchronous", () => {
  assert.deepEqual(validateChange(change), []);
  assert.deepEqual(validateChange(change, rules), []);
  const problems = validateChange({ ...change, title: "", extra: 1 });
  assert.deepEqual(
    problems.map(({ path, code }) => `${path}:${code}`),
    ["title:too_short", "extra:unknown_field"],
  );
  assert.ok(problems.every((item) => typeof item.message === "string"));
  const preview = previewChange({ ...change, policyType: "docs" }, rules);
  assert.equal(preview.valid, true);
  assert.equal(preview.level, "auto");
  assert.deepEqual(preview.explanation.matchedRules, [{ rule: "docs", level: "auto" }]);
  assert.equal(preview.explanation.decidingRule, "docs");
  const invalid = previewChange({}, rules);
  assert.equal(invalid.valid, false);
  assert.equal(invalid.level, null);
  assert.equal(invalid.explanation, null);
  assert.deepEqual(validateRules(rules), []);
  assert.deepEqual(
    validateRules({ levels: [], defaultLevel: "x" }).map(({ path, code }) => `${path}:${code}`),
    ["levels:too_short", "defaultLevel:unknown_level"],
  );
});

test("init and initSync may be called again", async () => {
  await init();
  initSync();
  assert.deepEqual(validateRules(rules), []);
});

test("answers are plain JSON data", async () => {
  const manager = new ApprovalManager({ rules, cache: new MemoryCache(), clock: () => T0 });
  const created = await manager.create(change, alice);
  assert.deepEqual(JSON.parse(JSON.stringify(created)), created);
  assert.equal(Object.getPrototypeOf(created), Object.prototype);
});

test("CompiledRules: rules validated once, accepted wherever rules are", async () => {
  const compiled = new CompiledRules(rules);
  assert.match(compiled.digest, /^[0-9a-f]{16,}$/);
  assert.deepEqual(previewChange(change, compiled), previewChange(change, rules));
  assert.deepEqual(validateChange({ ...change, title: "" }, compiled), validateChange({ ...change, title: "" }, rules));
  const manager = new ApprovalManager({ rules: compiled, cache: new MemoryCache() });
  assert.equal(manager.rulesDigest, compiled.digest);
  assert.equal((await manager.create(change, alice)).rulesDigest, compiled.digest);
  assert.deepEqual(JSON.parse(JSON.stringify(compiled)).defaultLevel, "peer");
  assert.deepEqual(validateRules(JSON.parse(JSON.stringify(compiled))), []);
  const error = throws(() => new CompiledRules({ levels: [], defaultLevel: "none" }), "invalid_request");
  assert.equal(error.details.length, 2);
  compiled.free();
  assert.equal(previewChange(change, rules).level, "peer");
});

test("a manager keeps using a freed MemoryCache's store and clock", async () => {
  const clock = manualClock();
  const cache = new MemoryCache({ clock });
  const manager = new ApprovalManager({ rules, cache, clock });
  cache.free();
  const first = await manager.create(change, alice, { idempotencyKey: "k" });
  assert.equal((await manager.create(change, alice, { idempotencyKey: "k" })).id, first.id);
  clock.advance(24 * 3600 * 1000);
  assert.notEqual((await manager.create(change, alice, { idempotencyKey: "k" })).id, first.id, "the record lapsed on the given clock");
});
