// Browser tests of the policy editor against the real signoff server
// (`signoff serve --dev`, its demo rules and principals from host/demo/) and,
// for local mode, against the editor served as plain files with no server.
// Screenshots of every step land in www/test-results/.

import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { RESULTS, launchBrowser, openPage, screenshot, startServer, startStaticServer } from "./harness.js";

let server;
let browser;

// ----- waiting on settled states ---------------------------------------------
//
// The editor marks the end of every load and action on a fixed element:
// `data-state` says how it ended and `data-seq` counts the endings (see
// www/README.md, "Settled states"). A test reads the count, acts, then waits
// for a higher count: it never reads a page that has not settled, nor the
// result of an earlier action that happens to look the same.

async function seqOf(page, selector) {
  return page.evaluate((selector) => Number(document.querySelector(selector)?.dataset.seq ?? 0), selector);
}

/**
 * Runs `action`, waits until `selector` settles after it, and returns the
 * state it settled in; fails when that is not one of `states`.
 */
async function settled(page, selector, action, states) {
  const before = await seqOf(page, selector);
  await action();
  const handle = await page.waitForFunction(([selector, before]) => {
    const element = document.querySelector(selector);
    if (!element || element.hasAttribute("aria-busy") || Number(element.dataset.seq ?? 0) <= before) return false;
    return element.dataset.state;
  }, [selector, before]);
  const state = await handle.jsonValue();
  if (states) assert.ok(states.includes(state), `${selector} settled as ${state}, not ${states.join(" or ")}`);
  return state;
}

/** The `data-query` the queue shows once it loaded `query`. */
function queueKey({ status = "pending", policyType = "", q = "", emergencyReview = "", view = "summary", limit = 25, page = 1 } = {}) {
  return new URLSearchParams({ status, policyType, q, emergencyReview, view, limit: String(limit), page: String(page) }).toString();
}

/** Runs `action` (which loads the queue) and waits for the page of `query`. */
async function queueLoads(page, action, query) {
  await settled(page, "#queue-table", action, ["loaded"]);
  assert.equal(await page.getAttribute("#queue-table", "data-query"), queueKey(query));
}

