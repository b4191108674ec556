// `verifyHistory`: the audit chain of a request's history, judged by the
// core, for a request as the manager answers it and after any edit of what
// was stored.
import { test } from "node:test";
import assert from "node:assert/strict";

import init, { ApprovalManager, MemoryCache, verifyHistory } from "signoff";
import { alice, bob, change, manualClock, rules, sequentialIds } from "./helpers.mjs";

await init();

async function approvedAndCommented() {
  const clock = manualClock();
  const manager = new ApprovalManager({ rules, cache: new MemoryCache({ clock }), clock, ids: sequentialIds() });
  const filed = await manager.create(change, alice);
  await manager.comment(filed.id, bob, { text: "looks right" });
  return manager.approve(filed.id, bob);
}

test("a request's history as the manager answers it is verified", async () => {
  const request = await approvedAndCommented();
  const verification = verifyHistory(request);
  assert.deepEqual(verification, { verified: true, held: request.history.length });
  assert.ok(request.history.length >= 3);
});

test("an edited, removed or moved entry is the first one that does not hold", async () => {
  const request = await approvedAndCommented();
  const edited = structuredClone(request);
  edited.history[1].actor = "mallory";
  const judged = verifyHistory(edited);
  assert.equal(judged.verified, false);
  assert.equal(judged.held, 1);
  assert.equal(judged.broken.index, 1);
  assert.match(judged.broken.reason, /hash/);

  const removed = structuredClone(request);
  removed.history.splice(1, 1);
  assert.equal(verifyHistory(removed).broken.index, 1);

  const moved = { ...structuredClone(request), id: "another-id" };
  assert.equal(verifyHistory(moved).broken.index, 0);

  const noHistory = structuredClone(request);
  delete noHistory.history;
  assert.deepEqual(verifyHistory(noHistory), { verified: false, held: 0, broken: { index: 0, reason: "the request has no `history`" } });
});

test("a value that is not JSON data is an invalid_request", () => {
  assert.throws(() => verifyHistory({ id: "x", history: [() => 1] }), (error) => error.code === "invalid_request");
});
