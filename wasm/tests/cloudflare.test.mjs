// The Cloudflare Workers example (wasm/examples/cloudflare/) in workerd,
// through miniflare: initialisation from an imported module, the whole
// lifecycle over the Durable Object's storage, 64 concurrent approvals, the
// listing guarantees, and the cache conformance check run inside workerd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { startWorker } from "./workerd.mjs";

const entry = (name) => new URL(`./workerd/${name}`, import.meta.url).pathname;
const BASE = "https://signoff.workers.example";

describe("init in workerd, the .wasm imported as a module", () => {
  for (const path of ["/init-sync", "/init-async"]) {
    test(`${path}: not_initialized before, working after`, async () => {
      const worker = await startWorker(entry("init-entry.mjs"));
      try {
        const response = await worker.mf.dispatchFetch(BASE + path);
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { before: "not_initialized", problems: [], isModule: true });
      } finally {
        await worker.dispose();
      }
    });
  }
});

test("init() with no argument fails in workerd with a SignoffError saying what to do", async () => {
  const worker = await startWorker(entry("init-entry.mjs"));
  try {
    const answer = await (await worker.mf.dispatchFetch(`${BASE}/init-default`)).json();
    assert.equal(answer.before, "not_initialized");
    assert.match(answer.failed, /^not_initialized: .*initSync\(\{ module \}\)/);
    assert.equal(answer.after, "not_initialized");
  } finally {
    await worker.dispose();
  }
});

/** 64 approvers for the `quorum` level, plus the demo principals. */
const PRINCIPALS = {
  "alice-token": { id: "alice", roles: ["engineer"] },
  "bob-token": { id: "bob", roles: ["engineer"] },
  "carol-token": { id: "carol", roles: ["security"] },
  ...Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`approver-${i}`, { id: `approver-${i}`, roles: [] }])),
};

const change = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  environment: "prod",
  title: "Add bob to admins",
  justification: "Bob joins the on-call rotation.",
};