async function signIn(page, principal, { navigate = true } = {}) {
  if (navigate) {
    await page.goto(`${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
  }
  // The token is all a person gives: the server says whose it is (GET /v1/me).
  await page.fill("#s-token", principal.token);
  await settled(page, "#signin-status", () => page.click("#signin-submit"), ["signed-in"]);
  assert.match(await page.locator("#signin-status").textContent(), new RegExp(`Signed in as ${principal.id}\\.`));
  assert.equal(await page.locator("#who-id").textContent(), principal.id);
}

async function fillValidChange(page, { policyId = "iam/admins", policyType = "iam", environment = "staging", riskScore = "20", title = "Grant the on-call group admin" } = {}) {
  await page.fill("#f-policyId", policyId);
  await page.fill("#f-policyType", policyType);
  await page.selectOption("#f-changeKind", "update");
  await page.fill("#f-environment", environment);
  await page.fill("#f-riskScore", riskScore);
  await page.fill("#f-title", title);
  await page.fill("#f-justification", "The on-call rotation needs to rotate credentials at night.");
}

/** Submits the change form and returns how the submission ended. */
async function submitChange(page, states = ["filed"]) {
  return settled(page, "#submit-status", () => page.click("#submit-change"), states);
}

/** The codes shown next to one field (its error list). */
async function fieldCodes(page, field) {
  return page.locator(`#e-${field} li`).evaluateAll((items) => items.map((item) => item.dataset.code));
}

/**
 * Waits until the preview shows `level`, decided by `decidingRule` (or by
 * the default level when it is null): level and reason together, so that a
 * preview left from the previous input never passes for the new one.
 */
async function expectLevel(page, level, decidingRule) {
  const shown = () => page.evaluate(() => ({
    level: document.getElementById("preview-level")?.textContent ?? null,
    deciding: document.querySelector("#preview-explanation li.deciding")?.dataset.rule ?? null,
    defaultUsed: document.querySelector("#preview-explanation .default-used") !== null,
  }));
  try {
    await page.waitForFunction(([level, decidingRule]) => {
      if (document.getElementById("preview-level")?.textContent !== level) return false;
      if (decidingRule === null) return document.querySelector("#preview-explanation .default-used") !== null;
      return document.querySelector("#preview-explanation li.deciding")?.dataset.rule === decidingRule;
    }, [level, decidingRule]);
  } catch (error) {
    throw new Error(`the preview never showed ${level} (${decidingRule ?? "default"}): it shows ${JSON.stringify(await shown())}`, { cause: error });
  }
}

/** Opens `#request/<id>` and waits until that request is on show. */
async function openRequest(page, id, base = server.url) {
  await settled(page, "#request-body", () => page.goto(`${base}/#request/${id}`), ["loaded"]);
  assert.equal(await page.getAttribute("#request-body", "data-id"), id);
}

/** Clicks an action button and waits until the request view shows the outcome. */
async function act(page, selector, states = ["acted"]) {
  return settled(page, "#request-body", () => page.click(selector), states);
}

/** Opens the rules view and waits until the rules in force are loaded. */
async function openRules(page, base = server.url) {
  await settled(page, "#view-rules", () => page.goto(`${base}/#rules`), ["loaded"]);
}

async function saveRules(page, states = ["saved"]) {
  return settled(page, "#rules-save-status", () => page.click("#rules-save"), states);
}

function assertClean(page) {
  assert.deepEqual(page.problems, [], "the page logged errors");
}

/** Calls the API as `principal`; returns `{ status, body, headers }`. */
async function api(principal, method, path, body, headers = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${principal.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

/** Files a change as `principal` through the API; returns the request. */
async function file(principal, change) {
  const { status, body } = await api(principal, "POST", "/v1/requests", {
    policyId: "config/cache",
    policyType: "config",
    changeKind: "update",
    title: "Raise the cache size",
    justification: "The cache evicts too often under the evening load.",
    ...change,
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** The rules in force and their digest, through the API. */
async function rulesInForce() {
  const { status, body, headers } = await api(server.principals.admin, "GET", "/v1/rules");
  assert.equal(status, 200);
  return { rules: body, digest: headers.get("ETag").replace(/"/g, "") };
}

/** Replaces the rules through the API, from the digest in force. */
async function putRules(rules) {
  const { digest } = await rulesInForce();
  const { status, body } = await api(server.principals.admin, "PUT", "/v1/rules", rules, { "If-Match": `"${digest}"` });
  assert.equal(status, 200, JSON.stringify(body));
}

/** Whether an API call is a load of the queue (not of the inbox, which lists `actionableBy=me`). */
function isQueueCall(call) {
  return call.method === "GET" && call.path === "/v1/requests" && !new URLSearchParams(call.search).has("actionableBy");
}

/** The ids of the pending requests `principal` may act on now, through the API. */
async function actionableIds(principal) {
  const { status, body } = await api(principal, "GET", "/v1/requests?status=pending&actionableBy=me&limit=500");
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.nextCursor, undefined);
  return body.items.map((request) => request.id);
}

/**
 * Holds the page's event stream unanswered, so that the page shows what it
 * last loaded while the test changes the request behind its back: the
 * moment before a live update arrives, made to last.
 */
async function holdLiveUpdates(page) {
  await page.route("**/v1/events/stream", () => {});
}

/** Waits until the inbox tab shows `count` (the count is `data-count`). */
async function expectInboxCount(page, count, options = {}) {
  await page.locator(`#inbox-count[data-count="${count}"]`).waitFor({ state: "attached", ...options });
}

/** Whether the page scrolls sideways (its content is wider than the window). */
async function scrollsSideways(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
}

// No raw regular expression, backtick or error code in a message people read.
const RAW = /`|\^\[|\{0,|\((invalid_request|not_pending|precondition_failed|unauthenticated|forbidden|not_found|invalid_format)\)/;

before(async () => {
  // Screenshots are numbered per run: start from an empty folder.
  await rm(RESULTS, { recursive: true, force: true });
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe("policy editor against the signoff server", () => {
  let requestId;

  it("renders quickly, with a label for every control and a visible focus ring", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    const timing = await page.evaluate(() => {
      const paint = performance.getEntriesByType("paint").find((entry) => entry.name === "first-contentful-paint");
      const ready = performance.getEntriesByName("signoff:ready")[0];
      const navigation = performance.getEntriesByType("navigation")[0];
      return {
        firstContentfulPaintMs: Math.round(paint?.startTime ?? -1),
        formReadyMs: Math.round(ready?.startTime ?? -1),
        domContentLoadedMs: Math.round(navigation.domContentLoadedEventEnd),
      };
    });
    await mkdir(RESULTS, { recursive: true });
    await writeFile(join(RESULTS, "first-render.json"), `${JSON.stringify(timing, null, 2)}\n`);
    console.log(`first render: ${JSON.stringify(timing)}`);
    assert.ok(timing.firstContentfulPaintMs > 0, "no first-contentful-paint entry");
    assert.ok(timing.formReadyMs >= timing.firstContentfulPaintMs - 1, "the ready mark is missing");
    assert.ok(timing.formReadyMs < 5000, `the form took ${timing.formReadyMs} ms to be ready`);

    const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button")]
      .filter((element) => element.offsetParent !== null || element.type === "radio")
      .filter((element) => !(element.labels?.length || element.getAttribute("aria-label") || (element.tagName === "BUTTON" && element.textContent.trim())))
      .map((element) => element.id || element.outerHTML));
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.locator('link[rel="icon"]').getAttribute("href"), "data:,");
    assert.equal(await page.locator("#validation-summary").getAttribute("aria-live"), "polite");

    // Keyboard: the first Tab reaches the skip link, then the controls, with a focus ring.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip-link");
    await page.focus("#f-policyId");
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const element = document.activeElement;
      const style = getComputedStyle(element);
      return { id: element.id, outline: style.outlineStyle, width: style.outlineWidth };
    });
    assert.equal(focused.id, "f-policyType");
    assert.equal(focused.outline, "solid");
    assert.equal(focused.width, "3px");
    await screenshot(page, "server-empty-form");
    assertClean(page);
    await page.close();
  });

  it("shows each problem of an invalid change next to its field", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.alice);
    await page.goto(`${server.url}/#new`);
    await page.fill("#f-policyType", "IAM");
    await page.fill("#f-justification", "short");
    await page.fill("#f-riskScore", "150");
    await page.fill("#f-environment", "Prod!");
    await page.click("#add-metadata");
    await page.fill(".meta-key", "bad key");
    await page.fill(".meta-value", "x");
    await page.locator("#e-riskScore li").waitFor();

    assert.deepEqual(await fieldCodes(page, "policyType"), ["invalid_format"]);
    assert.deepEqual(await fieldCodes(page, "justification"), ["too_short"]);
    assert.deepEqual(await fieldCodes(page, "riskScore"), ["out_of_range"]);
    assert.deepEqual(await fieldCodes(page, "environment"), ["invalid_format"]);
    assert.equal(await page.getAttribute("#f-justification", "aria-invalid"), "true");
    // The metadata problem sits in its own row.
    const rowCodes = await page.locator(".meta-row .field-error li").evaluateAll((items) => items.map((item) => item.dataset.path));
    assert.deepEqual(rowCodes, ["metadata.bad key"]);
    // Untouched required fields are listed in the summary, not yet at the field.
    assert.deepEqual(await fieldCodes(page, "title"), []);
    const summary = await page.locator("#validation-summary li").evaluateAll((items) => items.map((item) => item.dataset.path));
    assert.ok(summary.includes("title") && summary.includes("policyId") && summary.includes("changeKind"), summary.join());
    assert.match(await page.locator("#level-panel").textContent(), /once the change is valid/);
    await screenshot(page, "server-invalid-change");

    // Messages are words, not the pattern the engine checks.
    assert.match(await page.locator("#e-policyType").textContent(), /lowercase letters, digits/);
    assert.doesNotMatch(await page.locator("#change-form").textContent(), RAW);
    assert.doesNotMatch(await page.locator("#validation-summary").textContent(), RAW);

    // Submitting shows every problem at its field and sends nothing.
    await submitChange(page, ["invalid"]);
    assert.deepEqual(await fieldCodes(page, "title"), ["required"]);
    assert.match(await page.locator("#submit-status").textContent(), /problems/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "f-policyId");
    await screenshot(page, "server-invalid-submitted");
    assertClean(page);
    await page.close();
  });

  it("shows the level and why, following riskScore and environment as they change, then files the request", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.alice);
    await page.goto(`${server.url}/#new`);
    await fillValidChange(page);
    await page.click("#add-metadata");
    await page.fill(".meta-key", "ticket");
    await page.fill(".meta-value", "OPS-1234");

    await expectLevel(page, "peer", null);
    assert.match(await page.locator("#validation-summary").textContent(), /^Valid/);
    assert.match(await page.locator("#level-panel").textContent(), /peer-review — 1 approval from the role engineer/);
    await screenshot(page, "server-level-default");

    await page.fill("#f-environment", "prod");
    await expectLevel(page, "security", "iam-in-prod");
    assert.match(await page.locator("#level-panel").textContent(), /security-review.*lead-signoff/s);
    await screenshot(page, "server-level-prod");

    await page.fill("#f-environment", "staging");
    await expectLevel(page, "peer", null);
    await page.fill("#f-riskScore", "85");
    await expectLevel(page, "security", "high-risk");
    await page.fill("#f-environment", "prod");
    await expectLevel(page, "security", "iam-in-prod");
    const matched = await page.locator("#preview-explanation li").evaluateAll((items) => items.map((item) => item.dataset.rule));
    assert.deepEqual(matched, ["iam-in-prod", "high-risk"]);
    await screenshot(page, "server-level-two-rules");

    await submitChange(page);
    const link = page.locator("#created-link");
    assert.match(await page.locator("#submit-status").textContent(), /level security, status pending/);
    requestId = await link.getAttribute("data-id");
    await settled(page, "#request-body", () => link.click(), ["loaded"]);
    assert.equal(await page.locator("#request-level").textContent(), "security");
    assert.equal(await page.locator("#requested-by").textContent(), "alice");
    assert.equal(await page.locator("#request-stage").textContent(), "security-review");
    assert.match(await page.locator("#countdown").textContent(), /^expires in 2 d 23:59:\d\d$/);

    // The requester may not approve or reject, and says why; cancel is theirs.
    assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), "true");
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "self_approval");
    assert.equal(await page.getAttribute("#approve-button", "aria-describedby"), "approve-reason");
    assert.match(await page.locator("#approve-reason").textContent(), /You filed this request/);
    assert.equal(await page.getAttribute("#reject-button", "data-blocked"), "self_approval");
    assert.equal(await page.getAttribute("#cancel-button", "aria-disabled"), null);
    await screenshot(page, "server-request-as-requester");

    // Clicking a disabled button sends nothing, and says why again.
    await settled(page, "#respond-status", () => page.click("#approve-button", { force: true }), ["blocked"]);
    assert.match(await page.locator("#respond-status").textContent(), /^Not sent: You filed this request/);
    assert.deepEqual(page.apiCalls.filter((call) => call.path.endsWith("/approve")), []);
    assert.equal(await page.locator("#request-stage").textContent(), "security-review");
    assertClean(page);
    await page.close();
  });

  it("lets the approvers approve stage by stage, each button explaining who may act", async () => {
    assert.ok(requestId, "the previous test filed no request");
    const page = await openPage(browser.context, `${server.url}/`);

    // bob is an engineer: not eligible for the security review, cannot cancel.
    await signIn(page, server.principals.bob);
    await openRequest(page, requestId);
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_eligible");
    assert.match(await page.locator("#approve-reason").textContent(), /needs one of the roles security; you hold engineer/);
    assert.equal(await page.getAttribute("#cancel-button", "data-blocked"), "forbidden");
    assert.equal(await page.getAttribute("#comment-button", "aria-disabled"), null);
    await page.fill("#respond-text", "Looks fine from the engineering side.");
    await act(page, "#comment-button");
    await page.locator('#history li[data-action="comment"]').waitFor();
    await screenshot(page, "server-request-as-bob");

    // carol (security) approves the first stage.
    await signIn(page, server.principals.carol);
    await openRequest(page, requestId);
    assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
    await page.fill("#respond-text", "Scoped correctly.");
    await act(page, "#approve-button");
    assert.equal(await page.locator("#request-stage").textContent(), "lead-signoff");
    assert.match(await page.locator("#request-announcement").textContent(), /stage lead-signoff/);
    assert.equal(await page.getAttribute('#stages li[data-stage="security-review"]', "data-state"), "passed");
    assert.match(await page.locator('#stages li[data-stage="security-review"]').textContent(), /carol approved/);
    // Having approved, carol may neither approve nor reject again.
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "already_approved");
    assert.equal(await page.getAttribute("#reject-button", "data-blocked"), "already_approved");
    await screenshot(page, "server-request-after-carol");

    // dave (security-lead) signs off: approved.
    await signIn(page, server.principals.dave);
    await openRequest(page, requestId);
    await act(page, "#approve-button");
    assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
    assert.equal(await page.locator("#countdown").count(), 0);
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_pending");
    assert.equal(await page.getAttribute("#cancel-button", "data-blocked"), "not_pending");
    const actions = await page.locator("#history li").evaluateAll((items) => items.map((item) => item.dataset.action));
    assert.deepEqual(actions, ["create", "comment", "approve", "approve"]);
    await screenshot(page, "server-request-approved");

    // The queue lists it among the approved requests.
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    await queueLoads(page, () => page.selectOption("#q-status", "approved"), { status: "approved" });
    assert.equal(await page.locator(`#queue-list tr[data-id="${requestId}"]`).count(), 1);
    await screenshot(page, "server-queue-approved");
    assertClean(page);
    await page.close();
  });

  it("pages through the queue with nextCursor and filters by policy type", async () => {
    const bob = server.principals.bob;
    const filed = [];
    for (let i = 0; i < 12; i += 1) {
      const response = await fetch(`${server.url}/v1/requests`, {
        method: "POST",
        headers: { Authorization: `Bearer ${bob.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({
          policyId: `net/fw-${i}`,
          policyType: i % 3 === 0 ? "network" : "config",
          changeKind: "update",
          title: `Firewall change ${i}`,
          justification: "Open the port the new service listens on.",
          priority: i === 5 ? "urgent" : "normal",
        }),
      });
      const text = await response.text();
      assert.equal(response.status, 201, text);
      filed.push(JSON.parse(text).id);
    }
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.carol);
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    await queueLoads(page, () => page.selectOption("#q-limit", "10"), { limit: 10 });
    assert.match(await page.locator("#queue-list caption").textContent(), /page 1$/);
    const firstPage = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.equal(firstPage.length, 10);
    assert.equal(firstPage[0], filed[5], "the urgent request comes first");
    assert.equal(await page.isDisabled("#queue-next"), false);
    await screenshot(page, "server-queue-page-1");

    await queueLoads(page, () => page.click("#queue-next"), { limit: 10, page: 2 });
    assert.match(await page.locator("#queue-list caption").textContent(), /page 2$/);
    const secondPage = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.ok(secondPage.length >= 2);
    assert.equal(new Set([...firstPage, ...secondPage]).size, firstPage.length + secondPage.length, "a request came twice");
    for (const id of filed) assert.ok(firstPage.includes(id) || secondPage.includes(id), `${id} is missing`);
    assert.equal(await page.isDisabled("#queue-next"), true);
    await screenshot(page, "server-queue-page-2");

    await page.fill("#q-policyType", "network");
    const calls = page.apiCalls.length;
    await queueLoads(page, () => page.locator("#queue-filter button[type=submit]").click(), { policyType: "network", limit: 10 });
    // The field's change event and the click ask for the same page: one fetch.
    assert.equal(page.apiCalls.slice(calls).filter(isQueueCall).length, 1);
    assert.match(await page.locator("#queue-list caption").textContent(), /of type network/);
    const network = await page.locator("#queue-list tbody tr td:nth-child(3)").allTextContents();
    assert.deepEqual(network, ["network", "network", "network", "network"]);
    assertClean(page);
    await page.close();
  });

  it("validates a rules draft on every keystroke and saves it as admin with If-Match", async () => {
    const page = await openPage(browser.context, `${server.url}/`);

    // A non-admin sees the rules and may draft, but not save.
    await signIn(page, server.principals.alice);
    await openRules(page);
    const digest = await page.locator("#rules-digest").textContent();
    assert.match(digest, /^[0-9a-f]{64}$/);
    assert.equal(await page.getAttribute("#rules-save", "aria-disabled"), "true");
    assert.match(await page.locator("#rules-save-reason").textContent(), /needs the admin role; alice holds engineer/);

    // A second tab keeps alice's view of the old rules, for later.
    const stale = await openPage(browser.context, `${server.url}/#new`);

    await signIn(page, server.principals.admin);
    await openRules(page);
    assert.equal(await page.getAttribute("#rules-save", "aria-disabled"), null);
    const original = JSON.parse(await page.inputValue("#rules-text"));

    const broken = structuredClone(original);
    broken.defaultLevel = "nope";
    broken.levels[1].stages[0].requiredApprovals = 0;
    await page.fill("#rules-text", JSON.stringify(broken, null, 2));
    await page.locator("#rules-problem-list").waitFor();
    const problems = await page.locator("#rules-problem-list tbody tr").evaluateAll((rows) => rows.map((row) => `${row.dataset.path} ${row.dataset.code}`));
    assert.deepEqual(problems, ["levels[1].stages[0].requiredApprovals out_of_range", "defaultLevel unknown_level"]);
    assert.doesNotMatch(await page.locator("#rules-problem-list tbody").textContent(), /`/);
    await screenshot(page, "server-rules-invalid-draft");

    await page.fill("#rules-text", "{ not json");
    await page.locator('#rules-problem-list tr[data-code="invalid_type"]').waitFor();

    // Restrict the policy types: a valid document, saved with the digest it was based on.
    const restricted = { ...structuredClone(original), policyTypes: ["iam", "docs", "config", "network"] };
    await page.fill("#rules-text", JSON.stringify(restricted, null, 2));
    await page.locator("#rules-problems").filter({ hasText: "No problems" }).waitFor();
    await saveRules(page);
    const newDigest = await page.locator("#rules-digest").textContent();
    assert.notEqual(newDigest, digest);
    assert.match(await page.locator("#rules-in-force").textContent(), /allowed policy types: iam, docs, config, network/);
    await screenshot(page, "server-rules-saved");

    // Saving from the stale digest is refused with 412 and explained.
    await signIn(stale, server.principals.admin);
    await openRules(stale);
    assert.equal(await stale.locator("#rules-digest").textContent(), newDigest);
    const withDns = { ...structuredClone(original), policyTypes: ["iam", "docs", "config", "network", "dns"] };
    await page.fill("#rules-text", JSON.stringify(withDns, null, 2));
    await stale.fill("#rules-text", JSON.stringify(original, null, 2));
    await saveRules(page);
    await saveRules(stale, ["refused"]);
    assert.equal(await stale.getAttribute("#rules-save-status", "data-code"), "precondition_failed");
    assert.match(await stale.locator("#rules-save-status").textContent(), /^Not saved\. Someone changed the rules/);
    assert.doesNotMatch(await stale.locator("#rules-save-status").textContent(), RAW);
    // "Not saved" looks like an error.
    assert.equal(await stale.locator("#rules-save-status").evaluate((element) => getComputedStyle(element).backgroundColor), "rgb(253, 236, 234)");
    await screenshot(stale, "server-rules-conflict");

    // Revert fetches the rules in force (not the tab's stale copy), so the
    // next save goes through.
    await settled(stale, "#rules-save-status", () => stale.click("#rules-revert"), ["reverted"]);
    const reverted = JSON.parse(await stale.inputValue("#rules-text"));
    assert.deepEqual(reverted.policyTypes, withDns.policyTypes);
    const dnsDigest = await stale.locator("#rules-digest").textContent();
    assert.equal(await page.locator("#rules-digest").textContent(), dnsDigest);
    await stale.fill("#rules-text", JSON.stringify({ ...reverted, policyTypes: ["iam", "docs", "config", "network"] }, null, 2));
    await saveRules(stale);
    await screenshot(stale, "server-rules-saved-after-revert");

    // A form that holds the rules it previewed with, when the server's
    // rules change between its check and its filing: the server's refusal
    // shows at the field, and the page catches up with the new rules.
    const form = await openPage(browser.context, `${server.url}/`);
    await signIn(form, server.principals.alice);
    await form.goto(`${server.url}/#new`);
    await fillValidChange(form, { policyType: "network", title: "Open the metrics port" });
    await expectLevel(form, "peer", null);
    const formRules = await form.evaluate(() => fetch("/v1/rules", { headers: { Authorization: `Bearer ${JSON.parse(sessionStorage.getItem("signoff.session")).token}` } })
      .then(async (response) => ({ body: await response.text(), etag: response.headers.get("ETag") })));
    await settled(page, "#rules-save-status", () => page.click("#rules-revert"), ["reverted"]);
    await page.fill("#rules-text", JSON.stringify({ ...original, policyTypes: ["iam", "docs"] }, null, 2));
    await saveRules(page);
    // The form's check of the rules answers what it had: the change reaches the server.
    await form.route("**/v1/rules", (route) => route.fulfill({
      status: 200,
      headers: { "Content-Type": "application/json", ETag: formRules.etag },
      body: formRules.body,
    }), { times: 1 });
    await submitChange(form, ["refused"]);
    assert.equal(await form.getAttribute("#submit-status", "data-code"), "invalid_request");
    assert.deepEqual(await fieldCodes(form, "policyType"), ["not_allowed"]);
    assert.match(await form.locator("#submit-status").textContent(), /^The request was not filed\. 1 problem: Policy type: must be one of the rules' policy types: iam, docs\.$/);
    // The page caught up with the new rules: no stale level is left on show.
    await form.locator("#validation-summary").filter({ hasText: "1 problem" }).waitFor();
    assert.equal(await form.locator("#preview-level").count(), 0);
    assert.match(await form.locator("#policy-types").innerHTML(), /value="docs"/);
    await screenshot(form, "server-error-at-field");

    // Put the demo rules back.
    await settled(page, "#rules-save-status", () => page.click("#rules-revert"), ["reverted"]);
    await page.fill("#rules-text", JSON.stringify(original, null, 2));
    await saveRules(page);
    assert.equal(await page.locator("#rules-digest").textContent(), digest);
    for (const tab of [page, stale, form]) {
      assertClean(tab);
      await tab.close();
    }
  });

  it("shows what a rules draft would change before it is saved, and saves nothing", async () => {
    // A request the draft below would move from `peer` to `security`.
    const filed = {
      body: await file(server.principals.bob, {
        policyId: "iam/what-if", policyType: "iam", environment: "staging",
        title: "Let the what-if group read the logs", justification: "The draft of the rules should move this one up.",
      }),
    };
    assert.equal(filed.body.level, "peer");

    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.admin);
    await openRules(page);
    const digest = await page.locator("#rules-digest").textContent();
    const original = JSON.parse(await page.inputValue("#rules-text"));
    const draft = structuredClone(original);
    draft.rules.push({ name: "all-iam-is-security", when: { policyTypes: ["iam"] }, level: "security" });
    await page.fill("#rules-text", JSON.stringify(draft, null, 2));
    await settled(page, "#rules-impact", () => page.click("#rules-simulate"), ["simulated"]);
    const rows = await page.locator("#rules-impact-list tbody tr").evaluateAll((found) => found.map((row) => ({ id: row.dataset.id, newLevel: row.dataset.newLevel })));
    assert.ok(rows.some((row) => row.id === filed.body.id && row.newLevel === "security"), JSON.stringify(rows));
    assert.ok(rows.every((row) => row.newLevel === "security"), JSON.stringify(rows));
    const summary = page.locator("#rules-impact-summary");
    assert.equal(Number(await summary.getAttribute("data-changed")), rows.length);
    assert.ok(Number(await summary.getAttribute("data-examined")) >= rows.length);
    await screenshot(page, "server-rules-what-if");

    // An invalid draft is re-decided for nobody.
    await page.fill("#rules-text", "{ not json");
    await settled(page, "#rules-impact", () => page.click("#rules-simulate"), ["invalid"]);
    assert.equal(await page.locator("#rules-impact-list").count(), 0);

    // Nothing was saved: the rules in force and the request are unchanged.
    const inForce = await api(server.principals.admin, "GET", "/v1/rules");
    assert.equal(inForce.headers.get("etag"), `"${digest}"`);
    const still = await api(server.principals.alice, "GET", `/v1/requests/${filed.body.id}`);
    assert.equal(still.body.level, "peer");

    // Only an admin may see what a draft would change.
    await signIn(page, server.principals.alice);
    await openRules(page);
    await page.fill("#rules-text", JSON.stringify(draft, null, 2));
    await settled(page, "#rules-impact", () => page.click("#rules-simulate"), ["refused"]);
    assert.equal(await page.getAttribute("#rules-impact", "data-code"), "forbidden");
    assert.doesNotMatch(await page.locator("#rules-impact").textContent(), RAW);
    assertClean(page);
    await page.close();
  });

  it("refuses a bad token at sign-in and keeps the token in session storage only", async () => {
    const page = await openPage(browser.context, `${server.url}/#signin`);
    await page.fill("#s-token", "not-a-token");
    await settled(page, "#signin-status", () => page.click("#signin-submit"), ["refused"]);
    assert.match(await page.locator("#signin-status").textContent(), /refused this token/);
    assert.doesNotMatch(await page.locator("#signin-status").textContent(), RAW);
    // The refusal looks like an error.
    assert.equal(await page.locator("#signin-status").evaluate((element) => getComputedStyle(element).backgroundColor), "rgb(253, 236, 234)");
    assert.equal(await page.locator("#who-id").count(), 0);

    await signIn(page, server.principals.alice);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("signoff.session"),
      local: Object.keys(localStorage).map((key) => localStorage.getItem(key)).join(" "),
    }));
    assert.match(stored.session, /dev-alice/);
    assert.doesNotMatch(stored.local, /dev-alice/);
    await page.click("#header-signout");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("signoff.session")), null);
    assertClean(page);
    await page.close();
  });
});

