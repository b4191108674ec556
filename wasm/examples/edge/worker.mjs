// An edge function over signoff: a module whose default export has the
// standard `fetch(request)` handler (Request in, Response out), as Deno
// Deploy, Cloudflare Workers and others call it, serving the routes of
// `http.mjs` over a KV-like store with an atomic check-and-write
// (`kv.mjs`). The demo tokens below map to principals.
//
// Nothing touches the package before `init()` has resolved: on runtimes that
// compile the `.wasm` themselves, see `../cloudflare/worker.mjs`.
import init, { ApprovalManager, CompiledRules } from "signoff";

import { httpHandler } from "./http.mjs";
import { KvStore, kvCache } from "./kv.mjs";

export const TOKENS = {
  "alice-token": { id: "alice", roles: ["engineer"] },
  "bob-token": { id: "bob", roles: ["engineer"] },
  "carol-token": { id: "carol", roles: ["security"] },
};

export const RULES = {
  levels: [
    { name: "peer", ttlSeconds: 86400, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] },
    {
      name: "security",
      ttlSeconds: 86400,
      stages: [
        { name: "peer", requiredApprovals: 1, eligibleRoles: ["engineer"] },
        { name: "security", requiredApprovals: 1, eligibleRoles: ["security"] },
      ],
    },
  ],
  defaultLevel: "peer",
  rules: [{ name: "production", when: { environments: ["prod"] }, level: "security" }],
  rateLimit: { requests: 30, perSeconds: 60 },
};

/**
 * A `fetch` handler over `store` (a `KvStore`), with an injectable clock and
 * ids. The package is initialised, and the rules compiled, on the first call.
 */
export function createHandler({ store = new KvStore(), clock, ids } = {}) {
  let ready;
  function setup() {
    ready ??= init().then(() => {
      const rules = new CompiledRules(RULES);
      const manager = new ApprovalManager({ rules, cache: kvCache(store), clock, ids });
      return { rules, manager };
    });
    return ready;
  }
  return httpHandler({
    managerFor: async () => (await setup()).manager,
    rules: async () => (await setup()).rules,
    principalOf: (token) => (Object.hasOwn(TOKENS, token) ? TOKENS[token] : undefined),
  });
}

export default { fetch: createHandler() };
