// Quality checks of the policy editor, view by view:
// - accessibility: axe-core runs on every view and no violation of impact
//   `serious` or `critical` is allowed (lesser ones are printed);
// - layout: a full-page screenshot of every view at 1280 and 390 px wide,
//   www/test-results/view-<name>-<width>.png, and no sideways scrolling at
//   390 px;
// - timing: the first render of the editor and an inbox of 50 requests,
//   printed as `FIGURE <name> <value> <unit>` lines.
// Against the real server (`signoff serve --dev`) and, for the form, the
// queue and a request, in local mode (the static files, no server).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";

import { launchBrowser, openPage, screenshot, startServer, startStaticServer } from "./harness.js";

const require = createRequire(import.meta.url);
const AXE_SOURCE = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");

// The two widths every view is checked at: a laptop and a phone.
const VIEWPORTS = [{ width: 1280, height: 900 }, { width: 390, height: 844 }];
const FAILING_IMPACTS = new Set(["serious", "critical"]);

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

// ----- helpers -----------------------------------------------------------------

/**
 * Runs `action`, waits until `selector` settles after it (a higher
 * `data-seq`, no `aria-busy`: www/README.md, "Settled states") and checks the
 * state it settled in.
 */
async function settled(page, selector, action, states) {
  const seq = () => page.evaluate((selector) => Number(document.querySelector(selector)?.dataset.seq ?? 0), selector);
  const before = await seq();
  await action();
  const handle = await page.waitForFunction(([selector, before]) => {
    const element = document.querySelector(selector);
    if (!element || element.hasAttribute("aria-busy") || Number(element.dataset.seq ?? 0) <= before) return false;
    return element.dataset.state;
  }, [selector, before]);
  const state = await handle.jsonValue();
  assert.ok(states.includes(state), `${selector} settled as ${state}, not ${states.join(" or ")}`);
}

async function signIn(page, base, principal) {
  await page.goto(`${base}/#signin`);
  await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
  await page.fill("#s-token", principal.token);
  // A sign-in lands on what awaits the principal's review: wait until it loaded.
  await settled(page, "#inbox-list", () => settled(page, "#signin-status", () => page.click("#signin-submit"), ["signed-in"]), ["loaded"]);
  assert.equal(await page.locator("#who-id").textContent(), principal.id);
}

/** A new tab signed in as `principal` (or as nobody). */
async function pageAs(base, principal) {
  const page = await openPage(browser.context, `${base}/`);
  if (principal) await signIn(page, base, principal);
  return page;
}

async function openQueue(page, base) {
  await settled(page, "#queue-table", () => page.goto(`${base}/#queue`), ["loaded"]);
}

async function openInbox(page, base) {
  await settled(page, "#inbox-list", () => page.goto(`${base}/#inbox`), ["loaded"]);
}

async function openRequest(page, base, id) {
  await settled(page, "#request-body", () => page.goto(`${base}/#request/${id}`), ["loaded"]);
  assert.equal(await page.getAttribute("#request-body", "data-id"), id);
}

async function openRules(page, base) {
  await settled(page, "#view-rules", () => page.goto(`${base}/#rules`), ["loaded"]);
}

/** Fills the change form with problems in several fields, then submits it. */
async function showProblems(page) {
  await page.fill("#f-policyType", "IAM");
  await page.fill("#f-justification", "short");
  await page.fill("#f-riskScore", "150");
  await page.fill("#f-environment", "Prod!");
  await page.click("#add-metadata");
  await page.fill(".meta-key", "bad key");
  await page.fill(".meta-value", "x");
  await settled(page, "#submit-status", () => page.click("#submit-change"), ["invalid"]);
  await page.locator("#e-title li").waitFor();
}

async function fillValidChange(page, { policyType = "iam", environment = "prod", title }) {
  await page.fill("#f-policyId", `${policyType}/admins`);
  await page.fill("#f-policyType", policyType);
  await page.selectOption("#f-changeKind", "update");
  await page.fill("#f-environment", environment);
  await page.fill("#f-riskScore", "20");
  await page.fill("#f-title", title);
  await page.fill("#f-justification", "The on-call rotation needs to rotate credentials at night.");
  await page.locator("#validation-summary").filter({ hasText: /^Valid/ }).waitFor();
}