describe("the editor as a review tool: bugs of the review", () => {
  const LONG = "x".repeat(200);
  let longRequest;

  it("keeps a 200-character word from widening the queue or the heading at 1920 px (bug 1)", async () => {
    longRequest = await file(server.principals.carol, { policyId: `config/${"p".repeat(240)}`, title: LONG, priority: "urgent" });
    const page = await openPage(browser.context, `${server.url}/`);
    await page.setViewportSize({ width: 1920, height: 1000 });
    await signIn(page, server.principals.bob);
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    const row = page.locator(`#queue-list tr[data-id="${longRequest.id}"]`);
    assert.equal(await row.count(), 1);
    const widths = await page.evaluate(() => ({
      main: document.querySelector("main").clientWidth,
      table: document.getElementById("queue-list").getBoundingClientRect().width,
      page: document.documentElement.scrollWidth,
      window: document.documentElement.clientWidth,
    }));
    assert.ok(widths.table <= widths.main, `the queue is ${widths.table} px wide in a main of ${widths.main} px`);
    assert.ok(widths.page <= widths.window, `the page is ${widths.page} px wide in a window of ${widths.window} px`);
    // Every column stays on screen: the last header cell ends inside the table.
    const lastHeader = await page.locator("#queue-list thead th:last-child").boundingBox();
    assert.ok(lastHeader.x + lastHeader.width <= widths.main + 100, JSON.stringify(lastHeader));
    await screenshot(page, "bug1-queue-long-title-1920");

    await openRequest(page, longRequest.id);
    const heading = await page.evaluate(() => {
      const element = document.getElementById("request-heading");
      return { scroll: element.scrollWidth, client: element.clientWidth };
    });
    assert.ok(heading.scroll <= heading.client, `the heading overflows: ${JSON.stringify(heading)}`);
    assert.equal(await scrollsSideways(page), false);
    await screenshot(page, "bug1-request-long-title-1920");
    assertClean(page);
    await page.close();
  });

  it("notices that an admin changed the rules, and previews again before filing (bug 2)", async () => {
    const { rules: original } = await rulesInForce();
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.alice);
    await page.goto(`${server.url}/#new`);
    await fillValidChange(page, { policyId: "iam/auditors", title: "Let the auditors read the IAM logs" });
    await expectLevel(page, "peer", null);
    await putRules({ ...original, rules: [...original.rules, { name: "all-iam", when: { policyTypes: ["iam"] }, level: "security" }] });
    try {
      const calls = page.apiCalls.length;
      await submitChange(page, ["rules-changed"]);
      // Nothing was filed, the preview shows the level filing would give, and the page says so.
      assert.deepEqual(page.apiCalls.slice(calls).map((call) => `${call.method} ${call.path}`), ["GET /v1/rules"]);
      await expectLevel(page, "security", "all-iam");
      assert.match(await page.locator("#submit-status").textContent(),
        /The rules in force changed since this page loaded them: this change now needs the approval level security \(it showed peer\)\. Nothing was filed/);
      await screenshot(page, "bug2-rules-changed-before-filing");

      // Submitting again files it at the level on show.
      await submitChange(page);
      assert.match(await page.locator("#submit-status").textContent(), /^Filed: level security, status pending\./);
    } finally {
      await putRules(original);
    }
    assertClean(page);
    await page.close();
  });

  it("shows each group of a stage and how far it is, with its escalation", async () => {
    const { rules: original } = await rulesInForce();
    const infra = {
      name: "infra", ttlSeconds: 86400, stages: [{
        name: "infra-review", escalateAfterSeconds: 3600, escalationRoles: ["security-lead"], groups: [
          { name: "engineering", requiredApprovals: 1, eligibleRoles: ["engineer"] },
          { name: "security", requiredApprovals: 1, eligibleRoles: ["security"] },
        ],
      }],
    };
    await putRules({
      ...original,
      levels: [...original.levels, infra],
      rules: [...original.rules, { name: "infra", when: { policyIdPrefix: "infra/" }, level: "infra" }],
    });
    try {
      const request = await file(server.principals.alice, { policyId: "infra/network", title: "Open the build port" });
      assert.equal(request.level, "infra");
      const approved = await api(server.principals.bob, "POST", `/v1/requests/${request.id}/approve`);
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      assert.equal(approved.body.approvals[0].group, "engineering");
      const page = await openPage(browser.context, `${server.url}/`);
      await signIn(page, server.principals.carol);
      await openRequest(page, request.id);
      const stage = page.locator('#stages li[data-stage="infra-review"]');
      // The view is settled (`loaded`): what it shows is the request as read.
      assert.equal(await stage.locator(".approval-count").textContent(), "engineering 1 of 1 · security 0 of 1");
      const text = await stage.textContent();
      assert.match(text, /every group: engineering, 1 approval from the role engineer; security, 1 approval from the role security/);
      assert.match(text, /after 1 h, also security-lead/);
      assert.doesNotMatch(text, /undefined/);
      await screenshot(page, "groups-of-a-stage");
      assertClean(page);
      await page.close();
    } finally {
      await putRules(original);
    }
  });

  it("shows the request as it now is after a refused action, and the stage where it ended (bugs 4 and 7)", async () => {
    const alice = server.principals.alice;
    const request = await file(alice, { title: "Rotate the cache key" });
    const page = await openPage(browser.context, `${server.url}/`);
    await holdLiveUpdates(page);
    await signIn(page, server.principals.bob);
    await openRequest(page, request.id);
    assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
    assert.equal(await page.locator("#request-body .status").textContent(), "pending");

    // Meanwhile the requester cancels it.
    assert.equal((await api(alice, "POST", `/v1/requests/${request.id}/cancel`)).status, 200);
    await act(page, "#approve-button", ["refused"]);
    assert.equal(await page.getAttribute("#request-status", "data-status"), "cancelled");
    assert.equal(await page.locator("#request-body .status").textContent(), "cancelled");
    assert.equal(await page.getAttribute("#request-announcement", "data-code"), "not_pending");
    const announcement = await page.locator("#request-announcement").textContent();
    assert.match(announcement, /^Approve was refused\./);
    assert.doesNotMatch(announcement, RAW);
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_pending");
    // The stage where it ended is not "not reached".
    assert.equal(await page.getAttribute('#stages li[data-stage="peer-review"]', "data-state"), "ended");
    assert.equal(await page.locator('#stages li[data-stage="peer-review"] .tag').textContent(), "cancelled here");
    await screenshot(page, "bug4-refused-then-refreshed");

    // When the request cannot load again after a refusal, the refusal stays
    // on show, not the announcement of an earlier action.
    const another = await file(alice, { title: "Rotate the cache key again" });
    await openRequest(page, another.id);
    await page.fill("#respond-text", "Checked the key rotation plan.");
    await act(page, "#comment-button");
    assert.match(await page.locator("#request-announcement").textContent(), /^Add comment: done\./);
    assert.equal((await api(alice, "POST", `/v1/requests/${another.id}/cancel`)).status, 200);
    page.failuresExpected.push(`/v1/requests/${another.id}`);
    await page.route(`**/v1/requests/${another.id}`, (route) => (route.request().method() === "GET"
      ? route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ error: { code: "unavailable", message: "storage is down" } }) })
      : route.continue()), { times: 1 });
    await act(page, "#approve-button", ["error"]);
    assert.match(await page.locator("#request-announcement").textContent(), /^Approve was refused\./);
    assert.equal(await page.getAttribute("#request-announcement", "data-code"), "not_pending");
    assert.match(await page.locator("#request-body").textContent(), /The request could not load\./);
    await page.unroute(`**/v1/requests/${another.id}`);

    // Rejected at the second stage: the first passed, the second ended there.
    const security = await file(alice, { policyId: "iam/root", policyType: "iam", environment: "prod", title: "Grant root to the break-glass role" });
    assert.equal((await api(server.principals.carol, "POST", `/v1/requests/${security.id}/approve`, {})).status, 200);
    assert.equal((await api(server.principals.dave, "POST", `/v1/requests/${security.id}/reject`, { reason: "Not without a ticket." })).status, 200);
    await openRequest(page, security.id);
    const stages = await page.locator("#stages > li").evaluateAll((items) => items.map((item) => `${item.dataset.stage}:${item.dataset.state}:${item.querySelector(".tag").textContent}`));
    assert.deepEqual(stages, ["security-review:passed:passed", "lead-signoff:ended:rejected here"]);
    await screenshot(page, "bug7-rejected-stage");
    assertClean(page);
    await page.close();
  });

  it("lands on the linked request after sign-in when the link opens in a new tab (bug 5)", async () => {
    const page = await openPage(browser.context, `${server.url}/#request/${longRequest.id}`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    assert.equal(await page.evaluate(() => location.hash), `#signin/request/${longRequest.id}`);
    assert.match(await page.locator("#signin-next").textContent(), /Sign in to open the request the link names/);
    assert.doesNotMatch(await page.locator("main").textContent(), /401|unauthenticated/);
    assert.deepEqual(page.apiCalls.filter((call) => call.path.startsWith("/v1/requests")), []);
    await screenshot(page, "bug5-link-needs-sign-in");
    const before = await seqOf(page, "#request-body");
    await signIn(page, server.principals.dave, { navigate: false });
    await page.waitForFunction((before) => {
      const body = document.getElementById("request-body");
      return Number(body.dataset.seq ?? 0) > before && body.dataset.state === "loaded";
    }, before);
    assert.equal(await page.evaluate(() => location.hash), `#request/${longRequest.id}`);
    assert.equal(await page.getAttribute("#request-body", "data-id"), longRequest.id);
    assert.equal(await page.locator("#view-request").isVisible(), true);
    assertClean(page);
    await page.close();
  });

  it("files one request when Submit is pressed twice: busy while filing, one Idempotency-Key per draft (bug 6)", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.dave);
    await page.goto(`${server.url}/#new`);
    const title = `Raise the cache size ${Date.now()}`;
    await fillValidChange(page, { policyId: "config/cache", policyType: "config", title });
    await expectLevel(page, "peer", null);
    // Hold the filing until the second click and the Enter key are in.
    let release;
    const held = new Promise((done) => { release = done; });
    await page.route("**/v1/requests", async (route) => {
      if (route.request().method() === "POST") await held;
      await route.continue();
    });
    const first = await settled(page, "#submit-status", async () => {
      await page.click("#submit-change");
      await page.locator('#submit-change[aria-busy="true"]:disabled').waitFor();
      await page.locator('#submit-status[data-state="busy"]').filter({ hasText: "Filing the request" }).waitFor();
      await page.click("#submit-change", { force: true });
      await page.press("#f-title", "Enter");
      release();
    }, ["filed"]);
    assert.equal(first, "filed");
    const id = await page.getAttribute("#created-link", "data-id");
    assert.equal(await page.isDisabled("#submit-change"), false);
    // The same draft again: the server answers with the request already filed.
    await submitChange(page, ["already-filed"]);
    assert.equal(await page.getAttribute("#created-link", "data-id"), id);
    assert.match(await page.locator("#submit-status").textContent(), /already filed/);
    const posts = page.apiCalls.filter((call) => call.method === "POST" && call.path === "/v1/requests");
    assert.equal(posts.length, 2);
    assert.ok(posts[0].idempotencyKey, "no Idempotency-Key");
    assert.equal(posts[1].idempotencyKey, posts[0].idempotencyKey);
    const listed = await api(server.principals.dave, "GET", "/v1/requests?status=pending&policyType=config&limit=500");
    assert.equal(listed.body.items.filter((item) => item.change.title === title).length, 1);
    // An edit is a new draft, with a new key.
    await page.fill("#f-title", `${title} again`);
    await submitChange(page);
    const third = page.apiCalls.filter((call) => call.method === "POST" && call.path === "/v1/requests").at(-1);
    assert.notEqual(third.idempotencyKey, posts[0].idempotencyKey);
    assert.notEqual(await page.getAttribute("#created-link", "data-id"), id);
    await screenshot(page, "bug6-filed-once");
    assertClean(page);
    await page.close();
  });

  it("skips to the content of the view on show: Queue, Request and Rules (bug 8)", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.bob);
    const views = [
      ["queue", () => queueLoads(page, () => page.goto(`${server.url}/#queue`), {})],
      ["request", () => openRequest(page, longRequest.id)],
      ["rules", () => openRules(page)],
    ];
    for (const [view, open] of views) {
      await open();
      const hash = await page.evaluate(() => location.hash);
      await page.locator(".skip-link").focus();
      await page.keyboard.press("Enter");
      await page.waitForFunction((view) => document.activeElement?.id === `${view}-heading`, view);
      assert.equal(await page.evaluate(() => location.hash), hash);
      assert.equal(await page.locator(`#view-${view}`).isVisible(), true);
      assert.equal(await page.locator("#view-new").isVisible(), false);
    }
    assertClean(page);
    await page.close();
  });

  it("fits a 390 px phone: usable metadata inputs, and no sideways scrolling (bug 9)", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await page.setViewportSize({ width: 390, height: 844 });
    await signIn(page, server.principals.bob);
    await page.goto(`${server.url}/#new`);
    await page.click("#add-metadata");
    const widths = await page.locator(".meta-row").first().evaluate((row) => ["meta-key", "meta-type", "meta-value"]
      .map((name) => Math.round(row.querySelector(`.${name}`).getBoundingClientRect().width)));
    for (const width of widths) assert.ok(width >= 100, `a metadata input is ${width} px wide: ${widths.join(", ")}`);
    assert.equal(await scrollsSideways(page), false);
    await screenshot(page, "bug9-form-390");

    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    assert.equal(await scrollsSideways(page), false, "the queue scrolls the page sideways");
    await screenshot(page, "bug9-queue-390");
    await openRequest(page, longRequest.id);
    assert.equal(await scrollsSideways(page), false, "the request scrolls the page sideways");
    await screenshot(page, "bug9-request-390");
    assertClean(page);
    await page.close();
  });

  it("shows errors as errors, refuses a non-number, confirms a cancel, fetches the queue once and speaks plainly (bug 10)", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.dave);

    // The queue is fetched once when the page opens on it.
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    const mark = page.apiCalls.length;
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
    await page.locator('#queue-table[data-state="loaded"]').waitFor({ state: "attached" });
    const afterReload = page.apiCalls.slice(mark);
    assert.equal(afterReload.filter(isQueueCall).length, 1, JSON.stringify(afterReload));

    // A queue error is an error, in words.
    await page.fill("#q-policyType", "Not A Type!");
    await settled(page, "#queue-table", () => page.press("#q-policyType", "Enter"), ["error"]);
    const queueError = page.locator("#queue-status");
    assert.equal(await queueError.getAttribute("data-code"), "invalid_request");
    assert.match(await queueError.textContent(), /^The queue could not load\./);
    assert.doesNotMatch(await queueError.textContent(), RAW);
    assert.equal(await queueError.evaluate((element) => getComputedStyle(element).backgroundColor), "rgb(253, 236, 234)");
    await screenshot(page, "bug10-queue-error");

    // A number metadata value refuses "abc".
    await page.goto(`${server.url}/#new`);
    await fillValidChange(page, { policyType: "config", title: "Tune the cache eviction" });
    await page.click("#add-metadata");
    await page.fill(".meta-key", "replicas");
    await page.selectOption(".meta-type", "number");
    await page.fill(".meta-value", "abc");
    await page.locator('.meta-row .field-error li[data-code="invalid_type"]').waitFor();
    assert.equal(await page.getAttribute(".meta-value", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#change-form", "data-valid"), "false");
    await submitChange(page, ["invalid"]);
    await page.fill(".meta-value", "3");
    await page.locator("#validation-summary").filter({ hasText: /^Valid/ }).waitFor();
    await screenshot(page, "bug10-number-metadata");

    // Cancelling asks first; "Keep it" sends nothing.
    const request = await file(server.principals.dave, { title: "Shrink the cache" });
    await openRequest(page, request.id);
    await page.click("#cancel-button");
    await page.locator("#cancel-confirm").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), "cancel-confirm-no");
    await screenshot(page, "bug10-cancel-confirmation");
    await page.click("#cancel-confirm-no");
    await page.locator("#cancel-confirm").waitFor({ state: "hidden" });
    assert.deepEqual(page.apiCalls.filter((call) => call.path.endsWith("/cancel")), []);
    assert.equal(await page.getAttribute("#request-status", "data-status"), "pending");
    await page.click("#cancel-button");
    await act(page, "#cancel-confirm-yes");
    assert.equal(await page.getAttribute("#request-status", "data-status"), "cancelled");
    assertClean(page);
    await page.close();
  });
});

