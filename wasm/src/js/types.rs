//! The TypeScript shapes that belong to the JS package itself: the options
//! objects of its methods, the cache interface a JS store implements, and the
//! `SignoffError` class. Every shape of the domain (changes, rules, requests,
//! pages, violations, error codes) is declared by the core's own types
//! (`signoff-core`'s `tsify` feature), so there is one definition of each.

#![allow(
    dead_code,
    reason = "the options types exist for their TypeScript declarations; JS values are parsed by the core"
)]

use serde::{Deserialize, Serialize, Serializer};
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

/// A key and the version a commit expects (`null`: must be absent).
#[derive(Tsify, Serialize)]
#[tsify(missing_as_null)]
#[serde(rename_all = "camelCase")]
pub struct CacheCheck {
    /// The key.
    pub key: String,
    /// The expected version, or `null` for "absent".
    pub version: Option<u64>,
}

/// Bytes, passed to JavaScript as a `Uint8Array`.
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A write of a commit; the cache assigns the new version.
#[derive(Tsify, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachePut<'a> {
    /// The key.
    pub key: String,
    /// The value.
    #[tsify(type = "Uint8Array")]
    pub value: Bytes<'a>,
    /// Drop the value after this many milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub ttl_ms: Option<u64>,
}

/// An entry to add to or remove from an ordered index.
#[derive(Tsify, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheIndexChange {
    /// The index.
    pub index: String,
    /// Ordering key (compare as strings; ties break by member).
    pub sort_key: String,
    /// The member.
    pub member: String,
}

/// An atomic batch: all checks hold, then every write applies; or nothing.
#[derive(Tsify, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheBatch<'a> {
    /// Preconditions.
    pub checks: Vec<CacheCheck>,
    /// Values to write.
    pub puts: Vec<CachePut<'a>>,
    /// Keys to remove.
    pub deletes: Vec<String>,
    /// Index entries to add.
    pub index_adds: Vec<CacheIndexChange>,
    /// Index entries to remove.
    pub index_removes: Vec<CacheIndexChange>,
}

/// A position in an index.
#[derive(Tsify, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexPosition {
    /// Ordering key.
    pub sort_key: String,
    /// The member.
    pub member: String,
}

/// A stored value and its version.
#[derive(Tsify, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// The bytes.
    #[tsify(type = "Uint8Array")]
    pub value: Vec<u8>,
    /// Changes on every put of the key.
    pub version: u64,
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
  range(index: string, after: IndexPosition | null, limit: number): MaybePromise<IndexPosition[]>;
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