/** Calls the API of `server` as `principal`; returns `{ status, body, headers }`. */
async function api(server, principal, method, path, body, headers = {}) {
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

/** Files a change as `principal`; returns the request. */
async function file(server, principal, change) {
  const { status, body } = await api(server, principal, "POST", "/v1/requests", {
    policyId: "iam/admins",
    policyType: "iam",
    environment: "prod",
    changeKind: "update",
    justification: "The on-call rotation needs to rotate credentials at night.",
    ...change,
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

async function act(server, principal, id, action, body = {}) {
  const { status, body: answer } = await api(server, principal, "POST", `/v1/requests/${id}/${action}`, body);
  assert.equal(status, 200, JSON.stringify(answer));
  return answer;
}

// ----- accessibility and layout --------------------------------------------------

/**
 * Runs axe-core on the page as it is now: `{ violations, incomplete }`, each
 * item `{ id, impact, help, targets }` (`incomplete`: what axe-core could
 * not decide and a person should look at).
 */
async function runAxe(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ content: AXE_SOURCE });
  return page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ["violations", "incomplete"] });
    const items = (list) => list.map((item) => ({
      id: item.id,
      impact: item.impact,
      help: item.help,
      targets: item.nodes.map((node) => node.target.join(" ")),
      // Why, element by element (for what axe-core left undecided: why it could not decide).
      why: item.nodes.map((node) => [...node.any, ...node.all, ...node.none].map((check) => check.message).join("; ")),
    }));
    return { violations: items(results.violations), incomplete: items(results.incomplete) };
  });
}

// What axe-core left undecided is printed once per rule and element.
const undecidedShown = new Set();

function noteUndecided(name, width, incomplete) {
  for (const item of incomplete) {
    item.targets.forEach((target, index) => {
      if (undecidedShown.has(`${item.id} ${target}`)) return;
      undecidedShown.add(`${item.id} ${target}`);
      console.log(`axe ${name} at ${width} px, to review by eye: ${item.id} (${item.impact}): ${item.help} at ${target} (${item.why[index]})`);
    });
  }
}

function describeViolations(violations) {
  return violations.map((v) => `  ${v.id} (${v.impact}): ${v.help}\n    at ${v.targets.join("\n    at ")}`).join("\n");
}

/**
 * Checks the view on show at each width: no serious or critical axe-core
 * violation, a screenshot `view-<name>-<width>.png`, and at phone width no
 * content wider than the window. The page is left at 1280 px.
 */
async function checkView(page, name) {
  const failures = [];
  for (const viewport of VIEWPORTS) {
    await page.setViewportSize(viewport);
    // Let the page lay itself out at the new width before it is read.
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));
    const { violations, incomplete } = await runAxe(page);
    noteUndecided(name, viewport.width, incomplete);
    const failing = violations.filter((v) => FAILING_IMPACTS.has(v.impact));
    const lesser = violations.filter((v) => !FAILING_IMPACTS.has(v.impact));
    if (lesser.length > 0) console.log(`axe ${name} at ${viewport.width} px, not failing:\n${describeViolations(lesser)}`);
    if (failing.length > 0) failures.push(`axe-core at ${viewport.width} px:\n${describeViolations(failing)}`);
    if (viewport.width <= 390) {
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      if (scrollWidth > viewport.width) failures.push(`at ${viewport.width} px the page is ${scrollWidth} px wide: it scrolls sideways`);
      // Each status in the footer ("live updates: on") stays on one line.
      const broken = await page.locator(".site-footer > span").evaluateAll((items) => items
        .filter((item) => {
          const text = document.createRange();
          text.selectNodeContents(item);
          return new Set([...text.getClientRects()].map((rect) => Math.round(rect.top))).size > 1;
        })
        .map((item) => item.textContent));
      if (broken.length > 0) failures.push(`at ${viewport.width} px the footer breaks ${JSON.stringify(broken)} over two lines`);
    }
    await screenshot(page, `view-${name}-${viewport.width}`, { numbered: false });
  }
  await page.setViewportSize(VIEWPORTS[0]);
  assert.deepEqual(failures, [], `the ${name} view:\n${failures.join("\n")}`);
}