describe("what awaits my review", () => {
  it("opens on the requests the signed-in principal may act on now, greeted by the id the server knows, with their count", async () => {
    const { alice, bob, carol } = server.principals;
    const stamp = Date.now();
    // carol (security) may approve the first; the second waits for an engineer.
    const forCarol = await file(alice, { policyId: "iam/inbox", policyType: "iam", environment: "prod", title: `Security review for the inbox ${stamp}` });
    const forEngineers = await file(alice, { title: `Peer review for the inbox ${stamp}` });
    const carolsOwn = await file(carol, { policyId: "iam/own", policyType: "iam", environment: "prod", title: `Carol's own change ${stamp}` });

    const page = await openPage(browser.context, `${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    // Nobody types an id: only the token, and the server names its principal.
    assert.equal(await page.locator("#s-id").count(), 0);
    await page.fill("#s-token", carol.token);
    await settled(page, "#signin-status", () => page.click("#signin-submit"), ["signed-in"]);
    await page.waitForFunction(() => location.hash === "#inbox");
    await page.locator('#inbox-list[data-state="loaded"]').waitFor({ state: "attached" });
    assert.equal(await page.locator("#view-inbox").isVisible(), true);
    assert.equal(await page.locator("#who-id").textContent(), "carol");
    assert.equal(await page.locator("#inbox-greeting").textContent(), "Hello, carol.");

    const expected = await actionableIds(carol);
    const shown = await page.locator("#inbox-table tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.deepEqual(new Set(shown), new Set(expected));
    assert.ok(shown.includes(forCarol.id), "the request awaiting carol's stage is listed");
    assert.ok(!shown.includes(forEngineers.id), "a stage for engineers is not carol's");
    assert.ok(!shown.includes(carolsOwn.id), "nobody reviews their own request");
    assert.equal(await page.locator("#inbox-count").textContent(), String(expected.length));
    assert.equal(await page.locator("#inbox-heading").textContent(), `Awaiting my review (${expected.length})`);
    await screenshot(page, "inbox-carol");

    // The count stays in the tab on other views, and a row opens its request.
    await openRequest(page, forCarol.id);
    await expectInboxCount(page, expected.length);
    await page.goto(`${server.url}/#inbox`);
    await settled(page, "#request-body", () => page.click(`#inbox-table tr[data-id="${forCarol.id}"] a`), ["loaded"]);
    assert.equal(await page.getAttribute("#request-body", "data-id"), forCarol.id);

    // bob (engineer) sees the peer review and not the security one.
    await page.click("#header-signout");
    await signIn(page, bob);
    await page.locator('#inbox-list[data-state="loaded"]').waitFor({ state: "attached" });
    const bobs = await page.locator("#inbox-table tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.deepEqual(new Set(bobs), new Set(await actionableIds(bob)));
    assert.ok(bobs.includes(forEngineers.id) && !bobs.includes(forCarol.id));
    assertClean(page);
    await page.close();
  });
});

describe("saying each thing once, and only when it applies", () => {
  it("names a request's status once in its header, with the current stage while it is pending", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { title: `Status said once ${Date.now()}` });
    assert.ok(request.stage, JSON.stringify(request));
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await openRequest(page, request.id);
    const header = page.locator("#request-body > p:first-child");
    assert.equal((await header.textContent()).replace(/\s+/g, " ").trim(), `pending · current stage ${request.stage}`);
    // The status is the badge, and the tests' hook stays on it.
    assert.equal(await page.getAttribute("#request-status", "data-status"), "pending");
    assert.equal(await page.getAttribute("#request-status", "class"), "status status-pending");
    assert.equal(await page.locator("#request-stage").textContent(), request.stage);

    await act(page, "#approve-button");
    assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
    assert.equal((await header.textContent()).replace(/\s+/g, " ").trim(), "approved");
    assertClean(page);
    await page.close();
  });

  it("offers Sign out on the sign-in form only while someone is signed in", async () => {
    const page = await openPage(browser.context, `${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    assert.equal(await page.locator("#signout").isVisible(), false, "Sign out is offered to nobody");
    await signIn(page, server.principals.alice);
    await page.goto(`${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    assert.equal(await page.locator("#signout").isVisible(), true, "Sign out is not offered to alice");

    // Signing out there hides it, and leaves the focus on the token field.
    await page.click("#signout");
    assert.equal(await page.locator("#signin-status").textContent(), "Signed out.");
    assert.equal(await page.locator("#signout").isVisible(), false);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "s-token");

    // Signing out from the header hides it too.
    await signIn(page, server.principals.alice, { navigate: false });
    await page.goto(`${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    assert.equal(await page.locator("#signout").isVisible(), true, "Sign out is not offered after signing in again");
    await page.click("#header-signout");
    assert.equal(await page.locator("#signout").isVisible(), false, "Sign out is offered after signing out from the header");
    assertClean(page);
    await page.close();
  });
});

describe("live updates from the server's event stream", () => {
  it("shows another principal's approval in an open request, the queue and the inbox counts within 2 s, without a reload", async () => {
    const { alice, carol, dave } = server.principals;
    // carol works in another browser: her own profile, her own session.
    const other = await launchBrowser();
    try {
      const carols = await openPage(other.context, `${server.url}/`);
      await signIn(carols, carol);
      const davesRequest = await openPage(browser.context, `${server.url}/`);
      await signIn(davesRequest, dave);
      const davesQueue = await openPage(browser.context, `${server.url}/`);
      await signIn(davesQueue, dave);
      for (const page of [carols, davesRequest, davesQueue]) {
        await page.locator('#live-status[data-state="live"]').waitFor({ state: "attached" });
        await page.evaluate(() => { window.notReloaded = true; });
      }
      const carolCount = (await actionableIds(carol)).length;
      const daveCount = (await actionableIds(dave)).length;
      await expectInboxCount(carols, carolCount);
      await expectInboxCount(davesRequest, daveCount);

      // A request filed elsewhere reaches carol's inbox (security review) and
      // the queue dave has open, not dave's inbox (his stage comes later).
      await queueLoads(davesQueue, () => davesQueue.goto(`${server.url}/#queue`), {});
      const request = await file(alice, { policyId: "iam/live", policyType: "iam", environment: "prod", title: `Live review ${Date.now()}` });
      await expectInboxCount(carols, carolCount + 1, { timeout: 2000 });
      const row = davesQueue.locator(`#queue-list tr[data-id="${request.id}"]`);
      await row.waitFor({ timeout: 2000 });
      assert.equal(await row.locator("td:nth-child(7)").textContent(), "security-review");
      await expectInboxCount(davesRequest, daveCount);

      await openRequest(davesRequest, request.id);
      assert.equal(await davesRequest.getAttribute("#approve-button", "data-blocked"), "not_eligible");

      // carol approves from her inbox, in her browser.
      await carols.goto(`${server.url}/#inbox`);
      await settled(carols, "#request-body", () => carols.click(`#inbox-table tr[data-id="${request.id}"] a`), ["loaded"]);
      await act(carols, "#approve-button");
      assert.equal(await carols.locator("#request-stage").textContent(), "lead-signoff");

      // Within 2 s, without a reload: dave's open request is at his stage,
      // with carol's approval and his Approve button allowed; his queue row
      // moved on; his inbox counts it, and carol's no longer does.
      const within = { timeout: 2000 };
      await davesRequest.locator("#request-stage", { hasText: /^lead-signoff$/ }).waitFor(within);
      await davesRequest.locator('#stages li[data-stage="security-review"]', { hasText: "carol approved" }).waitFor(within);
      await davesRequest.locator("#approve-button:not([aria-disabled])").waitFor(within);
      await row.locator("td:nth-child(7)", { hasText: /^lead-signoff$/ }).waitFor(within);
      await expectInboxCount(davesRequest, daveCount + 1, within);
      await expectInboxCount(davesQueue, daveCount + 1, within);
      await expectInboxCount(carols, carolCount, within);
      await screenshot(davesRequest, "live-approval-seen-by-dave");
      for (const page of [carols, davesRequest, davesQueue]) {
        assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was reloaded");
        assertClean(page);
      }
      await davesQueue.close();
      await davesRequest.close();
      await carols.close();
    } finally {
      await other.close();
    }
  });
});

/** The id of the latest event `principal` may see, through the API. */
async function latestEventId(principal) {
  let after = null;
  let latest = null;
  for (;;) {
    const { status, body } = await api(principal, "GET", `/v1/events?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    assert.equal(status, 200, JSON.stringify(body));
    if (body.items.length > 0) latest = body.items.at(-1).id;
    if (!body.nextCursor) return latest;
    after = body.nextCursor;
  }
}

describe("live updates after a drop", () => {
  it("parses server-sent events in any chunking, and resumes after a drop with Last-Event-ID so no event is missed", async () => {
    const { alice, carol } = server.principals;
    const page = await openPage(browser.context, `${server.url}/`);
    // Lines split anywhere, CRLF or LF, comments, and an id without data.
    const parsed = await page.evaluate(async () => {
      const { EventParser } = await import("/js/live.js");
      const parser = new EventParser();
      const events = [
        ...parser.feed(": keep-alive\r\nid: 7-1\r\nevent: request.created\r\ndata: {\"a\""),
        ...parser.feed(":1}\r"),
        ...parser.feed("\n\r\nid: 7-2\n\n"),
      ];
      return { events, lastEventId: parser.lastEventId };
    });
    assert.deepEqual(parsed, { events: [{ id: "7-1", type: "request.created", data: '{"a":1}' }], lastEventId: "7-2" });

    // The first connection is held until the test lets it end: it then
    // says which event it got to (an id, no data) and drops. Meanwhile a
    // request is filed; only a resume after that id brings its event.
    const stream = `${server.url}/v1/events/stream`;
    const connections = [];
    let releaseFirst;
    const firstHeld = new Promise((resolve) => { releaseFirst = resolve; });
    await page.route(stream, async (route) => {
      connections.push(route.request().headers()["last-event-id"] ?? null);
      if (connections.length === 1) {
        const resumeAfter = await firstHeld;
        await route.fulfill({ status: 200, contentType: "text/event-stream", body: `: held\nid: ${resumeAfter}\n\n` });
      } else {
        await route.continue();
      }
    });
    await signIn(page, carol);
    await page.locator('#inbox-list[data-state="loaded"]').waitFor({ state: "attached" });
    const count = (await actionableIds(carol)).length;
    await expectInboxCount(page, count);
    assert.equal(await page.getAttribute("#live-status", "data-state"), "connecting");

    // An event to resume after, whatever ran before this test.
    await file(alice, { policyType: "docs", policyId: "docs/resume", title: `Before the drop ${Date.now()}` });
    const resumeAfter = await latestEventId(carol);
    assert.ok(resumeAfter);
    await file(alice, { policyId: "iam/resume", policyType: "iam", environment: "prod", title: `Filed during a drop ${Date.now()}` });
    releaseFirst(resumeAfter);
    try {
      await expectInboxCount(page, count + 1, { timeout: 5000 });
    } catch (error) {
      throw new Error(`the resumed stream brought no event: connections ${JSON.stringify(connections)}, live ${await page.getAttribute("#live-status", "data-state")}`, { cause: error });
    }
    assert.deepEqual(connections, [null, resumeAfter]);
    await page.locator('#live-status[data-state="live"]').waitFor({ state: "attached" });
    await page.unroute(stream);
    assertClean(page);
    await page.close();
  });
});

describe("amending a request, and reviewing an emergency", () => {
  it("lets the requester amend a pending request: a wording change keeps the approvals, another change starts again", async () => {
    const { alice, bob, carol } = server.principals;
    const request = await file(alice, { policyId: "iam/amend", policyType: "iam", environment: "prod", title: `Let the auditors read ${Date.now()}` });
    const approved = await api(carol, "POST", `/v1/requests/${request.id}/approve`, {});
    assert.equal(approved.body.stage, "lead-signoff");

    // Only the requester is offered the amend form.
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await openRequest(page, request.id);
    assert.equal(await page.locator("#amend-form").count(), 0);
    await page.click("#header-signout");
    await signIn(page, alice);
    await openRequest(page, request.id);
    assert.equal(await page.inputValue("#amend-title"), request.change.title);
    assert.equal(await page.inputValue("#amend-environment"), "prod");

    // A new title only: carol's approval stays, and so does the stage.
    const title = `${request.change.title} (read only)`;
    await page.fill("#amend-title", title);
    await act(page, "#amend-button");
    assert.match(await page.locator("#request-announcement").textContent(), /The approvals were kept\./);
    assert.equal(await page.locator("#request-heading").textContent(), title);
    assert.equal(await page.locator("#request-stage").textContent(), "lead-signoff");
    assert.equal(await page.locator('#history li[data-action="amend"]').count(), 1);

    // An invalid change is refused, and what was typed stays.
    await page.fill("#amend-title", "");
    await act(page, "#amend-button", ["refused"]);
    assert.equal(await page.getAttribute("#request-announcement", "data-code"), "invalid_request");
    assert.doesNotMatch(await page.locator("#request-announcement").textContent(), RAW);
    assert.equal(await page.inputValue("#amend-title"), "");

    // A risk score is more than wording: the request starts again.
    await page.fill("#amend-title", title);
    await page.fill("#amend-riskScore", "30");
    await act(page, "#amend-button");
    assert.match(await page.locator("#request-announcement").textContent(), /The approvals were dropped/);
    assert.equal(await page.locator("#request-stage").textContent(), "security-review");
    assert.equal(await page.locator('#stages li[data-stage="security-review"] .approval-count').textContent(), "0 of 1 approvals");
    await screenshot(page, "amended-request");
    const stored = await api(alice, "GET", `/v1/requests/${request.id}`);
    assert.equal(stored.body.change.riskScore, 30);
    assert.deepEqual(stored.body.approvals, []);
    assertClean(page);
    await page.close();
  });

  it("lets an eligible principal close an emergency's review after the fact, never its requester", async () => {
    const { alice, bob } = server.principals;
    const { rules } = await rulesInForce();
    const withEmergency = structuredClone(rules);
    withEmergency.levels.find((level) => level.name === "peer").emergency = { allowedRoles: ["engineer"], reviewWithinSeconds: 86400 };
    await putRules(withEmergency);
    try {
      const request = await file(alice, { title: `Revoke the leaked key ${Date.now()}`, emergency: { reason: "Revoke a leaked key before it is used." } });
      assert.equal(request.status, "approved");

      const page = await openPage(browser.context, `${server.url}/`);
      await signIn(page, alice);
      await openRequest(page, request.id);
      assert.equal(await page.getAttribute("#emergency", "data-review"), "open");
      assert.equal(await page.locator("#review-form").count(), 0, "the requester may not review");
      await page.click("#header-signout");

      await signIn(page, bob);
      await openRequest(page, request.id);
      // An outcome is required first; nothing is sent without one.
      await settled(page, "#review-status", () => page.click("#review-button"), ["invalid"]);
      assert.match(await page.locator("#review-status").textContent(), /Choose an outcome/);
      assert.deepEqual(page.apiCalls.filter((call) => call.path.endsWith("/review")), []);
      await page.check("#review-outcome-flagged");
      await page.fill("#review-text", "The key was not leaked; a normal change would have done.");
      await screenshot(page, "emergency-review-form");
      await act(page, "#review-button");
      assert.equal(await page.getAttribute("#emergency", "data-review"), "flagged");
      assert.match(await page.locator("#review-state").textContent(), /^Reviewed: flagged by bob at .+ — The key was not leaked/);
      assert.equal(await page.locator("#review-form").count(), 0, "a closed review is not offered again");
      await screenshot(page, "emergency-reviewed");
      const stored = await api(bob, "GET", `/v1/requests/${request.id}`);
      assert.equal(stored.body.emergency.review.status, "flagged");
      assert.equal(stored.body.emergency.review.by, "bob");
      assertClean(page);
      await page.close();
    } finally {
      await putRules(rules);
    }
  });
});

describe("the history's audit chain", () => {
  it("shows the history verified by the engine, and the first entry that breaks the chain when it was altered", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { title: `Audited change ${Date.now()}` });
    const commented = await api(bob, "POST", `/v1/requests/${request.id}/comments`, { text: "Checked against the ticket." });
    assert.equal(commented.status, 200);
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await openRequest(page, request.id);
    const audit = page.locator("#history-audit");
    assert.equal(await audit.getAttribute("data-verified"), "true");
    assert.match(await audit.textContent(), /History verified: all 2 entries hold/);

    // An action's answer is judged again: one more entry, still chained.
    await act(page, "#approve-button");
    assert.equal(await audit.getAttribute("data-verified"), "true");
    assert.match(await audit.textContent(), /all 3 entries hold/);

    // A history altered on its way to the page: the engine names the first
    // entry whose hash does not hold, and the entries from it on are marked.
    const address = `${server.url}/v1/requests/${request.id}`;
    await page.route(address, async (route) => {
      const response = await route.fetch();
      const tampered = await response.json();
      tampered.history[1].actor = "mallory";
      await route.fulfill({ response, json: tampered });
    });
    await page.goto(`${server.url}/#new`);
    await openRequest(page, request.id);
    assert.equal(await audit.getAttribute("data-verified"), "false");
    assert.equal(await audit.getAttribute("data-broken-index"), "1");
    assert.match(await audit.textContent(), /^History not verified: entry 2 \(mallory commented\) breaks the audit chain/);
    assert.doesNotMatch(await audit.textContent(), RAW);
    const marked = await page.locator("#history li").evaluateAll((items) => items.map((item) => item.classList.contains("unverified")));
    assert.deepEqual(marked, [false, true, true]);
    await screenshot(page, "history-not-verified");
    await page.unroute(address);
    assertClean(page);
    await page.close();
  });
});

