// A KV-like store of the kind edge platforms offer (Deno KV, a Durable
// Object's storage), kept in a Map for the example: versioned values,
// expiry, an atomic check-and-write, and listing keys by prefix in order.
// `kvCache(store)` implements signoff's cache contract over it.

/** Versioned values in a Map; every method is async, as on a real platform. */
export class KvStore {
  #entries = new Map(); // key -> { value, version, expiresAt }
  #lastVersion = 0;
  #clock;

  constructor({ clock = Date.now } = {}) {
    this.#clock = clock;
  }

  #live(key) {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= this.#clock()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** `{ value, version }` or `null`. */
  async get(key) {
    const entry = this.#live(key);
    return entry ? { value: entry.value, version: entry.version } : null;
  }

  /**
   * Applies `mutations` (`{ key, value, expirationTtl? }` puts and
   * `{ key, delete: true }` deletes) if every check (`{ key, version }`,
   * `null` for absent) holds; answers whether it did.
   */
  async atomic(checks, mutations) {
    for (const { key, version } of checks) {
      if ((this.#live(key)?.version ?? null) !== version) return false;
    }
    const now = this.#clock();
    for (const mutation of mutations) {
      if (mutation.delete) {
        this.#entries.delete(mutation.key);
      } else {
        const expiresAt = mutation.expirationTtl == null ? Infinity : now + mutation.expirationTtl;
        this.#entries.set(mutation.key, { value: mutation.value, version: ++this.#lastVersion, expiresAt });
      }
    }
    return true;
  }

  /** Up to `limit` live `{ key, value }` with `prefix`, in key order, after `start`. */
  async list({ prefix, start = "", limit }) {
    const keys = [...this.#entries.keys()].filter((key) => key.startsWith(prefix) && key > start).sort();
    const found = [];
    for (const key of keys) {
      if (found.length === limit) break;
      const entry = this.#live(key);
      if (entry) found.push({ key, value: entry.value });
    }
    return found;
  }
}

const VALUE = "v/";
const INDEX = "i/";

/** The key of an index entry: ordered by sortKey, then member. */
function entryKey(index, { sortKey, member }) {
  return `${INDEX}${index}/${sortKey}\u0000${member}`;
}

/** signoff's cache contract (docs/CONTRACT.md section 6) over a `KvStore`. */
export function kvCache(store) {
  return {
    async get(key) {
      return store.get(VALUE + key);
    },
    async commit(batch) {
      const checks = batch.checks.map(({ key, version }) => ({ key: VALUE + key, version }));
      const mutations = [
        ...batch.deletes.map((key) => ({ key: VALUE + key, delete: true })),
        ...batch.puts.map(({ key, value, ttlMs }) => ({ key: VALUE + key, value, expirationTtl: ttlMs })),
        ...batch.indexRemoves.map((change) => ({ key: entryKey(change.index, change), delete: true })),
        ...batch.indexAdds.map((change) => ({
          key: entryKey(change.index, change),
          value: { sortKey: change.sortKey, member: change.member },
        })),
      ];
      return store.atomic(checks, mutations);
    },
    async range(index, after, limit) {
      const prefix = `${INDEX}${index}/`;
      const start = after ? entryKey(index, after) : "";
      const found = await store.list({ prefix, start, limit });
      return found.map(({ value }) => value);
    },
  };
}