/**
 * At phone width, the rows of the table `selector` (the inbox or the queue)
 * must read without scrolling: the whole caption and every field of every
 * row on screen, the title on at most `titleLines` lines, each other field
 * shown with its column's name; and to a screen reader it must still be a
 * table, named by its caption, with its column headers and a cell for each
 * field of each row (Chromium's accessibility tree, as a screen reader gets
 * it). The page is left at 1280 px.
 */
async function checkPhoneRows(page, selector, { titleLines = 2 } = {}) {
  await page.setViewportSize(VIEWPORTS[1]);
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));
  const layout = await page.evaluate((selector) => {
    const table = document.querySelector(selector);
    const box = table.parentElement;
    const right = (element) => Math.round(element.getBoundingClientRect().right);
    const headers = [...table.tHead.rows[0].cells].map((cell) => cell.textContent.trim());
    return {
      window: document.documentElement.clientWidth,
      box: { scroll: box.scrollWidth, client: box.clientWidth, right: right(box) },
      caption: { text: table.caption.textContent, scroll: table.caption.scrollWidth, client: table.caption.clientWidth, right: right(table.caption) },
      headers,
      rows: [...table.tBodies[0].rows].map((row) => ({
        id: row.dataset.id,
        titleLines: new Set([...row.cells[0].querySelector("a").getClientRects()].map((rect) => Math.round(rect.top))).size,
        cells: [...row.cells].map((cell, index) => {
          const rect = cell.getBoundingClientRect();
          const before = getComputedStyle(cell, "::before");
          return {
            column: headers[index],
            left: Math.round(rect.left),
            right: Math.round(rect.right),
            label: cell.dataset.label ?? null,
            labelShown: before.content !== "none" && before.content !== "normal" && before.display !== "none",
          };
        }),
      })),
    };
  }, selector);
  const problems = [];
  if (layout.box.scroll > layout.box.client) problems.push(`the table scrolls inside its box: ${layout.box.scroll} px in ${layout.box.client} px`);
  if (layout.caption.scroll > layout.caption.client || layout.caption.right > layout.window) {
    problems.push(`the caption “${layout.caption.text}” is cut: it ends at ${layout.caption.right} px`);
  }
  for (const row of layout.rows) {
    if (row.titleLines > titleLines) problems.push(`the title of ${row.id} takes ${row.titleLines} lines`);
    row.cells.forEach((cell, index) => {
      if (cell.left < 0 || cell.right > Math.min(layout.window, layout.box.right)) {
        problems.push(`${cell.column} of ${row.id} is out of sight (${cell.left} to ${cell.right} px)`);
      }
      if (index > 0 && (cell.label !== cell.column || !cell.labelShown)) {
        problems.push(`${cell.column} of ${row.id} is not labelled (${JSON.stringify(cell.label)}, shown: ${cell.labelShown})`);
      }
    });
  }

  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send("DOM.getDocument", { depth: 0 });
    const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector });
    const query = async (role) => (await cdp.send("Accessibility.queryAXTree", { nodeId, role })).nodes.filter((node) => !node.ignored);
    const name = (node) => node.name?.value?.trim() ?? "";
    const tables = await query("table");
    if (tables.length !== 1 || name(tables[0]) !== layout.caption.text) {
      problems.push(`a screen reader finds no table named “${layout.caption.text}”: ${JSON.stringify(tables.map(name))}`);
    }
    const headers = (await query("columnheader")).map(name);
    if (JSON.stringify(headers) !== JSON.stringify(layout.headers)) problems.push(`a screen reader finds the column headers ${JSON.stringify(headers)}`);
    const rows = await query("row");
    if (rows.length !== layout.rows.length + 1) problems.push(`a screen reader finds ${rows.length} rows, not ${layout.rows.length + 1}`);
    const cells = await query("cell");
    if (cells.length !== layout.rows.length * layout.headers.length) {
      problems.push(`a screen reader finds ${cells.length} cells, not ${layout.rows.length * layout.headers.length}`);
    }
  } finally {
    await cdp.detach();
  }
  await page.setViewportSize(VIEWPORTS[0]);
  assert.deepEqual(problems, [], `${selector} at ${VIEWPORTS[1].width} px:\n${problems.join("\n")}`);
}