/** A JWT signed with RS256 by `privateKey`, naming its key `kid`. */
function signJwt(privateKey, kid, claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signed = `${part({ alg: "RS256", typ: "JWT", kid })}.${part(claims)}`;
  return `${signed}.${sign("sha256", Buffer.from(signed), privateKey).toString("base64url")}`;
}

describe("sign-in with an OpenID Connect token", () => {
  it("signs in with a JWT alone, greets the person by its sub and lists what awaits their roles", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const folder = await mkdtemp(join(tmpdir(), "signoff-oidc-"));
    const jwks = join(folder, "jwks.json");
    await writeFile(jwks, JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "editor-test", alg: "RS256", use: "sig" }] }));
    const issuer = "https://login.example.test";
    const audience = "signoff-editor";
    const oidc = await startServer({ extraArgs: ["--oidc-issuer", issuer, "--oidc-audience", audience, "--oidc-jwks", jwks] });
    try {
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt(privateKey, "editor-test", { iss: issuer, aud: audience, sub: "erin", roles: ["security"], iat: now, exp: now + 600 });
      const me = await fetch(`${oidc.url}/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(me.status, 200, await me.clone().text());
      assert.deepEqual(await me.json(), { id: "erin", roles: ["security"] });
      // A security review filed by a demo principal awaits erin.
      const filed = await fetch(`${oidc.url}/v1/requests`, {
        method: "POST",
        headers: { Authorization: `Bearer ${oidc.principals.alice.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ policyId: "iam/oidc", policyType: "iam", changeKind: "update", environment: "prod", title: "Let the auditors in", justification: "The yearly audit starts on Monday." }),
      });
      assert.equal(filed.status, 201);
      const request = await filed.json();

      const page = await openPage(browser.context, `${oidc.url}/#signin`);
      await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
      // The same claims signed by a key the issuer never published: refused.
      const { privateKey: strangersKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      await page.fill("#s-token", signJwt(strangersKey, "editor-test", { iss: issuer, aud: audience, sub: "erin", roles: ["security"], iat: now, exp: now + 600 }));
      await settled(page, "#signin-status", () => page.click("#signin-submit"), ["refused"]);
      assert.equal(await page.getAttribute("#signin-status", "data-code"), "unauthenticated");
      assert.equal(await page.locator("#who-id").count(), 0);

      await page.fill("#s-token", token);
      await settled(page, "#signin-status", () => page.click("#signin-submit"), ["signed-in"]);
      assert.match(await page.locator("#signin-status").textContent(), /Signed in as erin\./);
      await page.waitForFunction(() => location.hash === "#inbox");
      await page.locator('#inbox-list[data-state="loaded"]').waitFor({ state: "attached" });
      assert.equal(await page.locator("#who-id").textContent(), "erin");
      assert.match(await page.locator(".who .roles").textContent(), /security/);
      assert.equal(await page.locator("#inbox-greeting").textContent(), "Hello, erin.");
      assert.deepEqual(await page.locator("#inbox-table tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id)), [request.id]);
      assert.equal(await page.locator("#inbox-count").textContent(), "1");
      await screenshot(page, "oidc-inbox-erin");
      assertClean(page);
      await page.close();
    } finally {
      await oidc.stop();
      await rm(folder, { recursive: true, force: true });
    }
  });
});

/**
 * Waits until `check()` resolves to something truthy, asking again every
 * 100 ms: for a state of the server that comes with time (a review that
 * falls due), never a fixed sleep. Fails after `timeoutMs`, saying `what`.
 */
async function eventually(check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** The ids the server lists for `query`, as `principal`, all pages of up to 500. */
async function listedIds(principal, query) {
  const { status, body } = await api(principal, "GET", `/v1/requests?${query}&limit=500`);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.nextCursor, undefined);
  return body.items.map((request) => request.id);
}

/** The rules in force with an emergency filing for engineers at the `peer` level. */
function withPeerEmergency(rules, reviewWithinSeconds) {
  const changed = structuredClone(rules);
  changed.levels.find((level) => level.name === "peer").emergency = { allowedRoles: ["engineer"], reviewWithinSeconds };
  return changed;
}

