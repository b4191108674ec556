// Browser tests of the policy editor against the real signoff server
// (`signoff serve --dev`, its demo rules and principals from host/demo/) and,
// for local mode, against the editor served as plain files with no server.
// Screenshots of every step land in www/test-results/.

import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { RESULTS, launchBrowser, openPage, screenshot, startServer, startStaticServer } from "./harness.js";

let server;
let browser;

async function signIn(page, principal) {
  await page.goto(`${server.url}/#signin`);
  await page.fill("#s-token", principal.token);
  await page.fill("#s-id", principal.id);
  await page.fill("#s-roles", principal.roles.join(", "));
  await page.click("#signin-submit");
  await page.locator("#signin-status").filter({ hasText: `Signed in as ${principal.id}` }).waitFor();
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

/** The codes shown next to one field (its error list). */
async function fieldCodes(page, field) {
  return page.locator(`#e-${field} li`).evaluateAll((items) => items.map((item) => item.dataset.code));
}

async function expectLevel(page, level, decidingRule) {
  await page.locator("#preview-level").filter({ hasText: new RegExp(`^${level}$`) }).waitFor();
  if (decidingRule) {
    const deciding = page.locator("#preview-explanation li.deciding");
    assert.equal(await deciding.getAttribute("data-rule"), decidingRule);
  } else {
    await page.locator("#preview-explanation .default-used").waitFor();
  }
}

async function openRequest(page, id) {
  await page.goto(`${server.url}/#request/${id}`);
  await page.locator("#request-level").waitFor();
}

function assertClean(page) {
  assert.deepEqual(page.problems, [], "the page logged errors");
}

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

    // Submitting shows every problem at its field and sends nothing.
    await page.click("#submit-change");
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

    await page.click("#submit-change");
    const link = page.locator("#created-link");
    await link.waitFor();
    assert.match(await page.locator("#submit-status").textContent(), /level security, status pending/);
    requestId = (await link.getAttribute("href")).replace("#request/", "");
    await link.click();
    await page.locator("#request-level").waitFor();
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

    // Clicking a disabled button sends nothing.
    await page.click("#approve-button", { force: true });
    await page.waitForTimeout(300);
    assert.equal(await page.locator("#request-stage").textContent(), "security-review");
    assert.equal(await page.locator("#approve-status").textContent(), "");
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
    await page.fill("#comment-text", "Looks fine from the engineering side.");
    await page.click("#comment-button");
    await page.locator('#history li[data-action="comment"]').waitFor();
    await screenshot(page, "server-request-as-bob");

    // carol (security) approves the first stage.
    await signIn(page, server.principals.carol);
    await openRequest(page, requestId);
    assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
    await page.fill("#approve-text", "Scoped correctly.");
    await page.click("#approve-button");
    await page.locator("#request-stage").filter({ hasText: "lead-signoff" }).waitFor();
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
    await page.click("#approve-button");
    await page.locator('#request-status[data-status="approved"]').waitFor();
    assert.equal(await page.locator("#countdown").count(), 0);
    assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_pending");
    assert.equal(await page.getAttribute("#cancel-button", "data-blocked"), "not_pending");
    const actions = await page.locator("#history li").evaluateAll((items) => items.map((item) => item.dataset.action));
    assert.deepEqual(actions, ["create", "comment", "approve", "approve"]);
    await screenshot(page, "server-request-approved");

    // The queue lists it among the approved requests.
    await page.goto(`${server.url}/#queue`);
    await page.selectOption("#q-status", "approved");
    await page.locator(`#queue-list tr[data-id="${requestId}"]`).waitFor();
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
    await page.goto(`${server.url}/#queue`);
    await page.selectOption("#q-limit", "10");
    await page.locator("#queue-list caption").filter({ hasText: "page 1" }).waitFor();
    const firstPage = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.equal(firstPage.length, 10);
    assert.equal(firstPage[0], filed[5], "the urgent request comes first");
    assert.equal(await page.isDisabled("#queue-next"), false);
    await screenshot(page, "server-queue-page-1");

    await page.click("#queue-next");
    await page.locator("#queue-list caption").filter({ hasText: "page 2" }).waitFor();
    const secondPage = await page.locator("#queue-list tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.id));
    assert.ok(secondPage.length >= 2);
    assert.equal(new Set([...firstPage, ...secondPage]).size, firstPage.length + secondPage.length, "a request came twice");
    for (const id of filed) assert.ok(firstPage.includes(id) || secondPage.includes(id), `${id} is missing`);
    assert.equal(await page.isDisabled("#queue-next"), true);
    await screenshot(page, "server-queue-page-2");

    await page.fill("#q-policyType", "network");
    await page.locator("#queue-filter button[type=submit]").click();
    await page.locator("#queue-list caption").filter({ hasText: "of type network" }).waitFor();
    const network = await page.locator("#queue-list tbody tr td:nth-child(3)").allTextContents();
    assert.deepEqual(network, ["network", "network", "network", "network"]);
    assertClean(page);
    await page.close();
  });

  it("validates a rules draft on every keystroke and saves it as admin with If-Match", async () => {
    const page = await openPage(browser.context, `${server.url}/`);

    // A non-admin sees the rules and may draft, but not save.
    await signIn(page, server.principals.alice);
    await page.goto(`${server.url}/#rules`);
    await page.locator("#rules-digest").waitFor();
    const digest = await page.locator("#rules-digest").textContent();
    assert.match(digest, /^[0-9a-f]{64}$/);
    assert.equal(await page.getAttribute("#rules-save", "aria-disabled"), "true");
    assert.match(await page.locator("#rules-save-reason").textContent(), /needs the admin role; alice holds engineer/);

    // A second tab keeps alice's view of the old rules, for later.
    const stale = await openPage(browser.context, `${server.url}/#new`);

    await signIn(page, server.principals.admin);
    await page.goto(`${server.url}/#rules`);
    await page.locator("#rules-digest").waitFor();
    assert.equal(await page.getAttribute("#rules-save", "aria-disabled"), null);
    const original = JSON.parse(await page.inputValue("#rules-text"));

    const broken = structuredClone(original);
    broken.defaultLevel = "nope";
    broken.levels[1].stages[0].requiredApprovals = 0;
    await page.fill("#rules-text", JSON.stringify(broken, null, 2));
    await page.locator("#rules-problem-list").waitFor();
    const problems = await page.locator("#rules-problem-list tbody tr").evaluateAll((rows) => rows.map((row) => `${row.dataset.path} ${row.dataset.code}`));
    assert.deepEqual(problems, ["levels[1].stages[0].requiredApprovals out_of_range", "defaultLevel unknown_level"]);
    await screenshot(page, "server-rules-invalid-draft");

    await page.fill("#rules-text", "{ not json");
    await page.locator('#rules-problem-list tr[data-code="invalid_type"]').waitFor();

    // Restrict the policy types: a valid document, saved with the digest it was based on.
    const restricted = { ...structuredClone(original), policyTypes: ["iam", "docs", "config", "network"] };
    await page.fill("#rules-text", JSON.stringify(restricted, null, 2));
    await page.locator("#rules-problems").filter({ hasText: "No problems" }).waitFor();
    await page.click("#rules-save");
    await page.locator("#rules-save-status").filter({ hasText: "Saved" }).waitFor();
    const newDigest = await page.locator("#rules-digest").textContent();
    assert.notEqual(newDigest, digest);
    assert.match(await page.locator("#rules-in-force").textContent(), /allowed policy types: iam, docs, config, network/);
    await screenshot(page, "server-rules-saved");

    // Saving from the stale digest is refused with 412 and explained.
    await signIn(stale, server.principals.admin);
    await stale.goto(`${server.url}/#rules`);
    await stale.locator("#rules-digest").waitFor();
    await page.fill("#rules-text", JSON.stringify({ ...original, policyTypes: ["iam", "docs", "config", "network", "dns"] }, null, 2));
    await stale.fill("#rules-text", JSON.stringify(original, null, 2));
    await page.click("#rules-save");
    await page.locator("#rules-save-status").filter({ hasText: "Saved" }).waitFor();
    await stale.click("#rules-save");
    await stale.locator("#rules-save-status").filter({ hasText: "precondition_failed" }).waitFor();
    assert.match(await stale.locator("#rules-save-status").textContent(), /Someone changed the rules/);
    await screenshot(stale, "server-rules-conflict");

    // A form that still holds the old rules validates locally, and shows the
    // server's refusal at the field when it files.
    const form = await openPage(browser.context, `${server.url}/`);
    await signIn(form, server.principals.alice);
    await form.goto(`${server.url}/#new`);
    await fillValidChange(form, { policyType: "network", title: "Open the metrics port" });
    await expectLevel(form, "peer", null);
    await page.fill("#rules-text", JSON.stringify({ ...original, policyTypes: ["iam", "docs"] }, null, 2));
    await page.click("#rules-save");
    await page.locator("#rules-save-status").filter({ hasText: "Saved" }).waitFor();
    await form.click("#submit-change");
    await form.locator('#e-policyType li[data-code="not_allowed"]').waitFor();
    assert.match(await form.locator("#submit-status").textContent(), /was not filed.*invalid_request/);
    // The page caught up with the new rules: no stale level is left on show.
    await form.locator("#validation-summary").filter({ hasText: "1 problem" }).waitFor();
    assert.equal(await form.locator("#preview-level").count(), 0);
    assert.match(await form.locator("#policy-types").innerHTML(), /value="docs"/);
    await screenshot(form, "server-error-at-field");

    // Put the demo rules back.
    await page.click("#rules-revert");
    await page.fill("#rules-text", JSON.stringify(original, null, 2));
    await page.click("#rules-save");
    await page.locator("#rules-save-status").filter({ hasText: "Saved" }).waitFor();
    assert.equal(await page.locator("#rules-digest").textContent(), digest);
    for (const tab of [page, stale, form]) {
      assertClean(tab);
      await tab.close();
    }
  });

  it("refuses a bad token at sign-in and keeps the token in session storage only", async () => {
    const page = await openPage(browser.context, `${server.url}/#signin`);
    await page.fill("#s-token", "not-a-token");
    await page.fill("#s-id", "mallory");
    await page.click("#signin-submit");
    await page.locator("#signin-status").filter({ hasText: "refused this token" }).waitFor();
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

describe("the IndexedDB cache of local mode", () => {
  it("keeps the cache contract: versions, atomic commits, ordered ranges, TTLs", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      const result = await page.evaluate(async () => {
        const { IndexedDbCache } = await import("/js/idb-cache.js");
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
      await page.click("#submit-change");
      const link = page.locator("#created-link");
      await link.waitFor();
      const id = (await link.getAttribute("href")).replace("#request/", "");
      await link.click();
      await page.locator("#request-level").waitFor();
      assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "self_approval");
      await screenshot(page, "local-request-as-alice");

      await page.selectOption("#local-principal", "carol");
      await page.locator("#approve-button:not([aria-disabled])").waitFor();
      await page.click("#approve-button");
      await page.locator("#request-stage").filter({ hasText: "lead-signoff" }).waitFor();

      await page.selectOption("#local-principal", "bob");
      assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "not_eligible");

      await page.selectOption("#local-principal", "dave");
      await page.click("#approve-button");
      await page.locator('#request-status[data-status="approved"]').waitFor();
      await screenshot(page, "local-request-approved");

      // Everything is still there after a reload: it lives in IndexedDB.
      await page.reload();
      await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
      await page.locator('#request-status[data-status="approved"]').waitFor();
      await page.goto(`${files.url}/#queue`);
      await page.selectOption("#q-status", "approved");
      await page.locator(`#queue-list tr[data-id="${id}"]`).waitFor();
      await screenshot(page, "local-queue");

      // Another request, cancelled by its requester.
      await page.selectOption("#local-principal", "bob");
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "docs", title: "Offline: docs change" });
      await expectLevel(page, "auto", "docs-are-auto-approved");
      await page.fill("#f-policyType", "config");
      await expectLevel(page, "peer", null);
      await page.click("#submit-change");
      await page.locator("#created-link").click();
      await page.locator("#cancel-button").waitFor();
      await page.click("#cancel-button");
      await page.locator('#request-status[data-status="cancelled"]').waitFor();

      // One more, rejected by a peer: a reason is required first.
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "config", title: "Offline: config change" });
      await expectLevel(page, "peer", null);
      await page.click("#submit-change");
      await page.locator("#created-link").click();
      await page.locator("#reject-button").waitFor();
      await page.selectOption("#local-principal", "alice");
      await page.locator("#reject-button:not([aria-disabled])").waitFor();
      await page.click("#reject-button");
      await page.locator("#reject-status").filter({ hasText: "A reason is required" }).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.id), "reject-text");
      await page.fill("#reject-text", "Config changes go through the weekly window.");
      await page.click("#reject-button");
      await page.locator('#request-status[data-status="rejected"]').waitFor();
      assert.match(await page.locator("#rejection").textContent(), /Rejected by alice at stage peer-review: “Config changes go through the weekly window.”/);
      await screenshot(page, "local-request-rejected");

      // Local rules: the admin shortens the peer level to 2 s; a request at
      // that level counts down and expires on its own.
      await page.selectOption("#local-principal", "admin");
      await page.goto(`${files.url}/#rules`);
      await page.locator("#rules-digest").waitFor();
      const before = await page.locator("#rules-digest").textContent();
      const rules = JSON.parse(await page.inputValue("#rules-text"));
      rules.levels.find((level) => level.name === "peer").ttlSeconds = 2;
      await page.fill("#rules-text", JSON.stringify(rules, null, 2));
      await page.locator("#rules-problems").filter({ hasText: "No problems" }).waitFor();
      await page.click("#rules-save");
      await page.locator("#rules-save-status").filter({ hasText: "Saved" }).waitFor();
      assert.notEqual(await page.locator("#rules-digest").textContent(), before);
      await page.selectOption("#local-principal", "bob");
      await page.goto(`${files.url}/#new`);
      await fillValidChange(page, { policyType: "config", title: "Offline: short-lived change" });
      await expectLevel(page, "peer", null);
      assert.match(await page.locator("#level-panel").textContent(), /pending for 2 s/);
      await page.click("#submit-change");
      await page.locator("#created-link").click();
      await page.locator("#countdown").waitFor();
      assert.match(await page.locator("#countdown").textContent(), /^expires in 00:00:0[12]$/);
      await page.locator('#request-status[data-status="expired"]').waitFor({ timeout: 10_000 });
      assert.equal(await page.getAttribute("#cancel-button", "data-blocked"), "expired");
      const history = await page.locator("#history li").evaluateAll((items) => items.map((item) => item.dataset.action));
      assert.deepEqual(history, ["create", "expire"]);
      await screenshot(page, "local-request-expired");
      assertClean(page);
      await page.close();
    } finally {
      await files.stop();
    }
  });
});
