// A signoff cache over a JavaScript `Map`: the cache contract of docs/CONTRACT.md section 6
// (`get`, `commit`, `range`) in a few lines, answering synchronously.
//
// Run it with `node wasm/examples/map-cache.mjs` once the package is built
// (`cargo xtask js`); wasm/tests/examples.test.mjs runs it too.
import init, { ApprovalManager } from "signoff";

/** Orders index entries by sortKey, then member (plain string comparison). */
function compare(a, b) {
  if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
  if (a.member !== b.member) return a.member < b.member ? -1 : 1;
  return 0;
}

/** The first position in the sorted `list` whose entry is after `entry`. */
function after(list, entry) {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compare(list[middle], entry) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** An in-memory cache: values with versions and TTLs, and sorted indexes. */
export class MapCache {
  #values = new Map(); // key -> { value, version, expiresAt }
  #indexes = new Map(); // index name -> entries sorted by (sortKey, member)
  #lastVersion = 0;
  #clock;

  /** `clock` (epoch milliseconds) measures TTLs; give it the manager's clock. */
  constructor({ clock = Date.now } = {}) {
    this.#clock = clock;
  }

  #live(key) {
    const stored = this.#values.get(key);
    if (stored && stored.expiresAt <= this.#clock()) {
      this.#values.delete(key);
      return undefined;
    }
    return stored;
  }

  get(key) {
    const stored = this.#live(key);
    return stored ? { value: stored.value, version: stored.version } : null;
  }

  commit(batch) {
    // All or nothing: every check first, then every write, with no `await`
    // in between, so no other commit can interleave.
    for (const { key, version } of batch.checks) {
      if ((this.#live(key)?.version ?? null) !== version) return false;
    }
    for (const key of batch.deletes) this.#values.delete(key);
    const now = this.#clock();
    for (const { key, value, ttlMs } of batch.puts) {
      const expiresAt = ttlMs == null ? Infinity : now + ttlMs;
      this.#values.set(key, { value, version: ++this.#lastVersion, expiresAt });
    }
    for (const { index, sortKey, member } of batch.indexRemoves) {
      const list = this.#indexes.get(index) ?? [];
      const position = after(list, { sortKey, member }) - 1;
      if (position >= 0 && compare(list[position], { sortKey, member }) === 0) list.splice(position, 1);
    }
    for (const { index, sortKey, member } of batch.indexAdds) {
      if (!this.#indexes.has(index)) this.#indexes.set(index, []);
      const list = this.#indexes.get(index);
      const position = after(list, { sortKey, member });
      const previous = list[position - 1];
      if (!previous || compare(previous, { sortKey, member }) !== 0) list.splice(position, 0, { sortKey, member });
    }
    return true;
  }

  range(index, afterEntry, limit) {
    const list = this.#indexes.get(index) ?? [];
    const start = afterEntry ? after(list, afterEntry) : 0;
    return list.slice(start, start + limit).map(({ sortKey, member }) => ({ sortKey, member }));
  }
}

export const rules = {
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
  rules: [{ name: "production iam", when: { policyTypes: ["iam"], environments: ["prod"] }, level: "security" }],
};

/** Files a change, approves it through both stages, and lists what is done. */
export async function main() {
  await init();
  const manager = new ApprovalManager({ rules, cache: new MapCache() });
  const change = {
    policyId: "iam/admins",
    policyType: "iam",
    changeKind: "update",
    environment: "prod",
    title: "Add bob to admins",
    justification: "Bob joins the on-call rotation.",
  };
  const request = await manager.create(change, { id: "alice", roles: ["engineer"] });
  console.log(`${request.id}: ${request.level}, ${request.status} at ${request.stage}`);
  const reviewed = await manager.approve(request.id, { id: "bob", roles: ["engineer"] }, { comment: "looks right" });
  console.log(`after bob: ${reviewed.status} at ${reviewed.stage}`);
  const approved = await manager.approve(request.id, { id: "carol", roles: ["security"] });
  console.log(`after carol: ${approved.status}`);
  const { items } = await manager.list({ status: "approved" });
  console.log(`approved requests: ${items.length}`);
  return approved;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