/** The demo rules plus a level whose one stage has two groups and escalates after an hour. */
function withGroupLevel(rules) {
  const infra = {
    name: "infra", ttlSeconds: 86400, stages: [{
      name: "infra-review", escalateAfterSeconds: 3600, escalationRoles: ["security-lead"], groups: [
        { name: "engineering", requiredApprovals: 1, eligibleRoles: ["engineer"] },
        { name: "security", requiredApprovals: 1, eligibleRoles: ["security"] },
      ],
    }],
  };
  return {
    ...rules,
    levels: [...rules.levels, infra],
    rules: [...rules.rules, { name: "infra", when: { policyIdPrefix: "infra/" }, level: "infra" }],
  };
}

// A unified diff with a removal, an addition and one line of 300 characters.
const DIFF = "--- a/admins.yaml\n+++ b/admins.yaml\n@@ -1,4 +1,4 @@\n members:\n-  - alice\n+  - bob\n   - carol\n"
  + `   # ${"x".repeat(300)}\n`;

/** The ids of the principals named on one line of `#approvers` (`data-names`). */
async function namesOn(page, selector) {
  const names = await page.getAttribute(selector, "data-names");
  return names ? names.split(" ") : [];
}

/** Presses Tab until `id` has the focus; fails after `most` presses. */
async function tabTo(page, id, most = 80) {
  for (let i = 0; i < most; i += 1) {
    if (await page.evaluate(() => document.activeElement?.id) === id) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached #${id}`);
}

describe("emergency reviews, who could approve, the review box, filters in the URL and diffs", () => {
  it("lists the open and the overdue emergency reviews from their own tab, with the overdue count and when each is due", async () => {
    const { alice, bob } = server.principals;
    const stamp = Date.now();
    const { rules } = await rulesInForce();
    let late;
    let due;
    await putRules(withPeerEmergency(rules, 1));
    try {
      late = await file(alice, { title: `Restore the cache now ${stamp}`, emergency: { reason: "The cache is down and the shop with it." } });
      await putRules(withPeerEmergency(rules, 86400));
      due = await file(alice, { title: `Flush the cache now ${stamp}`, emergency: { reason: "A poisoned entry is served to everyone." } });
    } finally {
      await putRules(rules);
    }
    assert.equal(late.emergency.review.status, "open");
    await eventually(async () => (await listedIds(bob, "emergencyReview=overdue")).includes(late.id), "the first review to fall due");

    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await queueLoads(page, () => page.click('.tabs a[data-route="reviews"]'), { status: "approved", emergencyReview: "open" });
    assert.equal(await page.evaluate(() => location.hash), "#queue?emergencyReview=open");
    assert.equal(await page.getAttribute('.tabs a[data-route="reviews"]', "aria-current"), "page");
    assert.equal(await page.getAttribute('.tabs a[data-route="queue"]', "aria-current"), null);
    assert.equal(await page.locator("#queue-heading").textContent(), "Emergency reviews");
    assert.equal(await page.isDisabled("#q-status"), true);
    const open = await listedIds(bob, "emergencyReview=open");
    const shown = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.deepEqual(shown, open.slice(0, 25));
    // Each row says when its review is, or was, due.
    const lateRow = page.locator(`#queue-list tr[data-id="${late.id}"]`);
    assert.equal(await lateRow.getAttribute("data-overdue"), "true");
    assert.match(await lateRow.locator("td:last-child").textContent(), /^Overdue: was due .+ \((\d\d:\d\d:\d\d ago|just now)\)$/);
    const dueRow = page.locator(`#queue-list tr[data-id="${due.id}"]`);
    assert.equal(await dueRow.getAttribute("data-overdue"), "false");
    assert.match(await dueRow.locator("td:last-child").textContent(), /^Due .+ \(in (23:5\d:\d\d|1 d 00:00:00)\)$/);
    assert.match(await dueRow.locator(".cell-note").textContent(), /A poisoned entry/);
    // The count of overdue reviews, all of them.
    const overdue = await listedIds(bob, "emergencyReview=overdue");
    assert.equal(await page.getAttribute("#queue-overdue", "data-count"), String(overdue.length));
    assert.match(await page.locator("#queue-overdue").textContent(), overdue.length === 1 ? /^1 emergency review is overdue\.$/ : /^\d+ emergency reviews are overdue\.$/);
    await screenshot(page, "reviews-open");

    // Only the overdue ones; the back button shows the open ones again.
    await queueLoads(page, () => page.selectOption("#q-emergencyReview", "overdue"), { status: "approved", emergencyReview: "overdue" });
    assert.equal(await page.evaluate(() => location.hash), "#queue?emergencyReview=overdue");
    const overdueShown = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.ok(overdueShown.includes(late.id) && !overdueShown.includes(due.id), JSON.stringify(overdueShown));
    await queueLoads(page, () => page.goBack(), { status: "approved", emergencyReview: "open" });
    assert.equal(await page.inputValue("#q-emergencyReview"), "open");
    // Back to every request: the status is free again.
    await queueLoads(page, () => page.click('.tabs a[data-route="queue"]'), {});
    assert.equal(await page.isDisabled("#q-status"), false);
    assert.equal(await page.locator("#queue-heading").textContent(), "Queue");

    // Close both reviews, so that nothing is left overdue.
    for (const request of [late, due]) {
      const closed = await api(bob, "POST", `/v1/requests/${request.id}/review`, { outcome: "ratified" });
      assert.equal(closed.status, 200, JSON.stringify(closed.body));
    }
    assertClean(page);
    await page.close();
  });

  it("names who could approve each group of the current stage now, and when escalation brings in whom (needs GET /v1/principals)", async () => {
    const { alice, bob, carol } = server.principals;
    const { rules } = await rulesInForce();
    await putRules(withGroupLevel(rules));
    try {
      const request = await file(alice, { policyId: "infra/approvers", title: `Open the deploy port ${Date.now()}` });
      assert.equal(request.level, "infra");
      const page = await openPage(browser.context, `${server.url}/`);
      await signIn(page, carol);
      await openRequest(page, request.id);
      const approvers = page.locator("#approvers");
      assert.equal(await approvers.getAttribute("data-known"), "true");
      // The engine decides: alice filed it, so of the engineers only bob.
      assert.deepEqual(await namesOn(page, '#approvers li[data-group="engineering"]'), ["bob"]);
      assert.deepEqual(await namesOn(page, '#approvers li[data-group="security"]'), ["carol"]);
      assert.match(await approvers.textContent(), /alice, who filed it, may not approve it/);
      // The stage escalates an hour after it became current, and brings in dave.
      const escalation = page.locator("#escalations li");
      assert.equal(await escalation.getAttribute("data-state"), "due");
      assert.equal(Date.parse(await escalation.getAttribute("data-at")), Date.parse(request.stageStartedAt) + 3600_000);
      assert.deepEqual(await namesOn(page, "#escalations li"), ["dave"]);
      assert.match(await escalation.textContent(), /^The stage escalates at .+ \(in (00:59:\d\d|01:00:00)\): it brings in the role security-lead — dave \(security-lead\)\.$/);
      await screenshot(page, "approvers-groups");

      // bob approves elsewhere: his group is met, carol's still waits for her.
      assert.equal((await api(bob, "POST", `/v1/requests/${request.id}/approve`, {})).status, 200);
      await page.goto(`${server.url}/#new`);
      await openRequest(page, request.id);
      assert.equal(await page.getAttribute('#approvers li[data-group="engineering"]', "data-met"), "true");
      assert.deepEqual(await namesOn(page, '#approvers li[data-group="security"]'), ["carol"]);
      await act(page, "#approve-button");
      assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
      assert.equal(await page.locator("#approvers").count(), 0);
      assertClean(page);
      await page.close();
    } finally {
      await putRules(rules);
    }
  });

  it("says only which roles may approve when the server does not say who may sign in (an older server, or sign-in by an identity provider)", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { policyId: "iam/roles-only", policyType: "iam", environment: "prod", title: `Let the auditors in ${Date.now()}` });
    const answers = [
      ["an older server", { status: 404, contentType: "application/json", body: JSON.stringify({ error: { code: "not_found", message: "no such route" } }) }, /This server does not say who may sign in/],
      ["an identity provider", { status: 200, contentType: "application/json", body: JSON.stringify({ data: [], known: false }) }, /knows nobody in advance/],
    ];
    for (const [what, answer, words] of answers) {
      const page = await openPage(browser.context, `${server.url}/`);
      await page.route("**/v1/principals", (route) => route.fulfill(answer));
      await signIn(page, bob);
      await openRequest(page, request.id);
      const approvers = page.locator("#approvers");
      assert.equal(await approvers.getAttribute("data-known"), "false", what);
      assert.match(await page.locator("#approvers-unknown").textContent(), words);
      assert.equal(await page.getAttribute("#approvers li", "data-roles"), "security");
      assert.match(await page.locator("#approvers li").textContent(), /^0 of 1 approvals; the role security may approve\.$/);
      assert.doesNotMatch(await approvers.textContent(), /carol/);
      await screenshot(page, `approvers-roles-only-${answer.status}`);
      assertClean(page);
      await page.close();
    }
  });

  it("reviews in one box: a comment with approve, reject or comment, each blocked button saying why, all by keyboard", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { title: `Lower the cache TTL ${Date.now()}` });
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, alice);
    await openRequest(page, request.id);
    // One form, one text area, three actions; cancel stays on its own.
    const box = page.locator("#respond-form");
    assert.equal(await box.locator("textarea").count(), 1);
    assert.deepEqual(await box.locator("button[type=submit]").evaluateAll((buttons) => buttons.map((button) => button.id)),
      ["approve-button", "reject-button", "comment-button"]);
    assert.equal(await page.locator("#approve-form, #reject-form, #comment-form").count(), 0);
    assert.equal(await page.locator("#cancel-form #cancel-button").count(), 1);
    // The requester's approve and reject are blocked, each with its reason.
    for (const name of ["approve", "reject"]) {
      assert.equal(await page.getAttribute(`#${name}-button`, "data-blocked"), "self_approval");
      assert.equal(await page.getAttribute(`#${name}-button`, "aria-describedby"), `${name}-reason`);
      assert.match(await page.locator(`#${name}-reason`).textContent(), /You filed this request/);
    }
    assert.equal(await page.getAttribute("#comment-button", "aria-disabled"), null);
    assert.equal(await page.locator("#comment-reason").count(), 0);
    // A blocked button is reached by Tab, and Enter on it says why.
    await page.locator(".skip-link").focus();
    await tabTo(page, "approve-button");
    await settled(page, "#respond-status", () => page.keyboard.press("Enter"), ["blocked"]);
    assert.match(await page.locator("#respond-status").textContent(), /^Not sent: You filed this request/);
    await screenshot(page, "review-box-requester");
    await page.click("#header-signout");

    await signIn(page, bob);
    await openRequest(page, request.id);
    await page.locator(".skip-link").focus();
    await tabTo(page, "respond-text");
    // A comment needs its text: nothing is sent, and the focus comes back.
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "comment-button");
    await settled(page, "#respond-status", () => page.keyboard.press("Enter"), ["invalid"]);
    assert.match(await page.locator("#respond-status").textContent(), /^Write a comment first\.$/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "respond-text");
    // The text is a reject's reason.
    await page.keyboard.type("Needs a ticket first.");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "reject-button");
    await settled(page, "#request-body", () => page.keyboard.press("Enter"), ["acted"]);
    assert.equal(await page.getAttribute("#request-status", "data-status"), "rejected");
    assert.match(await page.locator("#rejection").textContent(), /Rejected by bob at stage peer-review: “Needs a ticket first\.”/);
    assert.match(await page.locator("#request-announcement").textContent(), /^Reject: done\./);
    assert.equal(await page.inputValue("#respond-text"), "");
    assertClean(page);
    await page.close();
  });

  it("keeps the queue's filters in the URL: a link shows the same view, a reload keeps it, and back restores the filters before", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { policyId: "config/url", title: `Shorten the session timeout ${Date.now()}`, justification: "Sessions stay open for a day; an hour is plenty." });
    assert.equal((await api(bob, "POST", `/v1/requests/${request.id}/approve`, {})).status, 200);
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    await queueLoads(page, () => page.selectOption("#q-status", "approved"), { status: "approved" });
    assert.equal(await page.evaluate(() => location.hash), "#queue?status=approved");
    await page.fill("#q-policyType", "config");
    await queueLoads(page, () => page.press("#q-policyType", "Enter"), { status: "approved", policyType: "config" });
    assert.equal(await page.evaluate(() => location.hash), "#queue?status=approved&policyType=config");
    // By keyboard alone: Tab to the rows' select, and an arrow key picks the next.
    await page.locator(".skip-link").focus();
    await tabTo(page, "q-view");
    await queueLoads(page, () => page.keyboard.press("ArrowDown"), { status: "approved", policyType: "config", view: "full" });
    const full = "#queue?status=approved&policyType=config&view=full";
    assert.equal(await page.evaluate(() => location.hash), full);
    const calls = page.apiCalls.filter(isQueueCall).at(-1);
    assert.equal(new URLSearchParams(calls.search).get("view"), "full");
    assert.match(await page.locator(`#queue-list tr[data-id="${request.id}"] .cell-note`).textContent(), /an hour is plenty/);

    // A reload keeps the filters, in the controls and in what is listed.
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
    await page.locator('#queue-table[data-state="loaded"]').waitFor({ state: "attached" });
    assert.equal(await page.getAttribute("#queue-table", "data-query"), queueKey({ status: "approved", policyType: "config", view: "full" }));
    assert.equal(await page.inputValue("#q-status"), "approved");
    assert.equal(await page.inputValue("#q-policyType"), "config");
    assert.equal(await page.inputValue("#q-view"), "full");

    // Back restores each earlier set of filters.
    await queueLoads(page, () => page.goBack(), { status: "approved", policyType: "config" });
    assert.equal(await page.inputValue("#q-view"), "summary");
    await queueLoads(page, () => page.goBack(), { status: "approved" });
    assert.equal(await page.inputValue("#q-policyType"), "");
    await queueLoads(page, () => page.goForward(), { status: "approved", policyType: "config" });
    await screenshot(page, "queue-filters-in-url");

    // The link, opened in another tab with no session: sign in, and the same view.
    const shared = await openPage(browser.context, `${server.url}/${full}`);
    await shared.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    assert.equal(await shared.evaluate(() => location.hash), `#signin/${full.slice(1)}`);
    await settled(shared, "#queue-table", () => signIn(shared, bob, { navigate: false }), ["loaded"]);
    assert.equal(await shared.evaluate(() => location.hash), full);
    assert.equal(await shared.getAttribute("#queue-table", "data-query"), queueKey({ status: "approved", policyType: "config", view: "full" }));
    assert.equal(await shared.locator(`#queue-list tr[data-id="${request.id}"]`).count(), 1);
    for (const tab of [page, shared]) {
      assertClean(tab);
      await tab.close();
    }
  });

  it("searches titles and policy ids from the queue, with the other filters, and keeps the search in the URL (needs q on the server)", async () => {
    const { alice, bob } = server.principals;
    const token = `zq${Date.now()}`;
    const inTitle = await file(alice, { policyId: "config/search-a", title: `Rotate the ${token.toUpperCase()} key` });
    const inPolicy = await file(alice, { policyId: `config/${token}/b`, title: "Rotate another key" });
    const network = await file(alice, { policyId: "net/search-c", policyType: "network", title: `Open the ${token} port` });
    await file(alice, { policyId: "config/search-d", title: "Something else entirely" });
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await queueLoads(page, () => page.goto(`${server.url}/#queue`), {});
    await page.fill("#q-search", token);
    await queueLoads(page, () => page.press("#q-search", "Enter"), { q: token });
    assert.equal(await page.evaluate(() => location.hash), `#queue?q=${token}`);
    assert.equal(new URLSearchParams(page.apiCalls.filter(isQueueCall).at(-1).search).get("q"), token);
    const found = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.deepEqual(new Set(found), new Set([inTitle.id, inPolicy.id, network.id]));
    assert.match(await page.locator("#queue-list caption").textContent(), new RegExp(`matching “${token}”`));

    // With a policy type as well.
    await page.fill("#q-policyType", "config");
    await queueLoads(page, () => page.press("#q-policyType", "Enter"), { q: token, policyType: "config" });
    const config = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.deepEqual(new Set(config), new Set([inTitle.id, inPolicy.id]));
    assert.equal(await page.evaluate(() => location.hash), `#queue?policyType=config&q=${token}`);
    await queueLoads(page, () => page.goBack(), { q: token });
    assert.equal(await page.inputValue("#q-search"), token);
    assertClean(page);
    await page.close();
  });

  it("draws a change's diff in colour, keeping the signs and naming each changed line for screen readers", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { title: `Swap alice for bob ${Date.now()}`, diff: DIFF });
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, bob);
    await openRequest(page, request.id);
    const diff = page.locator("#change-diff");
    assert.equal(await page.getAttribute("#change-diff-summary", "data-added"), "1");
    assert.equal(await page.getAttribute("#change-diff-summary", "data-removed"), "1");
    assert.equal(await page.locator("#change-diff-summary").textContent(), "1 line added, 1 removed, in 1 hunk.");
    const lines = await diff.locator(".diff-line").evaluateAll((items) => items.map((item) => `${item.tagName.toLowerCase()} ${item.dataset.kind}`));
    assert.deepEqual(lines, ["span file", "span file", "span hunk", "span context", "del del", "ins add", "span context", "span context"]);
    // The signs stay; words say what colour shows.
    assert.equal(await diff.locator("ins").textContent(), "added: +  - bob");
    assert.equal(await diff.locator("del").textContent(), "removed: -  - alice");
    assert.equal(await diff.locator("ins .sr-only").textContent(), "added: ");
    const colours = await diff.evaluate((pre) => Object.fromEntries(["add", "del", "hunk", "context"].map((kind) => {
      const style = getComputedStyle(pre.querySelector(`.diff-${kind}`));
      return [kind, { background: style.backgroundColor, weight: style.fontWeight, decoration: style.textDecorationLine }];
    })));
    assert.equal(colours.add.background, "rgb(220, 243, 225)");
    assert.equal(colours.del.background, "rgb(253, 226, 223)");
    assert.equal(colours.hunk.background, "rgb(227, 235, 250)");
    assert.equal(colours.hunk.weight, "600");
    assert.equal(colours.context.background, "rgba(0, 0, 0, 0)");
    assert.equal(colours.add.decoration, "none");
    // A region the keyboard can reach, to scroll the long line.
    assert.equal(await diff.getAttribute("tabindex"), "0");
    assert.equal(await diff.getAttribute("aria-describedby"), "change-diff-summary");
    await screenshot(page, "request-diff");
    assertClean(page);
    await page.close();
  });

  it("shows the rules draft's changes against the rules in force, in colour, as it is typed", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.admin);
    await openRules(page);
    assert.match(await page.locator("#rules-diff-none").textContent(), /^No changes: the draft is the rules in force\.$/);
    const draft = JSON.parse(await page.inputValue("#rules-text"));
    draft.levels.find((level) => level.name === "peer").ttlSeconds = 3600;
    // Spacing alone is no change: the draft is compared as the engine reads it.
    await page.fill("#rules-text", JSON.stringify(draft));
    await page.locator("#rules-diff-text").waitFor();
    assert.equal(await page.getAttribute("#rules-diff-text-summary", "data-added"), "1");
    assert.equal(await page.getAttribute("#rules-diff-text-summary", "data-removed"), "1");
    assert.match(await page.locator("#rules-diff-text del").textContent(), /^removed: -\s+"ttlSeconds": 604800,?$/);
    assert.match(await page.locator("#rules-diff-text ins").textContent(), /^added: \+\s+"ttlSeconds": 3600,?$/);
    assert.match(await page.locator("#rules-diff-text .diff-file").first().textContent(), /^--- rules in force$/);
    await screenshot(page, "rules-draft-diff");
    // Nothing was saved; back to the rules in force, no changes.
    await settled(page, "#rules-save-status", () => page.click("#rules-revert"), ["reverted"]);
    await page.locator("#rules-diff-none").waitFor();
    assertClean(page);
    await page.close();
  });

  it("warns of the stages nobody who may sign in could meet, apart from the problems, and never keeps a draft from being saved (needs GET /v1/principals and validateRules with principals)", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await signIn(page, server.principals.admin);
    await openRules(page);
    await page.locator('#rules-warnings[data-principals="known"]').waitFor({ state: "attached" });
    const draft = JSON.parse(await page.inputValue("#rules-text"));
    draft.levels.find((level) => level.name === "peer").stages[0].requiredApprovals = 3;
    await page.fill("#rules-text", JSON.stringify(draft, null, 2));
    const warning = page.locator('#rules-warning-list li[data-path="levels[1].stages[0]"]');
    await warning.waitFor();
    assert.equal(await warning.getAttribute("data-code"), "unsatisfiable");
    assert.doesNotMatch(await warning.textContent(), /`/);
    // Not a problem: the document may be saved.
    assert.match(await page.locator("#rules-problems").textContent(), /No problems/);
    assert.equal(await page.locator('#rules-problem-list tr[data-code="unsatisfiable"]').count(), 0);
    assert.equal(await page.getAttribute("#rules-save", "aria-disabled"), null);
    await screenshot(page, "rules-warnings");
    assertClean(page);
    await page.close();
  });

  it("says the stages nobody could approve are not looked for when the server does not say who may sign in", async () => {
    const page = await openPage(browser.context, `${server.url}/`);
    await page.route("**/v1/principals", (route) => route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ error: { code: "not_found", message: "no such route" } }) }));
    await signIn(page, server.principals.admin);
    await openRules(page);
    await page.locator('#rules-warnings[data-principals="unknown"]').waitFor({ state: "attached" });
    assert.match(await page.locator("#rules-warnings-unjudged").textContent(), /not looked for: the server does not say who may sign in/);
    assertClean(page);
    await page.close();
  });

  it("fits a 390 px phone without sideways scrolling: the filters, the reviews, the review box, who could approve, and both diffs", async () => {
    const { alice, bob } = server.principals;
    const request = await file(alice, { policyId: `iam/${"p".repeat(120)}`, policyType: "iam", environment: "prod", title: `Narrow ${"t".repeat(120)}`, diff: DIFF });
    const page = await openPage(browser.context, `${server.url}/`);
    await page.setViewportSize({ width: 390, height: 844 });
    await signIn(page, bob);
    await queueLoads(page, () => page.goto(`${server.url}/#queue?status=approved&view=full`), { status: "approved", view: "full" });
    assert.equal(await scrollsSideways(page), false, "the queue's filters scroll the page sideways");
    const search = await page.locator("#q-search").boundingBox();
    assert.ok(search.width >= 200, `the search box is ${search.width} px wide`);
    await screenshot(page, "narrow-queue");
    await queueLoads(page, () => page.click('.tabs a[data-route="reviews"]'), { status: "approved", emergencyReview: "open" });
    assert.equal(await scrollsSideways(page), false, "the reviews scroll the page sideways");
    await openRequest(page, request.id);
    assert.equal(await page.locator("#approvers").count(), 1);
    assert.equal(await scrollsSideways(page), false, "the request scrolls the page sideways");
    // The long diff line scrolls inside the diff, not the page.
    const diff = await page.locator("#change-diff").evaluate((pre) => ({ scroll: pre.scrollWidth, client: pre.clientWidth }));
    assert.ok(diff.scroll > diff.client, JSON.stringify(diff));
    const buttons = await page.locator("#respond-form button[type=submit]").evaluateAll((items) => items.map((item) => item.getBoundingClientRect().right));
    for (const right of buttons) assert.ok(right <= 390, `a review button ends at ${right} px`);
    await screenshot(page, "narrow-request");
    await page.click("#header-signout");
    await signIn(page, server.principals.admin);
    await openRules(page);
    const draft = JSON.parse(await page.inputValue("#rules-text"));
    draft.rules[0].name = `docs-${"n".repeat(150)}`;
    await page.fill("#rules-text", JSON.stringify(draft, null, 2));
    await page.locator("#rules-diff-text").waitFor();
    assert.equal(await scrollsSideways(page), false, "the rules' diff scrolls the page sideways");
    await screenshot(page, "narrow-rules-diff");
    assertClean(page);
    await page.close();
  });
});

