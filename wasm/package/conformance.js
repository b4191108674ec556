// The cache conformance check: runs the cache contract (`get`, `commit`,
// `range`) against any cache object, so that a custom cache can show that it
// is safe for signoff before it holds real requests.
//
// It writes only keys and indexes under a fresh random prefix, and deletes
// them at the end. It does not check TTLs (they need the cache's clock).

/** Whether `value` is a thenable (an object or a function with a callable `then`). */
function isThenable(value) {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof value.then === "function";
}

async function settle(value) {
  return isThenable(value) ? await value : value;
}

function bytesOf(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return undefined;
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function committed(answer) {
  if (answer === true || answer === "committed") return true;
  if (answer === false || answer === "conflict") return false;
  throw new Error(`commit answered ${JSON.stringify(answer)}, not true/"committed" or false/"conflict"`);
}

function emptyBatch() {
  return { checks: [], puts: [], deletes: [], indexAdds: [], indexRemoves: [] };
}

function compare(a, b) {
  if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
  if (a.member !== b.member) return a.member < b.member ? -1 : 1;
  return 0;
}

function show(entries) {
  return JSON.stringify(entries.map(({ sortKey, member }) => [sortKey, member]));
}

class ContractBroken extends Error {}

function expect(condition, message) {
  if (!condition) throw new ContractBroken(message);
}

/**
 * Runs the cache contract against `cache` and answers
 * `{ ok, checks: [{ name, ok, message? }] }`: `ok` only when every check
 * passed. Checks: absent keys, versioned puts, that a failed check changes
 * nothing (values and index entries), that versions are never reused for a
 * key, deletes, `concurrency` concurrent compare-and-swap increments of one
 * key counted exactly (default 32; a cache whose commit is not atomic loses
 * some), and index ranges: (sortKey, member) order, strictly after `after`
 * (present or not), `limit`, paging, removals and separate indexes.
 */
export async function checkCache(cache, { concurrency = 32 } = {}) {
  const prefix = `conformance/${Math.random().toString(36).slice(2)}${Date.now().toString(36)}/`;
  const key = (name) => prefix + name;
  const index = (name) => `${prefix}${name}`;
  const encoder = new TextEncoder();
  const written = { keys: new Set(), entries: [] };

  const get = async (name) => {
    const answer = await settle(cache.get(key(name)));
    if (answer === null || answer === undefined) return null;
    const value = bytesOf(answer.value);
    expect(value !== undefined, `get(${name}) answered a value that is not a Uint8Array or ArrayBuffer`);
    const version = typeof answer.version === "bigint" ? Number(answer.version) : answer.version;
    expect(Number.isSafeInteger(version) && version >= 0, `get(${name}) answered version ${answer.version}`);
    return { value, version };
  };
  const commit = async (partial) => {
    const batch = { ...emptyBatch(), ...partial };
    for (const put of batch.puts) written.keys.add(put.key);
    for (const add of batch.indexAdds) written.entries.push(add);
    return committed(await settle(cache.commit(batch)));
  };
  const range = async (name, after, limit) => {
    const answer = await settle(cache.range(index(name), after, limit));
    expect(Array.isArray(answer), `range(${name}) answered ${typeof answer}, not an array`);
    return answer.map(({ sortKey, member }) => ({ sortKey, member }));
  };
  const put = (name, text) => ({ key: key(name), value: encoder.encode(text) });

  const checks = [];
  async function check(name, body) {
    try {
      await body();
      checks.push({ name, ok: true });
    } catch (error) {
      checks.push({ name, ok: false, message: error instanceof ContractBroken ? error.message : `threw: ${error?.message ?? error}` });
    }
  }

  await check("get answers null for an absent key", async () => {
    expect((await get("absent")) === null, "get of a key never written answered a value");
  });

  await check("a put under an absence check is stored with a version", async () => {
    expect(await commit({ checks: [{ key: key("a"), version: null }], puts: [put("a", "one")] }), "the commit was refused");
    const stored = await get("a");
    expect(stored !== null, "the value is missing after the commit");
    expect(sameBytes(stored.value, encoder.encode("one")), "get answered other bytes than were put");
  });

  await check("a failed check changes nothing: values and index entries", async () => {
    const before = await get("a");
    const refused = await commit({
      checks: [{ key: key("a"), version: null }],
      puts: [put("a", "two"), put("b", "two")],
      indexAdds: [{ index: index("refused"), sortKey: "s", member: "m" }],
    });
    expect(!refused, "a commit whose absence check fails was applied");
    const after = await get("a");
    expect(after !== null && sameBytes(after.value, before.value) && after.version === before.version, "the checked key changed");
    expect((await get("b")) === null, "another put of the refused commit was applied");
    expect((await range("refused", null, 10)).length === 0, "an index add of the refused commit was applied");
    const stale = await commit({ checks: [{ key: key("a"), version: before.version + 1 }], puts: [put("a", "three")] });
    expect(!stale, "a commit checking a wrong version was applied");
  });

  await check("versions move on every put and are never reused for a key", async () => {
    const seen = new Set();
    let current = await get("a");
    seen.add(current.version);
    for (let i = 0; i < 3; i++) {
      expect(await commit({ checks: [{ key: key("a"), version: current.version }], puts: [put("a", `v${i}`)] }), "a commit checking the current version was refused");
      const next = await get("a");
      expect(!seen.has(next.version), `version ${next.version} was used before for the key`);
      seen.add(next.version);
      expect(!(await commit({ checks: [{ key: key("a"), version: current.version }], puts: [put("a", "stale")] })), "a commit checking a replaced version was applied");
      current = next;
    }
    expect(await commit({ checks: [{ key: key("a"), version: current.version }], deletes: [key("a")] }), "a delete was refused");
    expect((await get("a")) === null, "a deleted key is still there");
    expect(await commit({ checks: [{ key: key("a"), version: null }], puts: [put("a", "again")] }), "a put after the delete was refused");
    const again = await get("a");
    expect(!seen.has(again.version), `version ${again.version} was reused after a delete`);
  });

  await check(`${concurrency} concurrent compare-and-swap increments are all counted`, async () => {
    await commit({ puts: [put("counter", "0")] });
    const decoder = new TextDecoder();
    let conflicts = 0;
    const increment = async () => {
      for (let attempt = 0; attempt < 10 * concurrency; attempt++) {
        const current = await get("counter");
        const next = String(Number(decoder.decode(current.value)) + 1);
        if (await commit({ checks: [{ key: key("counter"), version: current.version }], puts: [put("counter", next)] })) return;
        conflicts += 1;
      }
      throw new ContractBroken("an increment kept conflicting");
    };
    await Promise.all(Array.from({ length: concurrency }, increment));
    const total = Number(decoder.decode((await get("counter")).value));
    expect(total === concurrency, `${concurrency} increments answered committed, but the counter is ${total} (${conflicts} conflicts): commits are not atomic`);
  });

  // Sort keys share prefixes, members repeat across sort keys, and entries
  // are added in no particular order, over two commits.
  const entries = [
    ["b", "2"], ["a", "9"], ["ab", "1"], ["a", "10"], ["b", "1"], ["", "z"], ["a0", "x"], ["ba", "0"], ["a", "1"], ["c", "c"],
  ].map(([sortKey, member]) => ({ sortKey, member }));
  const sorted = [...entries].sort(compare);

  await check("range answers entries in (sortKey, member) order, strictly after `after`, within `limit`", async () => {
    const adds = entries.map((entry) => ({ index: index("idx"), ...entry }));
    expect(await commit({ indexAdds: adds.slice(0, 5) }), "an index add was refused");
    expect(await commit({ indexAdds: adds.slice(5), puts: [put("other-index-marker", "x")] }), "an index add was refused");
    expect(await commit({ indexAdds: [{ index: index("idx2"), sortKey: "a", member: "other" }] }), "an index add was refused");
    const all = await range("idx", null, 100);
    expect(show(all) === show(sorted), `range from the start answered ${show(all)}, expected ${show(sorted)}`);
    const head = await range("idx", null, 3);
    expect(show(head) === show(sorted.slice(0, 3)), `range with limit 3 answered ${show(head)}`);
    for (let i = 0; i < sorted.length; i++) {
      const after = await range("idx", sorted[i], 100);
      expect(show(after) === show(sorted.slice(i + 1)), `range after ${show([sorted[i]])} answered ${show(after)}`);
    }
    const gap = { sortKey: "a", member: "5" }; // not in the index: between ("a","10") and ("a","9")
    const fromGap = await range("idx", gap, 2);
    const expected = sorted.filter((entry) => compare(entry, gap) > 0).slice(0, 2);
    expect(show(fromGap) === show(expected), `range after an absent position answered ${show(fromGap)}, expected ${show(expected)}`);
  });

  await check("paging through an index gives every entry once, in order", async () => {
    const pages = [];
    let after = null;
    for (let page = 0; page < 20; page++) {
      const items = await range("idx", after, 3);
      expect(items.length <= 3, `a page of limit 3 held ${items.length} entries`);
      pages.push(...items);
      if (items.length < 3) break;
      after = items[items.length - 1];
    }
    expect(show(pages) === show(sorted), `paging answered ${show(pages)}`);
  });

  await check("index removes take entries out; indexes are separate", async () => {
    const removed = [sorted[0], sorted[4]];
    expect(await commit({ indexRemoves: removed.map((entry) => ({ index: index("idx"), ...entry })) }), "an index remove was refused");
    const left = await range("idx", null, 100);
    const expected = sorted.filter((entry) => !removed.includes(entry));
    expect(show(left) === show(expected), `after removes, range answered ${show(left)}`);
    const other = await range("idx2", null, 100);
    expect(show(other) === show([{ sortKey: "a", member: "other" }]), `another index answered ${show(other)}`);
    expect((await range("absent", null, 10)).length === 0, "an index never written answered entries");
  });

  // Leave nothing behind.
  try {
    await settle(
      cache.commit({
        ...emptyBatch(),
        deletes: [...written.keys],
        indexRemoves: written.entries,
      }),
    );
  } catch {
    // The checks above have said what is wrong with this cache.
  }

  return { ok: checks.every((item) => item.ok), checks };
}