function assertClean(page) {
  assert.deepEqual(page.problems, [], "the page logged errors");
}

/** Prints a figure in the one format the docs copy: `FIGURE <name> <value> <unit>`. */
function figure(name, value, unit) {
  console.log(`FIGURE ${name} ${Math.round(value * 10) / 10} ${unit}`);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// ----- timing -------------------------------------------------------------------------

/**
 * Installed before the page's own scripts: records when `#inbox-list` first
 * holds `rows` rows (`rowsAt`), and the first task after the next frame
 * (`paintedAt`), both from the navigation's start.
 */
function observeInboxRows(rows) {
  const marks = { rows };
  window.inboxTiming = marks;
  document.addEventListener("DOMContentLoaded", () => {
    const list = document.getElementById("inbox-list");
    new MutationObserver((_, observer) => {
      if (list.querySelectorAll("#inbox-table tbody tr").length < rows) return;
      observer.disconnect();
      marks.rowsAt = performance.now();
      requestAnimationFrame(() => setTimeout(() => {
        marks.paintedAt = performance.now();
      }, 0));
    }).observe(list, { childList: true, subtree: true });
  });
}

/** The figures of one load of the inbox, from the marks and the resource timing. */
function readInboxTiming() {
  const marks = window.inboxTiming;
  // The fetch of the inbox whose answer was drawn: the last one in before the rows.
  const fetched = performance.getEntriesByType("resource")
    .filter((entry) => entry.name.includes("actionableBy=me") && entry.responseEnd <= marks.rowsAt)
    .at(-1);
  return {
    rows: document.querySelectorAll("#inbox-table tbody tr").length,
    fetchStart: fetched.startTime,
    responseEnd: fetched.responseEnd,
    rowsAt: marks.rowsAt,
    paintedAt: marks.paintedAt,
  };
}

describe("timing figures", () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await server?.stop();
  });

  it("shows the editor's first view ready within 1 s of navigation (5 s on a first visit)", async () => {
    // A first visit: nothing of this origin is cached yet (the server's port is new).
    const page = await openPage(browser.context, `${server.url}/`);
    const timing = () => page.evaluate(() => ({
      readyMs: performance.getEntriesByName("signoff:ready")[0].startTime,
      paintMs: performance.getEntriesByType("paint").find((entry) => entry.name === "first-contentful-paint")?.startTime ?? -1,
      view: [...document.querySelectorAll("main > .view")].find((view) => !view.hidden)?.id,
    }));
    const first = await timing();
    assert.equal(first.view, "view-new");
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.ready === "true");
    const again = await timing();
    figure("first_render_ready_first_visit", first.readyMs, "ms");
    figure("first_contentful_paint_first_visit", first.paintMs, "ms");
    figure("first_render_ready_reload", again.readyMs, "ms");
    figure("first_contentful_paint_reload", again.paintMs, "ms");
    assert.ok(first.paintMs > 0, "no first-contentful-paint entry");
    // A first visit fetches and compiles the engine's WebAssembly: about
    // 0.5 s on an idle machine, but over 1 s when builds share its two
    // cores, so its bound is loose. A reload is what is held to 1 s.
    assert.ok(first.readyMs < 5000, `on a first visit the first view was ready ${Math.round(first.readyMs)} ms after navigation`);
    assert.ok(again.readyMs < 1000, `after a reload the first view was ready ${Math.round(again.readyMs)} ms after navigation`);
    assertClean(page);
    await page.close();
  });

  it("draws an inbox of 50 requests within 200 ms of their arrival", async () => {
    const { admin, alice, bob } = server.principals;
    // The demo rules let one requester file 20 requests at once, then one
    // every 2 s: this server's rules go without that limit.
    const { body: rules, headers } = await api(server, admin, "GET", "/v1/rules");
    if (rules.rateLimit) {
      const { rateLimit, ...unlimited } = rules;
      const put = await api(server, admin, "PUT", "/v1/rules", unlimited, { "If-Match": headers.get("ETag") });
      assert.equal(put.status, 200, JSON.stringify(put.body));
    }
    // Peer-level changes by alice: bob, an engineer, may approve each.
    for (let i = 0; i < 50; i += 1) {
      await file(server, alice, {
        policyId: `config/cache-${i}`,
        policyType: "config",
        environment: "staging",
        title: `Raise the cache size of shard ${i}`,
      });
    }
    const actionable = await api(server, bob, "GET", "/v1/requests?status=pending&actionableBy=me&limit=100");
    assert.equal(actionable.body.items.length, 50);

    const page = await openPage(browser.context, `${server.url}/`);
    await page.addInitScript(observeInboxRows, 50);
    await signIn(page, server.url, bob);
    assert.equal(await page.locator("#inbox-table tbody tr").count(), 50);
    // Three loads of #inbox, each a navigation (a reload keeps the tab's session).
    const samples = [];
    for (let i = 0; i < 3; i += 1) {
      await page.reload();
      await page.waitForFunction(() => window.inboxTiming?.paintedAt !== undefined);
      samples.push(await page.evaluate(readInboxTiming));
    }
    for (const sample of samples) assert.equal(sample.rows, 50);
    const figures = {
      // From the navigation's start to the 50 rows in the document, and to the next frame.
      inbox50_navigation_to_rows: median(samples.map((s) => s.rowsAt)),
      inbox50_navigation_to_frame: median(samples.map((s) => s.paintedAt)),
      // The fetch of the inbox: request sent to the last byte of its answer.
      inbox50_fetch: median(samples.map((s) => s.responseEnd - s.fetchStart)),
      // The page's own work once the answer is in: parsing it and building the
      // 50 rows, then with the style, layout and paint of the next frame.
      inbox50_render: median(samples.map((s) => s.rowsAt - s.responseEnd)),
      inbox50_render_to_frame: median(samples.map((s) => s.paintedAt - s.responseEnd)),
    };
    for (const [name, value] of Object.entries(figures)) figure(name, value, "ms");
    assert.ok(figures.inbox50_render_to_frame < 200, `50 rows took ${Math.round(figures.inbox50_render_to_frame)} ms to draw once their answer was in`);
    await screenshot(page, "inbox-50-rows", { numbered: false });
    assertClean(page);
    await page.close();
  });
});