describe("the IndexedDB cache of local mode", () => {
  it("keeps the cache contract: versions, atomic commits, ordered ranges, TTLs", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      const result = await page.evaluate(async () => {
        const { IndexedDbCache } = await import("/pkg/indexeddb.js");
        let now = 1_000_000;
        const cache = await IndexedDbCache.open(`contract-${Math.random()}`, { clock: () => now });
        const bytes = (text) => new TextEncoder().encode(text);
        const text = (entry) => entry && new TextDecoder().decode(entry.value);
        const out = {};
        out.absent = await cache.get("a");
        out.create = await cache.commit({ checks: [{ key: "a", version: null }], puts: [{ key: "a", value: bytes("one") }] });
        const first = await cache.get("a");
        out.first = text(first);
        out.recreate = await cache.commit({ checks: [{ key: "a", version: null }], puts: [{ key: "a", value: bytes("two") }] });
        // A failed check writes nothing, not even the parts whose checks held.
        out.partial = await cache.commit({
          checks: [{ key: "a", version: first.version }, { key: "b", version: 42 }],
          puts: [{ key: "a", value: bytes("three") }, { key: "c", value: bytes("c") }],
          indexAdds: [{ index: "i", sortKey: "x", member: "m" }],
        });
        out.afterPartial = [text(await cache.get("a")), await cache.get("c"), await cache.range("i", null, 10)];
        out.update = await cache.commit({ checks: [{ key: "a", version: first.version }], puts: [{ key: "a", value: bytes("four") }] });
        const second = await cache.get("a");
        out.versionMoved = second.version > first.version;
        out.stale = await cache.commit({ checks: [{ key: "a", version: first.version }], deletes: ["a"] });
        out.delete = await cache.commit({ checks: [{ key: "a", version: second.version }], deletes: ["a"] });
        out.deleted = await cache.get("a");
        // Ordered indexes: byte order of UTF-8 sort keys, ties by member,
        // strictly after a position that is no longer there.
        const adds = [["b", "2"], ["b", "1"], ["a", "9"], ["\u00e9", "1"], ["\uffff", "1"], ["\u{1F600}", "1"], ["c", "1"]]
          .map(([sortKey, member]) => ({ index: "idx", sortKey, member }));
        await cache.commit({ indexAdds: adds });
        await cache.commit({ indexAdds: [{ index: "other", sortKey: "a", member: "x" }] });
        out.all = (await cache.range("idx", null, 100)).map((e) => `${e.sortKey}/${e.member}`);
        out.page = (await cache.range("idx", { sortKey: "b", member: "1" }, 2)).map((e) => `${e.sortKey}/${e.member}`);
        await cache.commit({ indexRemoves: [{ index: "idx", sortKey: "b", member: "2" }] });
        out.afterGone = (await cache.range("idx", { sortKey: "b", member: "2" }, 1)).map((e) => `${e.sortKey}/${e.member}`);
        // TTL: gone once its time has passed, and absent for checks.
        await cache.commit({ puts: [{ key: "t", value: bytes("ttl"), ttlMs: 500 }] });
        out.beforeTtl = text(await cache.get("t"));
        now += 500;
        out.afterTtl = await cache.get("t");
        out.recreateExpired = await cache.commit({ checks: [{ key: "t", version: null }], puts: [{ key: "t", value: bytes("new") }] });
        cache.close();
        return out;
      });
      assert.deepEqual(result, {
        absent: null,
        create: "committed",
        first: "one",
        recreate: "conflict",
        partial: "conflict",
        afterPartial: ["one", null, []],
        update: "committed",
        versionMoved: true,
        stale: "conflict",
        delete: "committed",
        deleted: null,
        all: ["a/9", "b/1", "b/2", "c/1", "\u00e9/1", "\uffff/1", "\u{1F600}/1"],
        page: ["b/2", "c/1"],
        afterGone: ["c/1"],
        beforeTtl: "ttl",
        afterTtl: null,
        recreateExpired: "committed",
      });
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });
});

