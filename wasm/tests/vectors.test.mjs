// The conformance vectors of tests/vectors/ through the JavaScript package,
// following the format of tests/README.md. Every case must give the answers
// the native core gives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";

import {
  ApprovalManager,
  MemoryCache,
  SignoffError,
  previewChange,
  simulateRules,
  validateChange,
  validatePrincipal,
  validateRules,
} from "signoff";

import { pathToFileURL } from "node:url";

// SIGNOFF_VECTORS points the runner at another folder (to check that it fails).
const VECTORS = process.env.SIGNOFF_VECTORS
  ? pathToFileURL(`${process.env.SIGNOFF_VECTORS.replace(/\/$/, "")}/`)
  : new URL("../../tests/vectors/", import.meta.url);
const MINIMUM_CASES = 80;

/** Expands `$repeat` and `$concat`, depth first. */
function expand(value) {
  if (Array.isArray(value)) return value.map(expand);
  if (value === null || typeof value !== "object") return value;
  if (Object.hasOwn(value, "$repeat")) return expand(value.$repeat).repeat(value.count);
  if (Object.hasOwn(value, "$concat")) return value.$concat.map(expand).join("");
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, expand(item)]));
}

/** The subset comparison: `null` when `actual` matches, else where it does not. */
function mismatch(expected, actual, path = "$") {
  if (expected === null) {
    return actual === null || actual === undefined ? null : `${path}: expected null, got ${JSON.stringify(actual)}`;
  }
  if (expected === "$present") {
    return actual === null || actual === undefined ? `${path}: expected a value` : null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path}: expected an array, got ${JSON.stringify(actual)}`;
    if (actual.length !== expected.length) {
      return `${path}: expected ${expected.length} items, got ${actual.length}: ${JSON.stringify(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const found = mismatch(expected[i], actual[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) {
      return `${path}: expected an object, got ${JSON.stringify(actual)}`;
    }
    for (const [key, item] of Object.entries(expected)) {
      const found = mismatch(item, actual[key], `${path}.${key}`);
      if (found) return found;
    }
    return null;
  }
  if (typeof expected === "number") {
    return typeof actual === "number" && actual === expected
      ? null
      : `${path}: expected ${expected}, got ${JSON.stringify(actual)}`;
  }
  return actual === expected ? null : `${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

function assertMatches(expected, actual, where) {
  const found = mismatch(expected, actual);
  if (found) assert.fail(`${where}: ${found}`);
}

/** Up to `most` requests of `status`, in listing order, page by page. */
async function gather(manager, status, most) {
  const found = [];
  let cursor;
  while (found.length < most) {
    const page = await manager.list({ status, limit: Math.min(500, most - found.length), cursor });
    found.push(...page.items);
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return found;
}

async function runScenario(vector) {
  let now;
  const clock = () => now;
  const ids = [...vector.ids];
  let idsRanOut = false;
  const nextId = () => {
    if (ids.length === 0) {
      idsRanOut = true;
      throw new Error("the vector's ids ran out");
    }
    return ids.shift();
  };
  const cache = new MemoryCache({ clock });
  let manager = new ApprovalManager({ rules: vector.rules, cache, clock, ids: nextId });
  let lastCursor;
  let lastDigest;
  for (const [index, step] of vector.steps.entries()) {
    const where = `step ${index} (${step.op})`;
    if (step.at !== undefined) now = Date.parse(step.at);
    assert.ok(Number.isFinite(now), `${where}: no time`);
    let value;
    let error;
    try {
      switch (step.op) {
        case "create":
          value = await (Object.hasOwn(step, "idempotencyKey")
            ? manager.create(step.change, step.principal, { idempotencyKey: step.idempotencyKey })
            : manager.create(step.change, step.principal));
          break;
        case "get":
          value = await manager.get(step.id);
          break;
        case "list": {
          const query = { ...(step.query ?? {}) };
          if (query.cursor === "$prev") {
            assert.ok(lastCursor, `${where}: the previous list step returned no nextCursor`);
            query.cursor = lastCursor;
          }
          value = await manager.list(query);
          lastCursor = value.nextCursor;
          break;
        }
        case "approve":
          value = await manager.approve(step.id, step.principal, step.body);
          break;
        case "reject":
          value = await manager.reject(step.id, step.principal, step.body);
          break;
        case "cancel":
          value = await manager.cancel(step.id, step.principal);
          break;
        case "comment":
          value = await manager.comment(step.id, step.principal, step.body);
          break;
        case "review":
          value = await manager.review(step.id, step.principal, step.body);
          break;
        case "events": {
          const query = { ...(step.query ?? {}) };
          if (query.after === "$prev") {
            assert.ok(lastCursor, `${where}: the previous page returned no nextCursor`);
            query.after = lastCursor;
          }
          value = await manager.events(query);
          lastCursor = value.nextCursor;
          break;
        }
        case "amend":
          value = await manager.amend(step.id, step.principal, step.change);
          break;
        case "replaceRules": {
          let ifMatch = step.ifMatch;
          if (ifMatch === "$digest") {
            assert.ok(lastDigest, `${where}: no earlier replaceRules answered a digest`);
            ifMatch = lastDigest;
          }
          value = await manager.replaceRules(step.rules, step.principal, ifMatch === undefined ? undefined : { ifMatch });
          lastDigest = value.digest;
          break;
        }
        case "allowedActions":
          value = await manager.allowedActions(step.id, step.principal);
          break;
        case "expireDue":
          value = await manager.expireDue(step.body);
          break;
        case "simulateRules": {
          // The requests the server's simulation examines: every pending
          // one in listing order, then the most recently decided ones.
          const limit = step.limit ?? 1000;
          const requests = await gather(manager, "pending", Infinity);
          const decided = [];
          for (const status of ["approved", "rejected", "cancelled", "expired"]) {
            decided.push(...(await gather(manager, status, limit)));
          }
          decided.sort((a, b) => (a.updatedAt === b.updatedAt ? (a.id < b.id ? -1 : 1) : a.updatedAt < b.updatedAt ? 1 : -1));
          requests.push(...decided.slice(0, limit));
          value = simulateRules(step.rules, requests, step.principals === undefined ? undefined : { principals: step.principals });
          break;
        }
        case "setRules":
          manager = new ApprovalManager({ rules: step.rules, cache, clock, ids: nextId });
          value = null;
          break;
        default:
          assert.fail(`${where}: unknown op`);
      }
    } catch (thrown) {
      error = thrown;
    }
    assert.ok(!idsRanOut, `${where}: the vector's ids ran out`);
    if (Object.hasOwn(step.expect, "ok")) {
      if (error) assert.fail(`${where}: expected success, got ${error.code}: ${error.message}`);
      assertMatches(step.expect.ok, value, where);
    } else {
      const expected = step.expect.error;
      if (!error) assert.fail(`${where}: expected ${expected.code}, got ${JSON.stringify(value)}`);
      assert.ok(error instanceof SignoffError, `${where}: not a SignoffError: ${error}`);
      assert.equal(error.code, expected.code, `${where}: ${error.message}`);
      if (Object.hasOwn(expected, "details")) assertMatches(expected.details, error.details, `${where} details`);
    }
  }
}

function runCase(vector) {
  switch (vector.kind) {
    case "validateChange":
      assertMatches(vector.expect, vector.rules == null ? validateChange(vector.change) : validateChange(vector.change, vector.rules), "validateChange");
      return undefined;
    case "validatePrincipal":
      assertMatches(vector.expect, validatePrincipal(vector.principal), "validatePrincipal");
      return undefined;
    case "validateRules":
      assertMatches(vector.expect, validateRules(vector.rules), "validateRules");
      return undefined;
    case "preview":
      assertMatches(vector.expect, previewChange(vector.change, vector.rules), "previewChange");
      return undefined;
    case "scenario":
      return runScenario(vector);
    default:
      return assert.fail(`unknown kind ${vector.kind}`);
  }
}

let ran = 0;
const files = readdirSync(VECTORS).filter((name) => name.endsWith(".json")).sort();

for (const file of files) {
  const { cases } = JSON.parse(readFileSync(new URL(file, VECTORS), "utf8"));
  test(file, async (t) => {
    for (const vector of cases) {
      await t.test(vector.name, async () => {
        await runCase(expand(vector));
        ran += 1;
      });
    }
  });
}

test(`at least ${MINIMUM_CASES} vectors ran and passed`, () => {
  assert.ok(files.length > 0, "no vector files");
  assert.ok(ran >= MINIMUM_CASES, `only ${ran} cases passed`);
});