// ----- axe-core itself ----------------------------------------------------------------

describe("axe-core in the page", () => {
  it("finds a violation planted in a view, so a clean result means something", async () => {
    const files = await startStaticServer();
    try {
      const page = await openPage(browser.context, `${files.url}/`);
      await page.evaluate(() => {
        document.getElementById("change-form").append(Object.assign(document.createElement("input"), { id: "planted" }));
      });
      const { violations } = await runAxe(page);
      const label = violations.find((violation) => violation.id === "label");
      assert.ok(label, `no label violation: ${JSON.stringify(violations)}`);
      assert.ok(FAILING_IMPACTS.has(label.impact), label.impact);
      assert.deepEqual(label.targets, ["#planted"]);
      await page.close();
    } finally {
      await files.stop();
    }
  });
});

describe("every view on the server: accessible, and laid out at 1280 and 390 px", () => {
  let server;
  let principals;
  const requests = {};

  before(async () => {
    server = await startServer();
    principals = server.principals;
  });

  after(async () => {
    await server?.stop();
  });

  it("Sign-in, and its refusal of a bad token", async () => {
    const page = await pageAs(server.url, null);
    await page.goto(`${server.url}/#signin`);
    await page.locator("#view-signin:not([hidden])").waitFor({ state: "attached" });
    await checkView(page, "signin");
    await page.fill("#s-token", "not-a-token");
    await settled(page, "#signin-status", () => page.click("#signin-submit"), ["refused"]);
    await checkView(page, "signin-refused");
    assertClean(page);
    await page.close();
  });

  it("New change: the empty form, then its problems shown", async () => {
    const page = await pageAs(server.url, principals.alice);
    await page.goto(`${server.url}/#new`);
    await page.locator("#view-new:not([hidden])").waitFor({ state: "attached" });
    await checkView(page, "new-empty");
    await showProblems(page);
    await checkView(page, "new-problems");
    assertClean(page);
    await page.close();
  });

  it("Queue and Awaiting my review, with nothing filed", async () => {
    const page = await pageAs(server.url, principals.carol);
    await openQueue(page, server.url);
    await page.locator("#queue-table p.panel").waitFor();
    await checkView(page, "queue-empty");
    await openInbox(page, server.url);
    await page.locator("#inbox-empty").waitFor();
    await checkView(page, "inbox-empty");
    assertClean(page);
    await page.close();
  });

  describe("with requests filed", () => {
    before(async () => {
      // Security-level changes (iam in prod): carol reviews, dave signs off.
      const { alice, carol, dave } = principals;
      requests.pending = await file(server, alice, { title: "Grant the on-call group admin" });
      requests.approved = await file(server, alice, {
        policyId: "iam/readers",
        title: "Let the auditors read the IAM policies",
        priority: "high",
        diff: "+ group: auditors\n+ permission: read\n",
        metadata: { ticket: "SEC-1042" },
      });
      await act(server, carol, requests.approved.id, "approve", { comment: "Scoped to read only." });
      await act(server, dave, requests.approved.id, "approve");
      requests.rejected = await file(server, alice, { policyId: "iam/root", title: "Give every engineer the root role", riskScore: 90 });
      await act(server, carol, requests.rejected.id, "reject", { reason: "Root stays with the security team." });
      // An emergency filing, approved at once, whose review is open: the
      // peer level allows it for a moment, then the rules are as before.
      const { body: rules, headers } = await api(server, principals.admin, "GET", "/v1/rules");
      const emergencyRules = structuredClone(rules);
      emergencyRules.levels.find((level) => level.name === "peer").emergency = { allowedRoles: ["engineer"], reviewWithinSeconds: 86400 };
      const put = await api(server, principals.admin, "PUT", "/v1/rules", emergencyRules, { "If-Match": headers.get("ETag") });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      try {
        requests.emergency = await file(server, alice, {
          policyId: "config/cache",
          policyType: "config",
          environment: "staging",
          title: "Restore the cache now",
          emergency: { reason: "The cache is down and the shop with it." },
        });
      } finally {
        const restore = await api(server, principals.admin, "PUT", "/v1/rules", rules, { "If-Match": put.headers.get("ETag") });
        assert.equal(restore.status, 200, JSON.stringify(restore.body));
      }
      assert.equal(requests.emergency.emergency.review.status, "open");
    });

    it("Queue, with requests", async () => {
      const page = await pageAs(server.url, principals.alice);
      await openQueue(page, server.url);
      await page.locator(`#queue-list tr[data-id="${requests.pending.id}"]`).waitFor();
      await checkView(page, "queue");
      await checkPhoneRows(page, "#queue-list");
      // Other statuses show another column; the full view adds the justification.
      await settled(page, "#queue-table", () => page.goto(`${server.url}/#queue?status=approved&view=full`), ["loaded"]);
      await page.locator(`#queue-list tr[data-id="${requests.approved.id}"]`).waitFor();
      await checkView(page, "queue-approved-full");
      await checkPhoneRows(page, "#queue-list");
      // Emergency reviews have columns of their own.
      await settled(page, "#queue-table", () => page.goto(`${server.url}/#queue?emergencyReview=open`), ["loaded"]);
      await page.locator(`#queue-list tr[data-id="${requests.emergency.id}"]`).waitFor();
      await checkView(page, "queue-reviews");
      await checkPhoneRows(page, "#queue-list");
      assertClean(page);
      await page.close();
    });

    it("Request: pending, as its requester", async () => {
      const page = await pageAs(server.url, principals.alice);
      await openRequest(page, server.url, requests.pending.id);
      assert.equal(await page.getAttribute("#approve-button", "data-blocked"), "self_approval");
      await checkView(page, "request-requester");
      assertClean(page);
      await page.close();
    });

    it("Request: pending, as an approver; and Awaiting my review with it", async () => {
      // Signing in lands on the inbox, loaded after the requests were filed.
      const page = await pageAs(server.url, principals.carol);
      await page.locator(`#inbox-table tr[data-id="${requests.pending.id}"]`).waitFor();
      // The footer says so once the live updates are on.
      await page.locator('#live-status[data-state="live"]').waitFor({ state: "attached" });
      await checkView(page, "inbox");
      await checkPhoneRows(page, "#inbox-table");
      await openRequest(page, server.url, requests.pending.id);
      assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
      await checkView(page, "request-approver");
      assertClean(page);
      await page.close();
    });

    it("Request: approved, and rejected", async () => {
      const page = await pageAs(server.url, principals.alice);
      await openRequest(page, server.url, requests.approved.id);
      assert.equal(await page.getAttribute("#request-status", "data-status"), "approved");
      await checkView(page, "request-approved");
      await openRequest(page, server.url, requests.rejected.id);
      assert.equal(await page.getAttribute("#request-status", "data-status"), "rejected");
      await checkView(page, "request-rejected");
      assertClean(page);
      await page.close();
    });
  });

  it("Rules: the rules in force, then a draft with problems", async () => {
    const page = await pageAs(server.url, principals.admin);
    await openRules(page, server.url);
    await checkView(page, "rules");
    const draft = JSON.parse(await page.inputValue("#rules-text"));
    draft.defaultLevel = "nope";
    draft.levels[1].stages[0].requiredApprovals = 0;
    await page.fill("#rules-text", JSON.stringify(draft, null, 2));
    await page.locator("#rules-problem-list").waitFor();
    await checkView(page, "rules-problems");
    assertClean(page);
    await page.close();
  });
});

