// The edge-function example (wasm/examples/edge/) called with real Request
// objects, as an edge runtime would call it.
import { test } from "node:test";
import assert from "node:assert/strict";

import worker, { createHandler } from "../examples/edge/worker.mjs";
import { KvStore } from "../examples/edge/kv.mjs";
import { manualClock, sequentialIds } from "./helpers.mjs";

const BASE = "https://signoff.edge.example";

const change = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  environment: "prod",
  title: "Add bob to admins",
  justification: "Bob joins the on-call rotation.",
};

function call(fetch, method, path, { token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] ??= "application/json";
  }
  return fetch(new Request(BASE + path, init));
}

async function answer(response) {
  assert.ok(response instanceof Response);
  assert.match(response.headers.get("content-type"), /^application\/json/);
  return { status: response.status, body: await response.json(), headers: response.headers };
}

function setup() {
  const clock = manualClock();
  const store = new KvStore({ clock });
  return { clock, store, fetch: createHandler({ store, clock, ids: sequentialIds() }) };
}

test("the default export is a fetch handler", async () => {
  const { status, body } = await answer(await call(worker.fetch, "POST", "/v1/preview", { token: "alice-token", body: change }));
  assert.equal(status, 200);
  assert.equal(body.level, "security");
});

test("POST /v1/preview validates and decides without storing", async () => {
  const { fetch, store } = setup();
  const valid = await answer(await call(fetch, "POST", "/v1/preview", { token: "bob-token", body: change }));
  assert.equal(valid.status, 200);
  assert.deepEqual(
    { valid: valid.body.valid, level: valid.body.level, decidingRule: valid.body.explanation.decidingRule },
    { valid: true, level: "security", decidingRule: "production" },
  );
  const invalid = await answer(await call(fetch, "POST", "/v1/preview", { token: "bob-token", body: { ...change, title: "" } }));
  assert.equal(invalid.status, 200);
  assert.equal(invalid.body.valid, false);
  assert.deepEqual(invalid.body.errors.map((item) => item.path), ["title"]);
  assert.equal(invalid.body.level, null);
  assert.deepEqual(await store.list({ prefix: "", limit: 10 }), []);
});

test("POST /v1/requests, GET /v1/requests and approve through both stages", async () => {
  const { fetch, clock } = setup();
  const created = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: change }));
  assert.equal(created.status, 201);
  assert.equal(created.body.id, "00000000-0000-4000-8000-000000000001");
  assert.equal(created.body.stage, "peer");
  assert.equal(created.body.requestedBy, "alice");
  clock.advance(1000);
  await call(fetch, "POST", "/v1/requests", { token: "bob-token", body: { ...change, environment: "dev" } });

  const listed = await answer(await call(fetch, "GET", "/v1/requests?limit=1", { token: "carol-token" }));
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.items.map((item) => item.id), [created.body.id]);
  assert.equal(typeof listed.body.nextCursor, "string");
  const next = await answer(
    await call(fetch, "GET", `/v1/requests?limit=1&cursor=${encodeURIComponent(listed.body.nextCursor)}`, { token: "carol-token" }),
  );
  assert.deepEqual(next.body.items.map((item) => item.requestedBy), ["bob"]);
  assert.equal(next.body.nextCursor, null);

  const path = `/v1/requests/${created.body.id}/approve`;
  const self = await answer(await call(fetch, "POST", path, { token: "alice-token" }));
  assert.deepEqual([self.status, self.body.error.code], [403, "self_approval"]);
  const peer = await answer(await call(fetch, "POST", path, { token: "bob-token", body: { comment: "ok" } }));
  assert.deepEqual([peer.status, peer.body.stage, peer.body.approvals[0].comment], [200, "security", "ok"]);
  const again = await answer(await call(fetch, "POST", path, { token: "bob-token" }));
  assert.deepEqual([again.status, again.body.error.code], [409, "already_approved"]);
  const security = await answer(await call(fetch, "POST", path, { token: "carol-token" }));
  assert.deepEqual([security.status, security.body.status], [200, "approved"]);
  const approved = await answer(await call(fetch, "GET", "/v1/requests?status=approved", { token: "alice-token" }));
  assert.deepEqual(approved.body.items.map((item) => item.id), [created.body.id]);
});

test("Idempotency-Key replays the first answer and refuses another body", async () => {
  const { fetch } = setup();
  const headers = { "idempotency-key": "retry-1" };
  const first = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: change, headers }));
  const replay = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: change, headers }));
  assert.equal(replay.status, 201);
  assert.deepEqual(replay.body, first.body);
  const other = await answer(
    await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: { ...change, title: "Other" }, headers }),
  );
  assert.deepEqual([other.status, other.body.error.code], [409, "conflict"]);
});

test("errors carry the code, the status and the details", async () => {
  const { fetch } = setup();
  const anonymous = await answer(await call(fetch, "POST", "/v1/requests", { body: change }));
  assert.deepEqual([anonymous.status, anonymous.body.error.code], [401, "unauthenticated"]);
  const wrongToken = await answer(await call(fetch, "GET", "/v1/requests", { token: "mallory" }));
  assert.equal(wrongToken.status, 401);
  const invalid = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: { ...change, riskScore: 300 } }));
  assert.equal(invalid.status, 400);
  assert.deepEqual(invalid.body.error.details.map(({ path, code }) => ({ path, code })), [{ path: "riskScore", code: "out_of_range" }]);
  const notJson = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: "{nope" }));
  assert.deepEqual([notJson.status, notJson.body.error.code], [400, "invalid_request"]);
  const text = await answer(
    await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: "{}", headers: { "content-type": "text/plain" } }),
  );
  assert.equal(text.status, 415);
  const unknown = await answer(await call(fetch, "POST", "/v1/requests/00000000-0000-4000-8000-0000000000aa/approve", { token: "bob-token" }));
  assert.deepEqual([unknown.status, unknown.body.error.code], [404, "not_found"]);
  const badEscape = await answer(await call(fetch, "POST", "/v1/requests/%E0%A4%A/approve", { token: "bob-token" }));
  assert.equal(badEscape.status, 404);
  const route = await answer(await call(fetch, "GET", "/v1/nothing", { token: "bob-token" }));
  assert.equal(route.status, 404);
  const method = await answer(await call(fetch, "DELETE", "/v1/requests", { token: "bob-token" }));
  assert.equal(method.status, 405);
  const badQuery = await answer(await call(fetch, "GET", "/v1/requests?limit=9999", { token: "bob-token" }));
  assert.deepEqual([badQuery.status, badQuery.body.error.details[0].path], [400, "limit"]);
});

test("rate_limited is 429 with Retry-After", async () => {
  const { fetch } = setup();
  for (let i = 0; i < 30; i++) {
    assert.equal((await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: change })).status, 201);
  }
  const limited = await answer(await call(fetch, "POST", "/v1/requests", { token: "alice-token", body: change }));
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "2");
  assert.deepEqual(limited.body.error.details, { retryAfterSeconds: 2 });
});
