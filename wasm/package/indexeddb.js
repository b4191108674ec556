// signoff's cache contract (docs/CONTRACT.md section 6) over IndexedDB, for
// browsers: an `ApprovalManager` keeps its requests, rate buckets and ordered
// indexes here, so the whole workflow runs in the page, also across tabs.
// The policy editor's local mode uses it (served at /pkg/indexeddb.js).
//
// Layout (one database):
//   values   key -> { value: Uint8Array, version, expiresAt? }
//   indexes  [index, 0x01 + sortKey bytes, 0x01 + member bytes] -> { sortKey, member }
//   meta     "lastVersion" -> number (versions only ever grow)
//
// Sort keys and members are stored as UTF-8 bytes inside the key, because
// IndexedDB compares binary keys byte by byte: the order is exactly the
// contract's "compared as bytes; ties break by member". Each is led by one
// 0x01 byte, which keeps that order and makes an empty sort key or member a
// non-empty binary key (some IndexedDB implementations refuse empty ones;
// version 1 of the database stored the bare bytes and is re-keyed on open).
// A commit reads its
// checks and writes its changes in one readwrite transaction over the three
// stores, so it is all or nothing: IndexedDB runs readwrite transactions over
// the same stores one after another.

const VALUES = "values";
const INDEXES = "indexes";
const META = "meta";
const LAST_VERSION = "lastVersion";

const encoder = new TextEncoder();

/** A sort key or member as it sits inside an index key (see the layout). */
function bytes(text) {
  const utf8 = encoder.encode(String(text));
  const led = new Uint8Array(utf8.length + 1);
  led[0] = 1;
  led.set(utf8, 1);
  return led;
}

/** The value bytes of a put, whatever array-like form the caller uses. */
function toBytes(value) {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  }
  if (Array.isArray(value)) return Uint8Array.from(value);
  if (typeof value === "string") return encoder.encode(value);
  throw new TypeError("a cache value must be bytes");
}

function toNumber(version) {
  return typeof version === "bigint" ? Number(version) : version;
}

/** An index change as the engine hands it over: `{ index, sortKey, member }`. */
function indexChange({ index, sortKey, member }) {
  return { index: String(index), sortKey: String(sortKey), member: String(member) };
}

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Opens (and on first use creates) the database called `name`. */
function openDatabase(name) {
  const request = indexedDB.open(name, 2);
  request.onupgradeneeded = (event) => {
    const db = request.result;
    if (event.oldVersion < 1) {
      db.createObjectStore(VALUES);
      db.createObjectStore(INDEXES);
      db.createObjectStore(META);
      return;
    }
    // Version 1 keyed index entries by the bare bytes: re-key each one.
    const indexes = request.transaction.objectStore(INDEXES);
    const rows = [];
    indexes.openCursor().onsuccess = (found) => {
      const cursor = found.target.result;
      if (cursor) {
        rows.push([cursor.key[0], cursor.value]);
        cursor.continue();
        return;
      }
      indexes.clear();
      for (const [index, { sortKey, member }] of rows) {
        indexes.put({ sortKey, member }, [index, bytes(sortKey), bytes(member)]);
      }
    };
  };
  return promised(request);
}

/**
 * A signoff cache over IndexedDB. `clock` returns epoch milliseconds and is
 * used for TTLs; a value past its TTL reads as absent (and a check expecting
 * absence passes); it stays on disk until a later put replaces it or the
 * local data is erased.
 */
export class IndexedDbCache {
  /**
   * Opens (and on first use creates) the cache stored in the database
   * `name`; `clock` (epoch milliseconds) measures TTLs.
   */
  static async open(name = "signoff", { clock = Date.now } = {}) {
    return new IndexedDbCache(await openDatabase(name), clock);
  }

  constructor(db, clock = Date.now) {
    this.db = db;
    this.clock = clock;
  }

  /** Closes the database connection. */
  close() {
    this.db.close();
  }

  live(stored) {
    return stored !== undefined && (stored.expiresAt === undefined || this.clock() < stored.expiresAt);
  }

  /** `{ value, version }` for `key`, or null when absent or past its TTL. */
  async get(key) {
    const tx = this.db.transaction(VALUES, "readonly");
    const stored = await promised(tx.objectStore(VALUES).get(String(key)));
    if (!this.live(stored)) return null;
    return { value: new Uint8Array(stored.value), version: stored.version };
  }