// ----- the views, in local mode ------------------------------------------------------

describe("the form, the queue and a request in local mode: accessible, and laid out at 1280 and 390 px", () => {
  let files;

  before(async () => {
    files = await startStaticServer();
  });

  after(async () => {
    await files?.stop();
  });

  it("New change, Queue, Request and Awaiting my review, with no server", async () => {
    const page = await openPage(browser.context, `${files.url}/`);
    assert.equal(await page.isChecked("#mode-local"), true);
    assert.equal(await page.inputValue("#local-principal"), "alice");
    await checkView(page, "local-new-empty");
    await showProblems(page);
    await checkView(page, "local-new-problems");

    await openQueue(page, files.url);
    await page.locator("#queue-table p.panel").waitFor();
    await checkView(page, "local-queue-empty");

    await page.goto(`${files.url}/#new`);
    await page.click("#reset-change");
    await fillValidChange(page, { title: "Offline: grant admin" });
    await settled(page, "#submit-status", () => page.click("#submit-change"), ["filed"]);
    const id = await page.getAttribute("#created-link", "data-id");
    await openRequest(page, files.url, id);
    await checkView(page, "local-request-requester");

    await openQueue(page, files.url);
    await page.locator(`#queue-list tr[data-id="${id}"]`).waitFor();
    await checkView(page, "local-queue");
    await checkPhoneRows(page, "#queue-list");

    await page.selectOption("#local-principal", "carol");
    await openInbox(page, files.url);
    await page.locator(`#inbox-table tr[data-id="${id}"]`).waitFor();
    await checkView(page, "local-inbox");
    await checkPhoneRows(page, "#inbox-table");
    await openRequest(page, files.url, id);
    assert.equal(await page.getAttribute("#approve-button", "aria-disabled"), null);
    await checkView(page, "local-request-approver");
    assertClean(page);
    await page.close();
  });
});
