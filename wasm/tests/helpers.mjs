// Shared fixtures of the Node suites: rules, changes, principals, and caches
// that answer synchronously, with Promises, or that yield inside commits.
import assert from "node:assert/strict";

import { SignoffError } from "signoff";
import { MapCache } from "../examples/map-cache.mjs";

export { MapCache };

export const T0 = Date.parse("2026-01-01T00:00:00.000Z");

export const rules = {
  levels: [
    { name: "auto", ttlSeconds: 3600, stages: [] },
    { name: "peer", ttlSeconds: 3600, stages: [{ name: "review", requiredApprovals: 2, eligibleRoles: ["engineer"] }] },
    { name: "crowd", ttlSeconds: 3600, stages: [{ name: "everyone", requiredApprovals: 64, eligibleRoles: [] }] },
  ],
  defaultLevel: "peer",
  rules: [
    { name: "docs", when: { policyTypes: ["docs"] }, level: "auto" },
    { name: "crowd", when: { policyTypes: ["crowd"] }, level: "crowd" },
  ],
};

export const change = Object.freeze({
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  title: "Add bob to admins",
  justification: "Bob joins the on-call rotation.",
});

export const alice = { id: "alice", roles: ["engineer"] };
export const bob = { id: "bob", roles: ["engineer"] };
export const carol = { id: "carol", roles: ["engineer"] };
export const dave = { id: "dave", roles: ["viewer"] };

/** A clock the test moves by hand. */
export function manualClock(start = T0) {
  let now = start;
  const clock = () => now;
  clock.set = (millis) => {
    now = millis;
  };
  clock.advance = (millis) => {
    now += millis;
  };
  return clock;
}

/** Ids `…0001`, `…0002`, ... */
export function sequentialIds() {
  let next = 0;
  return () => {
    next += 1;
    return `00000000-0000-4000-8000-${String(next).padStart(12, "0")}`;
  };
}

/** The same cache with every method answering a Promise. */
export function promiseCache(inner = new MapCache()) {
  return {
    get: async (key) => inner.get(key),
    commit: async (batch) => inner.commit(batch),
    range: async (index, after, limit) => inner.range(index, after, limit),
  };
}

/**
 * The same cache answering thenables that are not Promises: plain objects
 * with a `then` method, or functions with one (as a Durable Object stub's
 * RPC calls answer), settling on a later turn of the event loop.
 */
export function thenableCache(shape, inner = new MapCache()) {
  const thenable = (compute) => {
    const then = (resolve, reject) => {
      setImmediate(() => {
        try {
          resolve(compute());
        } catch (error) {
          reject(error);
        }
      });
    };
    if (shape === "function") {
      const callable = () => {
        throw new Error("a thenable function is not called, only awaited");
      };
      callable.then = then;
      return callable;
    }
    return { then };
  };
  return {
    get: (key) => thenable(() => inner.get(key)),
    commit: (batch) => thenable(() => inner.commit(batch)),
    range: (index, after, limit) => thenable(() => inner.range(index, after, limit)),
  };
}

/**
 * A cache whose commits first yield to the event loop (so that concurrent
 * operations interleave), then check and apply atomically, counting conflicts.
 */
export function yieldingCache(inner = new MapCache()) {
  const stats = { commits: 0, conflicts: 0 };
  return {
    stats,
    get: async (key) => {
      await new Promise(setImmediate);
      return inner.get(key);
    },
    commit: async (batch) => {
      await new Promise(setImmediate);
      const committed = inner.commit(batch);
      stats.commits += 1;
      if (!committed) stats.conflicts += 1;
      return committed;
    },
    range: async (index, after, limit) => inner.range(index, after, limit),
  };
}

/** Asserts that `promiseOrFn` fails with a `SignoffError` of `code`; returns it. */
export async function rejects(promiseOrFn, code) {
  let error;
  try {
    await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
  } catch (thrown) {
    error = thrown;
  }
  assert.ok(error, `expected ${code}, but it succeeded`);
  assert.ok(error instanceof SignoffError, `expected a SignoffError, got ${error}`);
  assert.ok(error instanceof Error, "a SignoffError is an Error");
  assert.equal(error.name, "SignoffError");
  assert.equal(error.code, code, error.message);
  assert.equal(typeof error.message, "string");
  return error;
}

/** Asserts that a synchronous call throws a `SignoffError` of `code`. */
export function throws(fn, code) {
  let error;
  try {
    fn();
  } catch (thrown) {
    error = thrown;
  }
  assert.ok(error instanceof SignoffError, `expected a SignoffError ${code}, got ${error}`);
  assert.equal(error.code, code, error.message);
  return error;
}

/** The `{ path, code }` of each validation item. */
export function items(details) {
  return details.map(({ path, code }) => ({ path, code }));
}
