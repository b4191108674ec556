// `signoff/indexeddb`: the cache contract over IndexedDB, for browsers.
import type { Cache, CacheBatch, CacheEntry, IndexEntry } from "./index.js";

/**
 * A signoff cache over IndexedDB: one readwrite transaction per commit, index
 * entries ordered by the UTF-8 bytes of their sort key, then member.
 */
export declare class IndexedDbCache implements Cache {
  /**
   * Opens (and on first use creates) the cache stored in the database `name`
   * (default `"signoff"`); `clock` (epoch milliseconds, default `Date.now`)
   * measures TTLs.
   */
  static open(name?: string, options?: { clock?: () => number }): Promise<IndexedDbCache>;
  private constructor();
  get(key: string): Promise<CacheEntry | null>;
  /** Every key's entry, in order, read in one readonly transaction. */
  getMany(keys: string[]): Promise<Array<CacheEntry | null>>;
  commit(batch: CacheBatch): Promise<"committed" | "conflict">;
  range(index: string, after: IndexEntry | null, limit: number): Promise<IndexEntry[]>;
  /** Removes every value, index entry and version counter. */
  clear(): Promise<void>;
  /** Closes the database connection. */
  close(): void;
}
