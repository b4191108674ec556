// A signoff cache over IndexedDB, for a policy editor that keeps its requests
// in the browser. One readwrite transaction per commit makes it atomic:
// IndexedDB runs transactions over the same stores one after another, and
// every check and write of a commit happens inside one.
//
// Stores: `values` (key -> { value, version, expiresAt }), `entries`
// ([index, sortKey, member] -> { sortKey, member }; IndexedDB orders array
// keys item by item, so an index is a key range), and `meta` (the last
// version handed out).

function opened(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Resolves with `result()` once `transaction` has committed. */
function completed(transaction, result) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve(result());
    transaction.onabort = () => reject(transaction.error ?? new Error("transaction aborted"));
  });
}

/**
 * Opens (or creates) the database `name` and answers a signoff cache over it.
 * `clock` (epoch milliseconds) measures TTLs; `indexedDB` defaults to the
 * browser's.
 */
export async function openIndexedDbCache(name = "signoff", { clock = Date.now, indexedDB = globalThis.indexedDB } = {}) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    for (const store of ["values", "entries", "meta"]) open.result.createObjectStore(store);
  };
  const db = await opened(open);
  const live = (stored) =>
    stored !== undefined && (stored.expiresAt === null || clock() < stored.expiresAt) ? stored : undefined;

  return {
    get(key) {
      const transaction = db.transaction("values");
      const read = transaction.objectStore("values").get(key);
      return completed(transaction, () => {
        const stored = live(read.result);
        return stored ? { value: stored.value, version: stored.version } : null;
      });
    },

    commit(batch) {
      const transaction = db.transaction(["values", "entries", "meta"], "readwrite");
      const values = transaction.objectStore("values");
      const entries = transaction.objectStore("entries");
      const meta = transaction.objectStore("meta");
      const reads = batch.checks.map(({ key }) => values.get(key));
      const counter = meta.get("lastVersion");
      let committed = false;
      // Requests of a transaction complete in order: when the counter is
      // read, so is every checked key.
      counter.onsuccess = () => {
        const holds = batch.checks.every(({ version }, i) => (live(reads[i].result)?.version ?? null) === version);
        if (!holds) return; // nothing written: a conflict
        let last = counter.result ?? 0;
        const now = clock();
        for (const key of batch.deletes) values.delete(key);
        for (const { key, value, ttlMs } of batch.puts) {
          values.put({ value, version: ++last, expiresAt: ttlMs == null ? null : now + ttlMs }, key);
        }
        meta.put(last, "lastVersion");
        for (const { index, sortKey, member } of batch.indexRemoves) entries.delete([index, sortKey, member]);
        for (const { index, sortKey, member } of batch.indexAdds) entries.put({ sortKey, member }, [index, sortKey, member]);
        committed = true;
      };
      return completed(transaction, () => committed);
    },

    range(index, after, limit) {
      const transaction = db.transaction("entries");
      // `[index, []]` sorts after every `[index, sortKey, member]`: arrays
      // come after strings in IndexedDB's key order.
      const range = after
        ? IDBKeyRange.bound([index, after.sortKey, after.member], [index, []], true, false)
        : IDBKeyRange.bound([index], [index, []]);
      const read = transaction.objectStore("entries").getAll(range, limit);
      return completed(transaction, () => read.result);
    },

    close() {
      db.close();
    },
  };
}