describe("local mode, with the server stopped", () => {
  it("runs the whole workflow in the browser over IndexedDB", async () => {
    await server.stop();
    assert.equal(await fetch(`${server.url}/healthz`).then(() => "up", () => "down"), "down");
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      assert.match(await page.locator("#banner").textContent(), /local mode/);
      assert.equal(await page.isChecked("#mode-local"), true);
      assert.equal(await page.isDisabled("#mode-server"), true);
      assert.equal(await page.inputValue("#local-principal"), "alice");

      await fillValidChange(page, { environment: "prod", title: "Offline: grant admin" });
      await expectLevel(page, "security", "iam-in-prod");
      await screenshot(page, "local-form");
      await submitChange(page);
      const link = page.locator("#created-link");
      const id = await link.getAttribute("data-id");
      await settled(page, "#request-body", () => link.click(), ["loaded"]);
      assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "self_approval");
      await screenshot(page, "local-request-as-alice");

      // No event stream in local mode: the inbox count follows the acting
      // principal and this page's own actions.
      await expectInboxCount(page, 0);
      const actAs = (who) => settled(page, "#request-body", () => page.selectOption("#local-principal", who), ["loaded"]);
      await actAs("carol");
      await expectInboxCount(page, 1);
      assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
      await act(page, "#approve-button");
      assert.equal(await page.locator("#request-stage").textContent(), "lead-signoff");
      await expectInboxCount(page, 0);

      await actAs("bob");
      assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_eligible");

      await actAs("dave");
      await expectInboxCount(page, 1);
      await page.goto(`${files.url}/#inbox`);
      await page.locator(`#inbox-table tr[data-id="${id}"]`).waitFor();
      await screenshot(page, "local-inbox-dave");
      await settled(page, "#request-body", () => page.click(`#inbox-table tr[data-id="${id}"] a`), ["loaded"]);
      await act(page, "#approve-button");
      assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
      await expectInboxCount(page, 0);
      await screenshot(page, "local-request-approved");

      // Everything is still there after a reload: it lives in IndexedDB.
      await page.reload();
      await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
      await page.locator('#request-body[data-state="loaded"]').waitFor({ state: "attached" });
      assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
      await queueLoads(page, () => page.goto(`${files.url}/#queue`), {});
      await queueLoads(page, () => page.selectOption("#q-status", "approved"), { status: "approved" });
      assert.equal(await page.locator(`#queue-list tr[data-id="${id}"]`).count(), 1);
      await screenshot(page, "local-queue");

      // Another request, cancelled by its requester once they confirm.
      await page.selectOption("#local-principal", "bob");
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "docs", title: "Offline: docs change" });
      await expectLevel(page, "auto", "docs-are-auto-approved");
      await page.fill("#f-policyType", "config");
      await expectLevel(page, "peer", null);
      await submitChange(page);
      await settled(page, "#request-body", () => page.locator("#created-link").click(), ["loaded"]);
      await page.click("#cancel-button");
      await page.locator("#cancel-confirm").waitFor();
      await act(page, "#cancel-confirm-yes");
      assert.equal(await page.getAttribute("#request-status", "data-status"), "cancelled");
      assert.equal(await page.getAttribute('#stages li[data-stage="peer-review"]', "data-state"), "ended");
      assert.match(await page.locator('#stages li[data-stage="peer-review"] .tag').textContent(), /^cancelled here$/);

      // One more, rejected by a peer: a reason is required first.
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "config", title: "Offline: config change" });
      await expectLevel(page, "peer", null);
      await submitChange(page);
      await settled(page, "#request-body", () => page.locator("#created-link").click(), ["loaded"]);
      await actAs("alice");
      assert.equal(await page.getAttribute("#reject-button", "aria-disabled"), null);
      await settled(page, "#respond-status", () => page.click("#reject-button"), ["invalid"]);
      assert.match(await page.locator("#respond-status").textContent(), /A reason is required/);
      assert.equal(await page.evaluate(() => document.activeElement.id), "respond-text");
      await page.fill("#respond-text", "Config changes go through the weekly window.");
      await act(page, "#reject-button");
      assert.equal(await page.getAttribute("#request-status", "data-status"), "rejected");
      assert.match(await page.locator("#rejection").textContent(), /Rejected by alice at stage peer-review: “Config changes go through the weekly window.”/);
      assert.match(await page.locator('#stages li[data-stage="peer-review"] .tag').textContent(), /^rejected here$/);
      await screenshot(page, "local-request-rejected");

      // Local rules: the admin shortens the peer level to 10 s; a request at
      // that level counts down and expires on its own.
      await page.selectOption("#local-principal", "admin");
      await openRules(page, files.url);
      const before = await page.locator("#rules-digest").textContent();
      const rules = JSON.parse(await page.inputValue("#rules-text"));
      rules.levels.find((level) => level.name === "peer").ttlSeconds = 10;
      await page.fill("#rules-text", JSON.stringify(rules, null, 2));
      await page.locator("#rules-problems").filter({ hasText: "No problems" }).waitFor();
      await saveRules(page);
      assert.notEqual(await page.locator("#rules-digest").textContent(), before);
      await page.selectOption("#local-principal", "bob");
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "config", title: "Offline: short-lived change" });
      await expectLevel(page, "peer", null);
      assert.match(await page.locator("#level-panel").textContent(), /pending for 10 s/);
      await submitChange(page);
      await settled(page, "#request-body", () => page.locator("#created-link").click(), ["loaded"]);
      // Whatever the machine's load, the countdown shows at most the level's 10 s.
      assert.match(await page.locator("#countdown").textContent(), /^(expires in 00:00:(0\d|10)|expiry time reached)$/);
      await page.locator('#request-status[data-status="expired"]').waitFor({ timeout: 30_000 });
      assert.equal(await page.getAttribute("#cancel-button", "data-blocked"), "expired");
      const history = await page.locator("#history li").evaluateAll((items) => items.map((item) => item.dataset.action));
      assert.deepEqual(history, ["create", "expire"]);
      assert.match(await page.locator('#stages li[data-stage="peer-review"] .tag').textContent(), /^expired here$/);
      await screenshot(page, "local-request-expired");
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });
});

/**
 * In a page of local mode: a second LocalBackend over the page's own
 * IndexedDB store (the cache is the truth, as it is for the page), acting
 * as `as`, runs `body(backend)`. For what the editor does not file itself:
 * an emergency (a filing the form does not offer).
 */
async function withLocalBackend(page, as, body) {
  return page.evaluate(async ([as, body]) => {
    const engine = await import("/pkg/index.js");
    await engine.default();
    const { LocalBackend } = await import("/js/backends.js");
    const backend = await LocalBackend.open(engine);
    backend.principal = backend.principals.find((principal) => principal.id === as);
    // eslint-disable-next-line no-new-func
    return new Function("backend", `return (${body})(backend);`)(backend);
  }, [as, body.toString()]);
}

/** Saves `change(rules)` as the local rules, through the editor, as admin. */
async function saveLocalRules(page, base, change) {
  await page.selectOption("#local-principal", "admin");
  await page.goto(`${base}/#new`);
  await openRules(page, base);
  const rules = JSON.parse(await page.inputValue("#rules-text"));
  change(rules);
  await page.fill("#rules-text", JSON.stringify(rules, null, 2));
  await page.locator("#rules-problems").filter({ hasText: "No problems" }).waitFor();
  await saveRules(page);
}

describe("local mode: emergency reviews, who could approve, filters in the URL", () => {
  it("names who could approve from the demo principals, lists the open and overdue reviews, and keeps the filters in the URL", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      assert.equal(await page.isChecked("#mode-local"), true);

      // A security change filed by alice: carol could approve it now, then dave.
      await fillValidChange(page, { environment: "prod", title: "Offline: who could approve" });
      await expectLevel(page, "security", "iam-in-prod");
      await submitChange(page);
      await settled(page, "#request-body", () => page.locator("#created-link").click(), ["loaded"]);
      assert.equal(await page.getAttribute("#approvers", "data-known"), "true");
      assert.deepEqual(await namesOn(page, "#approvers li"), ["carol"]);
      assert.match(await page.locator("#approvers").textContent(), /alice, who filed it, may not approve it/);
      await settled(page, "#request-body", () => page.selectOption("#local-principal", "carol"), ["loaded"]);
      await act(page, "#approve-button");
      assert.deepEqual(await namesOn(page, "#approvers li"), ["dave"]);
      await screenshot(page, "local-approvers");

      // Emergencies at the peer level for engineers: one due at once, one tomorrow.
      await saveLocalRules(page, files.url, (rules) => {
        rules.levels.find((level) => level.name === "peer").emergency = { allowedRoles: ["engineer"], reviewWithinSeconds: 1 };
      });
      const late = await withLocalBackend(page, "alice", (backend) => backend.create({
        policyId: "config/cache", policyType: "config", changeKind: "update", title: "Offline: restore the cache",
        justification: "The cache is down and the shop with it.", emergency: { reason: "The cache is down and the shop with it." },
      }));
      assert.equal(late.status, "approved");
      await saveLocalRules(page, files.url, (rules) => {
        rules.levels.find((level) => level.name === "peer").emergency.reviewWithinSeconds = 86400;
      });
      const due = await withLocalBackend(page, "bob", (backend) => backend.create({
        policyId: "config/cache", policyType: "config", changeKind: "update", title: "Offline: flush the cache",
        justification: "A poisoned entry is served to everyone.", emergency: { reason: "A poisoned entry is served to everyone." },
      }));
      // The first falls due a second after it was filed.
      await page.waitForFunction((dueAt) => Date.now() > Date.parse(dueAt), late.emergency.review.dueAt, { polling: 100 });

      await queueLoads(page, () => page.click('.tabs a[data-route="reviews"]'), { status: "approved", emergencyReview: "open" });
      const shown = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => `${row.dataset.id} ${row.dataset.overdue}`));
      assert.deepEqual(shown, [`${late.id} true`, `${due.id} false`]);
      assert.equal(await page.getAttribute("#queue-overdue", "data-count"), "1");
      assert.match(await page.locator("#queue-overdue").textContent(), /^1 emergency review is overdue\.$/);
      await screenshot(page, "local-reviews");
      await queueLoads(page, () => page.selectOption("#q-emergencyReview", "overdue"), { status: "approved", emergencyReview: "overdue" });
      assert.deepEqual(await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id)), [late.id]);

      // Filters in the URL: reload keeps them, back restores the ones before.
      await page.reload();
      await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
      await page.locator('#queue-table[data-state="loaded"]').waitFor({ state: "attached" });
      assert.equal(await page.getAttribute("#queue-table", "data-query"), queueKey({ status: "approved", emergencyReview: "overdue" }));
      await queueLoads(page, () => page.goBack(), { status: "approved", emergencyReview: "open" });
      assert.equal(await page.inputValue("#q-emergencyReview"), "open");
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });

  it("warns of the demo stages nobody else could meet as the rules are typed, and saves all the same (needs validateRules with principals)", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      await page.selectOption("#local-principal", "admin");
      await openRules(page, files.url);
      await page.locator('#rules-warnings[data-principals="known"]').waitFor({ state: "attached" });
      // Only carol holds security, only dave security-lead: whoever files,
      // the demo rules' security stages may deadlock.
      await page.locator("#rules-warning-list").waitFor();
      const paths = () => page.locator("#rules-warning-list li").evaluateAll((items) => items.map((item) => item.dataset.path));
      assert.deepEqual(await paths(), ["levels[2].stages[0]", "levels[2].stages[1]"]);
      const draft = JSON.parse(await page.inputValue("#rules-text"));
      draft.levels.find((level) => level.name === "peer").stages[0].requiredApprovals = 2;
      await page.fill("#rules-text", JSON.stringify(draft, null, 2));
      await page.locator('#rules-warning-list li[data-path="levels[1].stages[0]"]').waitFor();
      assert.deepEqual(await paths(), ["levels[1].stages[0]", "levels[2].stages[0]", "levels[2].stages[1]"]);
      assert.match(await page.locator("#rules-problems").textContent(), /No problems/);
      await saveRules(page);
      await screenshot(page, "local-rules-warnings");
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });

  it("searches the local requests' titles and policy ids (needs q in the JS package)", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      for (const [policyId, title] of [["config/a", "Rotate the ZEBRA key"], ["config/zebra", "Rotate another key"], ["config/c", "Something else"]]) {
        await page.goto(`${files.url}/#new`);
        await fillValidChange(page, { policyId, policyType: "config", title });
        await expectLevel(page, "peer", null);
        await submitChange(page);
      }
      await queueLoads(page, () => page.goto(`${files.url}/#queue`), {});
      await page.fill("#q-search", "zebra");
      await queueLoads(page, () => page.press("#q-search", "Enter"), { q: "zebra" });
      const titles = await page.locator("#queue-list tbody tr td:first-child a").allTextContents();
      assert.deepEqual(new Set(titles), new Set(["Rotate the ZEBRA key", "Rotate another key"]));
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });
});
