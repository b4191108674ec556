//! The TypeScript shapes that belong to the JS package itself: the options
//! objects of its methods, the cache interface a JS store implements, and the
//! `SignoffError` class. Every shape of the domain (changes, rules, requests,
//! pages, violations, error codes) is declared by the core's own types
//! (`signoff-core`'s `tsify` feature), so there is one definition of each.

#![allow(
    dead_code,
    reason = "the options types exist for their TypeScript declarations; JS values are parsed by the core"
)]

use serde::{Deserialize, Serialize};
use signoff_core::{Principal, ReviewFilter, ReviewOutcome, Status};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

/// Options of `create`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOptions {
    /// 1..=255 visible ASCII characters, scoped to the principal, kept 24 h.
    #[tsify(optional, type = "string | null")]
    pub idempotency_key: Option<String>,
}

/// Options of `list`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListOptions {
    /// Default `pending`.
    #[tsify(optional, type = "Status | null")]
    pub status: Option<Status>,
    /// Only this policy type.
    #[tsify(optional, type = "string | null")]
    pub policy_type: Option<String>,
    /// 1..=500, default 50.
    #[tsify(optional, type = "number | null")]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[tsify(optional, type = "string | null")]
    pub cursor: Option<String>,
    /// `full` (default) or `summary`.
    #[tsify(optional, type = "\"full\" | \"summary\" | null")]
    pub view: Option<String>,
    /// Only the pending requests this principal may approve now.
    #[tsify(optional, type = "Principal | null")]
    pub actionable_by: Option<Principal>,
    /// Only emergency requests whose review is open (or overdue).
    #[tsify(optional, type = "ReviewFilter | null")]
    pub emergency_review: Option<ReviewFilter>,
    /// Search: only the requests whose title or `policyId` holds this text,
    /// ASCII letters compared without case (1..=200 characters after
    /// trimming).
    #[tsify(optional, type = "string | null")]
    pub q: Option<String>,
    /// On whose behalf to list: under the rules' `visibility: involved`,
    /// only the requests this principal may see.
    #[tsify(optional, type = "Principal | null")]
    pub viewer: Option<Principal>,
}

/// Options of `events`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsOptions {
    /// An event id: the page starts after it.
    #[tsify(optional, type = "string | null")]
    pub after: Option<String>,
    /// 1..=500, default 100.
    #[tsify(optional, type = "number | null")]
    pub limit: Option<u32>,
}

/// Options of `review`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewOptions {
    /// `ratified` or `flagged`.
    pub outcome: ReviewOutcome,
    /// 1..=4000 characters after trimming.
    #[tsify(optional, type = "string | null")]
    pub comment: Option<String>,
}

/// Options of `replaceRules`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplaceRulesOptions {
    /// The digest the caller read (quoted or not), or `*`; without it the
    /// replacement is unconditional.
    #[tsify(optional, type = "string | null")]
    pub if_match: Option<String>,
}

/// Options of `approve`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveOptions {
    /// 1..=4000 characters after trimming.
    #[tsify(optional, type = "string | null")]
    pub comment: Option<String>,
}

/// Options of `reject`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectOptions {
    /// 1..=4000 characters after trimming.
    pub reason: String,
}

/// Options of `comment`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommentOptions {
    /// 1..=4000 characters after trimming.
    pub text: String,
}

/// Options of `expireDue`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpireOptions {
    /// 1..=500, default 100.
    #[tsify(optional, type = "number | null")]
    pub limit: Option<u32>,
}

/// Options of the `ApprovalManager` constructor.
#[derive(Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ManagerOptions {
    /// The rules document, or rules compiled once.
    #[tsify(type = "Rules | CompiledRules")]
    pub rules: (),
    /// A `MemoryCache`, or any object implementing `Cache`.
    #[tsify(type = "Cache | MemoryCache")]
    pub cache: (),
    /// Returns the current time in epoch milliseconds (default `Date.now`).
    #[tsify(optional, type = "(() => number) | null")]
    pub clock: Option<()>,
    /// Returns a new UUID string (default `crypto.randomUUID`).
    #[tsify(optional, type = "(() => string) | null")]
    pub ids: Option<()>,
}

/// Options of the `MemoryCache` constructor.
#[derive(Tsify)]
#[serde(rename_all = "camelCase")]
pub struct MemoryCacheOptions {
    /// Measures TTLs, in epoch milliseconds (default `Date.now`).
    #[tsify(optional, type = "(() => number) | null")]
    pub clock: Option<()>,
}

#[wasm_bindgen(typescript_custom_section)]
const CACHE_DECLARATIONS: &str = r#"
/** A value, or a Promise (any thenable) of it. */
export type MaybePromise<T> = T | PromiseLike<T>;

/** The answer of `Cache.commit`. */
export type CommitResult = boolean | "committed" | "conflict";

/**
 * Storage for an `ApprovalManager` (docs/CONTRACT.md section 6). Methods may answer with
 * plain values or Promises. A method that throws or rejects fails the
 * operation with `unavailable`.
 */
export interface Cache {
  /** The value at `key` with its version, or `null` (or `undefined`). */
  get(key: string): MaybePromise<CacheEntry | null | undefined>;
  /**
   * Optional: the entries of `keys`, one per key and in order (`null` or
   * `undefined` for an absent key), read in one round trip. Without it, a
   * listing page calls `get` once per item.
   */
  getMany?(keys: string[]): MaybePromise<Array<CacheEntry | null | undefined>>;
  /**
   * Atomically: if every check holds (a key has the version given, or is
   * absent for `null`), apply deletes, then puts (each put assigns a new
   * version), then index removes and adds, and answer `true`; otherwise
   * change nothing and answer `false`.
   */
  commit(batch: CacheBatch): MaybePromise<CommitResult>;
  /**
   * Up to `limit` entries of `index` in (sortKey, member) order, strictly
   * after `after` (which may no longer be in the index), or from the start.
   */
  range(index: string, after: IndexEntry | null, limit: number): MaybePromise<IndexEntry[]>;
}

/** Details of a `SignoffError`. */
export type ErrorDetails = Violation[] | { retryAfterSeconds: number };

/** Every failure of signoff is thrown (or rejected) as a `SignoffError`. */
export class SignoffError extends Error {
  readonly name: "SignoffError";
  /** The stable code. */
  readonly code: ErrorCode;
  /** Validation items (`invalid_request`), or `{ retryAfterSeconds }` (`rate_limited`). */
  readonly details?: ErrorDetails;
}
"#;