  /**
   * `{ value, version }` or null for each of `keys`, in order, read in one
   * readonly transaction.
   */
  async getMany(keys) {
    const tx = this.db.transaction(VALUES, "readonly");
    const values = tx.objectStore(VALUES);
    const found = await Promise.all(keys.map((key) => promised(values.get(String(key)))));
    return found.map((stored) =>
      this.live(stored) ? { value: new Uint8Array(stored.value), version: stored.version } : null,
    );
  }

  /**
   * Applies `batch` atomically when every check holds: `checks` ({ key,
   * version } where a null version means "absent"), then `deletes`, `puts`
   * ({ key, value, ttlMs? }), `indexRemoves` and `indexAdds` ({ index, sortKey,
   * member }, the package's `IndexChange`). Resolves to "committed" or "conflict".
   */
  commit(batch) {
    const checks = batch.checks ?? [];
    const puts = (batch.puts ?? []).map((put) => ({
      key: String(put.key),
      value: toBytes(put.value),
      ttlMs: put.ttlMs ?? null,
    }));
    const deletes = (batch.deletes ?? []).map(String);
    const indexAdds = (batch.indexAdds ?? []).map(indexChange);
    const indexRemoves = (batch.indexRemoves ?? []).map(indexChange);
    const now = this.clock();

    return new Promise((resolve, reject) => {
      const tx = this.db.transaction([VALUES, INDEXES, META], "readwrite");
      const values = tx.objectStore(VALUES);
      const indexes = tx.objectStore(INDEXES);
      const meta = tx.objectStore(META);
      let outcome = "committed";
      tx.oncomplete = () => resolve(outcome);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => (tx.error ? reject(tx.error) : resolve(outcome));

      // Every read is issued at once; IndexedDB answers them in order inside
      // this transaction, and the writes are issued from the last answer, so
      // nothing else can come between the checks and the writes.
      const found = new Array(checks.length);
      let lastVersion = 0;
      let pending = checks.length + 1;
      const answered = () => {
        pending -= 1;
        if (pending > 0) return;
        const holds = checks.every((check, position) => {
          const stored = found[position];
          const current = this.live(stored) ? stored.version : null;
          const expected = check.version === undefined || check.version === null ? null : toNumber(check.version);
          return current === expected;
        });
        if (!holds) {
          outcome = "conflict";
          return; // nothing written; the transaction completes empty
        }
        for (const key of deletes) values.delete(key);
        for (const put of puts) {
          lastVersion += 1;
          const stored = { value: put.value, version: lastVersion };
          if (put.ttlMs !== null) stored.expiresAt = now + toNumber(put.ttlMs);
          values.put(stored, put.key);
        }
        meta.put(lastVersion, LAST_VERSION);
        for (const { index, sortKey, member } of indexRemoves) {
          indexes.delete([index, bytes(sortKey), bytes(member)]);
        }
        for (const { index, sortKey, member } of indexAdds) {
          indexes.put({ sortKey, member }, [index, bytes(sortKey), bytes(member)]);
        }
      };
      const versionRequest = meta.get(LAST_VERSION);
      versionRequest.onsuccess = () => {
        lastVersion = versionRequest.result ?? 0;
        answered();
      };
      checks.forEach((check, position) => {
        const request = values.get(String(check.key));
        request.onsuccess = () => {
          found[position] = request.result;
          answered();
        };
      });
    });
  }

  /**
   * Up to `limit` entries `{ sortKey, member }` of `index` strictly after
   * `after` ({ sortKey, member }, which need not be in the index any more),
   * in (sortKey, member) byte order.
   */
  async range(index, after, limit) {
    const name = String(index);
    // Arrays sort after binary keys, so [name, []] is above every entry of
    // the index; [name] alone is below all of them.
    const upper = [name, []];
    const range = after
      ? IDBKeyRange.bound([name, bytes(after.sortKey), bytes(after.member)], upper, true, true)
      : IDBKeyRange.bound([name], upper, false, true);
    const tx = this.db.transaction(INDEXES, "readonly");
    const count = Math.max(0, Math.min(Number(limit) || 0, 2 ** 32 - 1));
    if (count === 0) return [];
    const rows = await promised(tx.objectStore(INDEXES).getAll(range, count));
    return rows.map((row) => ({ sortKey: row.sortKey, member: row.member }));
  }

  /** Removes every value, index entry and version counter. */
  async clear() {
    const tx = this.db.transaction([VALUES, INDEXES, META], "readwrite");
    for (const store of [VALUES, INDEXES, META]) tx.objectStore(store).clear();
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  }
}
