// The decisions an editor asks the engine for before anyone acts: what a
// principal may do to a request (`allowedActions`), whether it may replace
// the rules (`mayReplaceRules`), whether a principal is valid
// (`validatePrincipal`), and the rules replacement itself (`replaceRules`,
// `storedRules`), all answered by the core.
import { test } from "node:test";
import assert from "node:assert/strict";

import init, {
  ApprovalManager,
  MemoryCache,
  SignoffError,
  allowedActions,
  mayReplaceRules,
  validatePrincipal,
} from "signoff";
import { MapCache, T0, alice, bob, change, manualClock, rejects, rules, sequentialIds, throws } from "./helpers.mjs";


await init();

const admin = { id: "root", roles: ["admin"] };

function manager(cache = new MemoryCache()) {
  const clock = manualClock();
  return { clock, manager: new ApprovalManager({ rules, cache, clock, ids: sequentialIds() }) };
}

test("allowedActions judges a request as its actions would", async () => {
  const { manager: m } = manager();
  const request = await m.create(change, alice);
  const mine = allowedActions(request, alice, T0 + 1);
  assert.equal(mine.approve.code, "self_approval");
  assert.equal(mine.cancel, null);
  assert.equal(mine.comment, null);
  const theirs = allowedActions(request, bob, T0 + 1);
  assert.deepEqual([theirs.approve, theirs.reject, theirs.comment], [null, null, null]);
  assert.equal(theirs.cancel.code, "forbidden");
  assert.match(theirs.cancel.reason, /requester/);
  // Past its expiry a stale copy is judged as the clock sees it.
  const late = allowedActions(request, bob, T0 + 3_600_000);
  assert.equal(late.approve.code, "expired");
  // The manager's own method reads the stored request.
  const stored = await m.allowedActions(request.id, bob);
  assert.deepEqual(stored, theirs);
  await rejects(() => m.allowedActions("00000000-0000-4000-8000-0000000000ff", bob), "not_found");
});

test("allowedActions refuses what is not a request or a principal", () => {
  throws(() => allowedActions({ id: "x" }, bob), "invalid_request");
  throws(() => allowedActions(null, bob), "invalid_request");
});

test("principals are checked by the core, `system` included", () => {
  assert.deepEqual(validatePrincipal(alice), []);
  assert.deepEqual(
    validatePrincipal({ id: "system" }).map((item) => [item.path, item.code]),
    [["principal.id", "not_allowed"]],
  );
  assert.deepEqual(
    validatePrincipal({ id: "a\u202eb", roles: ["x", "x"] }).map((item) => [item.path, item.code]),
    [["principal.id", "forbidden_character"], ["principal.roles[1]", "duplicate"]],
  );
});

test("acting as `system` is refused before anything else", async () => {
  const { manager: m } = manager();
  const error = await m.create(change, { id: "system", roles: [] }).then(
    () => assert.fail("created"),
    (thrown) => thrown,
  );
  assert.ok(error instanceof SignoffError);
  assert.equal(error.code, "invalid_request");
  assert.equal(error.details[0].path, "principal.id");
});

test("mayReplaceRules asks for the admin role", () => {
  assert.equal(mayReplaceRules(admin), null);
  const refusal = mayReplaceRules(bob);
  assert.equal(refusal.code, "forbidden");
  assert.match(refusal.reason, /admin/);
});

test("replaceRules stores the rules, guards them with their digest, and decides with them", async () => {
  const cache = new MapCache();
  const { manager: m } = manager(cache);
  const first = m.rulesDigest;
  await rejects(() => m.replaceRules(rules, bob), "forbidden");
  await rejects(() => m.replaceRules(rules, admin, { ifMatch: '"stale"' }), "precondition_failed");
  await rejects(() => m.replaceRules({ levels: [] }, admin, { ifMatch: "*" }), "invalid_request");
  assert.equal(await m.storedRules(), null);

  const stricter = structuredClone(rules);
  stricter.defaultLevel = "crowd";
  const replaced = await m.replaceRules(stricter, admin, { ifMatch: `"${first}"` });
  assert.notEqual(replaced.digest, first);
  assert.equal(replaced.rules.defaultLevel, "crowd");
  assert.equal(m.rulesDigest, replaced.digest);
  const filed = await m.create({ ...change, policyType: "iam" }, alice);
  assert.equal(filed.level, "crowd");
  assert.equal(filed.rulesDigest, replaced.digest);

  // Another manager over the same cache finds them, and the old digest no
  // longer matches.
  const { manager: other } = manager(cache);
  assert.deepEqual(await other.storedRules(), replaced);
  await rejects(() => other.replaceRules(rules, admin, { ifMatch: first }), "precondition_failed");
  await rejects(() => m.replaceRules(rules, admin, { ifMatch: 3 }), "invalid_request");
});
