// Types of `signoff/conformance`.
import type { Cache } from "./web/index.js";

/** One check of the cache contract. */
export interface ConformanceCheck {
  name: string;
  ok: boolean;
  /** What the cache did wrong, when `ok` is false. */
  message?: string;
}

/** The outcome of `checkCache`: `ok` only when every check passed. */
export interface ConformanceReport {
  ok: boolean;
  checks: ConformanceCheck[];
}

/**
 * Runs the cache contract (`get`, `commit`, `range`) against `cache`:
 * versioned puts, failed checks that change nothing, versions never reused,
 * deletes, `concurrency` (default 32) concurrent compare-and-swap increments
 * counted exactly, and ordered index ranges with paging. It writes only keys
 * and indexes under a fresh random prefix, and deletes them at the end.
 */
export function checkCache(cache: Cache, options?: { concurrency?: number }): Promise<ConformanceReport>;
