// signoff on Cloudflare Workers: a Worker serving the HTTP routes of
// `../edge/http.mjs`, and a Durable Object, `SignoffCache`, that holds the
// cache on its transactional storage.
//
// - The Worker runs the `ApprovalManager` (stateless: any number of Worker
//   instances). Its cache is the Durable Object's stub: `get`, `commit` and
//   `range` are RPC calls, answering thenables, which the package awaits.
// - The Durable Object is the single place the data lives. `commit` checks
//   the expected versions and writes inside one storage transaction, so two
//   commits never interleave (compare-and-swap); `range` is one ordered
//   `storage.list({ prefix, start, limit })`. These two guarantees are what
//   the cache contract needs (wasm/README.md, "Which stores are safe").
//   Workers KV has neither, and loses approvals: do not use it as the cache.
// - `scheduled` (a Cron Trigger) expires the requests past their TTL.
//
// Configuration (`wrangler.toml` beside this file): the Durable Object
// binding `SIGNOFF_CACHE`, and `PRINCIPALS`, a secret mapping bearer tokens
// to principals (a real deployment verifies signed tokens instead).
//
// workerd compiles no WebAssembly from bytes at run time: the `.wasm` is
// imported as a module (a `CompiledWasm` module; wrangler makes every `.wasm`
// import one) and handed to `initSync` before anything else.
import { DurableObject } from "cloudflare:workers";
import wasm from "signoff/web/signoff_wasm_bg.wasm";
import { ApprovalManager, CompiledRules, initSync } from "signoff";

import { httpHandler } from "../edge/http.mjs";

initSync({ module: wasm });

export const RULES = {
  levels: [
    { name: "auto", ttlSeconds: 86400, stages: [] },
    { name: "peer", ttlSeconds: 86400, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] },
    {
      name: "security",
      ttlSeconds: 86400,
      stages: [
        { name: "peer", requiredApprovals: 1, eligibleRoles: ["engineer"] },
        { name: "security", requiredApprovals: 1, eligibleRoles: ["security"] },
      ],
    },
    { name: "quorum", ttlSeconds: 86400, stages: [{ name: "everyone", requiredApprovals: 64, eligibleRoles: [] }] },
  ],
  defaultLevel: "peer",
  rules: [
    { name: "docs", when: { policyTypes: ["docs"] }, level: "auto" },
    { name: "production", when: { environments: ["prod"] }, level: "security" },
    { name: "org-wide", when: { policyTypes: ["org"] }, level: "quorum" },
  ],
  rateLimit: { requests: 100, perSeconds: 60 },
};

const rules = new CompiledRules(RULES);

// ---------------------------------------------------------------------------
// The Durable Object: signoff's cache contract over transactional storage.

/** Storage keys: values, index entries, and the last version handed out. */
const VALUE = "v\u0000";
const INDEX = "i\u0000";
const LAST_VERSION = "meta\u0000lastVersion";

/**
 * The storage key of an index entry. Sort keys and members are ASCII without
 * NUL, so key order is (index, sortKey, member) order.
 */
function entryKey(index, sortKey, member) {
  return `${INDEX}${index}\u0000${sortKey}\u0000${member}`;
}

export class SignoffCache extends DurableObject {
  /** A stored value unless its TTL has passed: `{ value, version, expiresAt }`. */
  static live(stored, now) {
    return stored !== undefined && (stored.expiresAt === null || stored.expiresAt > now) ? stored : undefined;
  }

  /** `{ value, version }` of `key`, or `null`. */
  async get(key) {
    const stored = SignoffCache.live(await this.ctx.storage.get(VALUE + key), Date.now());
    return stored ? { value: stored.value, version: stored.version } : null;
  }

  /**
   * Applies the batch atomically if every check holds; answers whether it
   * did. The storage transaction makes the checks and the writes one step:
   * no other commit runs between them.
   */
  async commit(batch) {
    return this.ctx.storage.transaction(async (txn) => {
      const now = Date.now();
      const keys = batch.checks.map(({ key }) => VALUE + key);
      const current = keys.length > 0 ? await txn.get(keys) : new Map();
      for (const { key, version } of batch.checks) {
        if ((SignoffCache.live(current.get(VALUE + key), now)?.version ?? null) !== version) return false;
      }
      let last = (await txn.get(LAST_VERSION)) ?? 0;
      if (batch.deletes.length > 0) await txn.delete(batch.deletes.map((key) => VALUE + key));
      const writes = {};
      for (const { key, value, ttlMs } of batch.puts) {
        last += 1; // never reused: versions only grow
        writes[VALUE + key] = { value, version: last, expiresAt: ttlMs === undefined ? null : now + ttlMs };
      }
      writes[LAST_VERSION] = last;
      const removes = batch.indexRemoves.map(({ index, sortKey, member }) => entryKey(index, sortKey, member));
      if (removes.length > 0) await txn.delete(removes);
      for (const { index, sortKey, member } of batch.indexAdds) {
        writes[entryKey(index, sortKey, member)] = { sortKey, member };
      }
      await txn.put(writes);
      return true;
    });
  }

  /** Up to `limit` entries of `index` strictly after `after`, in order: one ordered read. */
  async range(index, after, limit) {
    const prefix = `${INDEX}${index}\u0000`;
    // `start` is inclusive; a key followed by NUL is the first key after it.
    const start = after ? `${entryKey(index, after.sortKey, after.member)}\u0000` : prefix;
    const found = await this.ctx.storage.list({ prefix, start, limit });
    return [...found.values()];
  }
}

// ---------------------------------------------------------------------------
// The Worker.

/** The cache of every request: the one `SignoffCache` instance's stub. */
function cacheOf(env) {
  return env.SIGNOFF_CACHE.get(env.SIGNOFF_CACHE.idFromName("signoff"));
}

/** A manager over `env`'s cache; `options` may give `clock` and `ids`. */
export function managerFor(env, options = {}) {
  return new ApprovalManager({ rules, cache: cacheOf(env), ...options });
}

function principals(env) {
  return typeof env.PRINCIPALS === "string" ? JSON.parse(env.PRINCIPALS) : (env.PRINCIPALS ?? {});
}

/** The Worker, with an injectable clock and ids (tests pass theirs). */
export function createWorker(options = {}) {
  const fetch = httpHandler({
    managerFor: (env) => managerFor(env, options),
    rules: () => rules,
    principalOf: (token, env) => {
      const table = principals(env);
      return Object.hasOwn(table, token) ? table[token] : undefined;
    },
  });
  return {
    fetch,
    /** A Cron Trigger: expires what is due, 100 requests at a time. */
    async scheduled(_controller, requestEnv) {
      const manager = managerFor(requestEnv, options);
      for (;;) {
        const report = await manager.expireDue({ limit: 100 });
        if (report.expired < 100) return;
      }
    },
  };
}

export default createWorker();