describe("the Worker and its Durable Object cache", () => {
  let worker;
  before(async () => {
    worker = await startWorker(entry("cloudflare-entry.mjs"), {
      durableObjects: { SIGNOFF_CACHE: "SignoffCache" },
      bindings: { PRINCIPALS: JSON.stringify(PRINCIPALS) },
    });
  });
  after(async () => {
    await worker.dispose();
  });

  async function call(method, path, { token, body, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (token) init.headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
    const response = await worker.mf.dispatchFetch(BASE + path, init);
    return { status: response.status, body: await response.json(), headers: response.headers };
  }
  const advance = async (millis) => (await worker.mf.dispatchFetch(`${BASE}/__test/clock`, { method: "POST", body: String(millis) })).text();

  test("the lifecycle: create, list, get, approve through two stages, reject, cancel, comment", async () => {
    const preview = await call("POST", "/v1/preview", { token: "bob-token", body: change });
    assert.deepEqual([preview.status, preview.body.level], [200, "security"]);

    const created = await call("POST", "/v1/requests", { token: "alice-token", body: change });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("location"), `/v1/requests/${created.body.id}`);
    assert.deepEqual([created.body.status, created.body.level, created.body.stage], ["pending", "security", "peer"]);
    const id = created.body.id;
    assert.deepEqual((await call("GET", `/v1/requests/${id}`, { token: "bob-token" })).body, created.body);

    const self = await call("POST", `/v1/requests/${id}/approve`, { token: "alice-token" });
    assert.deepEqual([self.status, self.body.error.code], [403, "self_approval"]);
    const notEligible = await call("POST", `/v1/requests/${id}/approve`, { token: "carol-token" });
    assert.deepEqual([notEligible.status, notEligible.body.error.code], [403, "not_eligible"]);
    const peer = await call("POST", `/v1/requests/${id}/approve`, { token: "bob-token", body: { comment: "ok" } });
    assert.deepEqual([peer.status, peer.body.stage], [200, "security"]);
    const again = await call("POST", `/v1/requests/${id}/approve`, { token: "bob-token" });
    assert.deepEqual([again.status, again.body.error.code], [409, "already_approved"]);
    const security = await call("POST", `/v1/requests/${id}/approve`, { token: "carol-token" });
    assert.deepEqual([security.status, security.body.status], [200, "approved"]);
    const approved = await call("GET", "/v1/requests?status=approved&policyType=iam", { token: "bob-token" });
    assert.ok(approved.body.items.some((item) => item.id === id));

    const toReject = (await call("POST", "/v1/requests", { token: "alice-token", body: { ...change, title: "Reject me" } })).body;
    const rejected = await call("POST", `/v1/requests/${toReject.id}/reject`, { token: "bob-token", body: { reason: "needs a ticket" } });
    assert.deepEqual([rejected.status, rejected.body.status, rejected.body.rejection.reason], [200, "rejected", "needs a ticket"]);
    const late = await call("POST", `/v1/requests/${toReject.id}/approve`, { token: "bob-token" });
    assert.deepEqual([late.status, late.body.error.code], [409, "not_pending"]);

    const toCancel = (await call("POST", "/v1/requests", { token: "alice-token", body: { ...change, title: "Cancel me" } })).body;
    const forbidden = await call("POST", `/v1/requests/${toCancel.id}/cancel`, { token: "bob-token" });
    assert.deepEqual([forbidden.status, forbidden.body.error.code], [403, "forbidden"]);
    const cancelled = await call("POST", `/v1/requests/${toCancel.id}/cancel`, { token: "alice-token" });
    assert.deepEqual([cancelled.status, cancelled.body.status], [200, "cancelled"]);
    const commented = await call("POST", `/v1/requests/${toCancel.id}/comments`, { token: "bob-token", body: { text: "noted" } });
    assert.equal(commented.status, 200);
    assert.equal(commented.body.history.at(-1).action, "comment");
    assert.equal(commented.body.version, cancelled.body.version + 1);

    const docs = await call("POST", "/v1/requests", { token: "alice-token", body: { ...change, policyType: "docs", environment: null } });
    assert.deepEqual([docs.status, docs.body.status], [201, "approved"]);
    const unknown = await call("GET", "/v1/requests/00000000-0000-4000-8000-0000000000ff", { token: "bob-token" });
    assert.deepEqual([unknown.status, unknown.body.error.code], [404, "not_found"]);
    const anonymous = await call("GET", "/v1/requests");
    assert.equal(anonymous.status, 401);
  });

  test("an Idempotency-Key replays the first request and refuses another change", async () => {
    const headers = { "idempotency-key": "cf-retry-1" };
    const first = await call("POST", "/v1/requests", { token: "bob-token", body: change, headers });
    const replay = await call("POST", "/v1/requests", { token: "bob-token", body: change, headers });
    assert.deepEqual([replay.status, replay.body], [201, first.body]);
    const other = await call("POST", "/v1/requests", { token: "bob-token", body: { ...change, title: "Other" }, headers });
    assert.deepEqual([other.status, other.body.error.code], [409, "conflict"]);
  });

  test("the Cron Trigger expires requests past their TTL", async () => {
    const created = (await call("POST", "/v1/requests", { token: "alice-token", body: { ...change, title: "Expire me" } })).body;
    await advance(86_400_000 + 1000);
    await (await worker.mf.getWorker()).scheduled({ cron: "*/5 * * * *" });
    const expired = await call("GET", "/v1/requests?status=expired&limit=500", { token: "bob-token" });
    assert.ok(expired.body.items.some((item) => item.id === created.id), "the request is listed as expired");
    const pending = await call("GET", "/v1/requests?limit=500", { token: "bob-token" });
    assert.deepEqual(pending.body.items, [], "nothing older than the TTL is pending");
  });

  test("64 concurrent approvals of one request are each counted exactly once", async () => {
    const created = (await call("POST", "/v1/requests", { token: "alice-token", body: { ...change, policyType: "org" } })).body;
    assert.equal(created.level, "quorum");
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) => call("POST", `/v1/requests/${created.id}/approve`, { token: `approver-${i}` })),
    );
    assert.deepEqual(answers.map((answer) => answer.status), Array(64).fill(200), JSON.stringify(answers.find((a) => a.status !== 200)?.body));
    const stored = (await call("GET", `/v1/requests/${created.id}`, { token: "bob-token" })).body;
    assert.equal(stored.status, "approved");
    assert.equal(stored.approvals.length, 64);
    assert.deepEqual(
      stored.approvals.map((approval) => approval.by).sort(),
      Array.from({ length: 64 }, (_, i) => `approver-${i}`).sort(),
    );
    // Exactly one approval completed the stage: the others found it pending.
    assert.equal(answers.filter((answer) => answer.body.status === "approved").length, 1);
  });

  test("a listing traversal returns no item twice, every item that stayed, in order", async () => {
    const PRIORITY = { urgent: 0, high: 1, normal: 2, low: 3 };
    const priorities = Object.keys(PRIORITY);
    const policyType = "firewall";
    const make = async (i) =>
      (
        await call("POST", "/v1/requests", {
          token: i % 2 ? "alice-token" : "bob-token",
          body: { ...change, policyType, environment: "dev", title: `Rule ${i}`, priority: priorities[i % 4] },
        })
      ).body;
    const initial = [];
    for (let i = 0; i < 24; i++) {
      initial.push(await make(i));
      await advance(i % 3 === 0 ? 0 : 1000); // some share a createdAt: the id breaks the tie
    }
    const seen = [];
    const leaving = new Set();
    let cursor;
    let page = 0;
    do {
      const query = `/v1/requests?policyType=${policyType}&limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const answer = await call("GET", query, { token: "carol-token" });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      seen.push(...answer.body.items);
      cursor = answer.body.nextCursor;
      // Between pages, the list changes: one item leaves, one arrives.
      const leaver = initial[(page * 7 + 3) % initial.length];
      if (!leaving.has(leaver.id)) {
        leaving.add(leaver.id);
        const approver = leaver.requestedBy === "alice" ? "bob-token" : "alice-token";
        assert.equal((await call("POST", `/v1/requests/${leaver.id}/approve`, { token: approver })).status, 200);
      }
      await make(100 + page);
      page += 1;
    } while (cursor);

    const ids = seen.map((item) => item.id);
    assert.equal(new Set(ids).size, ids.length, "no item twice");
    const stayed = initial.filter((item) => !leaving.has(item.id)).map((item) => item.id);
    for (const id of stayed) assert.ok(ids.includes(id), `${id} stayed pending and was returned`);
    const key = (item) => [PRIORITY[item.change.priority], item.createdAt, item.id];
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [key(seen[i - 1]), key(seen[i])];
      const ordered = a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])));
      assert.ok(ordered, `${JSON.stringify(a)} comes before ${JSON.stringify(b)}`);
    }
  });

  test("the Durable Object cache passes the package's cache conformance check", async () => {
    const response = await worker.mf.dispatchFetch(`${BASE}/__test/conformance`);
    const report = await response.json();
    assert.ok(report.ok, JSON.stringify(report.checks.filter((item) => !item.ok)));
    assert.ok(report.checks.length >= 8);
  });
});
