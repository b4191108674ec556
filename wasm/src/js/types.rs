//! The TypeScript face of the package, generated from these Rust types by
//! tsify (and two hand-written declarations for what tsify cannot express:
//! the `Cache` interface with its methods, and the `SignoffError` class).
//!
//! These types describe the JSON the core reads and writes; the core's own
//! parsers and serializers stay the only place where values are decided. The
//! tests below keep them honest: every answer of the core deserializes into
//! them with unknown fields refused.

#![allow(
    dead_code,
    reason = "the input types exist for their TypeScript declarations; JS values are parsed by the core"
)]

use serde::{Deserialize, Serialize, Serializer};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

/// The kind of a change.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new policy.
    Create,
    /// A changed policy.
    Update,
    /// A removed policy.
    Delete,
}

/// The urgency of a change; pending requests list urgent first.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// The default.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

/// A metadata value: a string, a finite number or a boolean.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetadataValue {
    /// Text, at most 1024 characters.
    String(String),
    /// A finite number.
    Number(f64),
    /// A boolean.
    Bool(bool),
}

/// A change request as filed (SPEC section 2); `null` means absent.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyChange {
    /// The policy being changed, 1..=256 characters.
    pub policy_id: String,
    /// `^[a-z][a-z0-9_.-]{0,62}$`.
    pub policy_type: String,
    /// Create, update or delete.
    pub change_kind: ChangeKind,
    /// `^[a-z0-9][a-z0-9_.-]{0,62}$`.
    #[tsify(optional, type = "string | null")]
    pub environment: Option<String>,
    /// 1..=200 characters after trimming.
    pub title: String,
    /// 10..=4000 characters after trimming.
    pub justification: String,
    /// At most 256 KiB of UTF-8.
    #[tsify(optional, type = "string | null")]
    pub diff: Option<String>,
    /// 0..=100.
    #[tsify(optional, type = "number | null")]
    pub risk_score: Option<u8>,
    /// Defaults to `normal`.
    #[tsify(optional, type = "Priority | null")]
    pub priority: Option<Priority>,
    /// At most 32 keys.
    #[tsify(optional, type = "Record<string, MetadataValue> | null")]
    pub metadata: Option<std::collections::BTreeMap<String, MetadataValue>>,
}

/// An authenticated caller.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    /// Stable identifier, 1..=256 characters.
    pub id: String,
    /// Roles held (at most 256).
    pub roles: Vec<String>,
}

/// A stage of a level.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// Unique within its level.
    pub name: String,
    /// Distinct approvals needed, 1..=1000.
    pub required_approvals: u32,
    /// Roles that may approve; empty or absent means anyone.
    #[tsify(optional, type = "string[] | null")]
    pub eligible_roles: Option<Vec<String>>,
}

/// An approval level.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Level {
    /// Unique name.
    pub name: String,
    /// How long a request may stay pending, 1..=31536000.
    pub ttl_seconds: u32,
    /// Passed one after another; none means auto-approved.
    pub stages: Vec<Stage>,
}

/// A conjunction of optional conditions; `{}` matches everything.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The change's type is one of these.
    #[tsify(optional, type = "string[] | null")]
    pub policy_types: Option<Vec<String>>,
    /// The change's kind is one of these.
    #[tsify(optional, type = "ChangeKind[] | null")]
    pub change_kinds: Option<Vec<ChangeKind>>,
    /// The change's environment is one of these.
    #[tsify(optional, type = "string[] | null")]
    pub environments: Option<Vec<String>>,
    /// The policy id starts with this.
    #[tsify(optional, type = "string | null")]
    pub policy_id_prefix: Option<String>,
    /// The risk score is at least this.
    #[tsify(optional, type = "number | null")]
    pub risk_score_at_least: Option<u8>,
    /// The priority is one of these.
    #[tsify(optional, type = "Priority[] | null")]
    pub priorities: Option<Vec<Priority>>,
    /// Each key is in the change's metadata with an equal value.
    #[tsify(optional, type = "Record<string, MetadataValue> | null")]
    pub metadata: Option<std::collections::BTreeMap<String, MetadataValue>>,
}

/// A rule: a change that matches needs at least `level`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// The conditions.
    pub when: Condition,
    /// A level's name.
    pub level: String,
}

/// The per-requester token bucket.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Tokens refilled every `perSeconds`.
    pub requests: u32,
    /// The refill period.
    pub per_seconds: u32,
    /// Bucket size; defaults to `requests`.
    #[tsify(optional, type = "number | null")]
    pub burst: Option<u32>,
}

/// A rules document (SPEC section 3).
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    /// From least to most strict.
    pub levels: Vec<Level>,
    /// The level when no rule matches.
    pub default_level: String,
    /// The rules, in order.
    #[tsify(optional, type = "Rule[] | null")]
    pub rules: Option<Vec<Rule>>,
    /// The allowed policy types.
    #[tsify(optional, type = "string[] | null")]
    pub policy_types: Option<Vec<String>>,
    /// The rate limit.
    #[tsify(optional, type = "RateLimit | null")]
    pub rate_limit: Option<RateLimit>,
}

/// Stable codes of validation items.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// Missing or null.
    Required,
    /// Not in the schema.
    UnknownField,
    /// Wrong JSON type.
    InvalidType,
    /// Below the minimum.
    TooShort,
    /// Above the maximum length.
    TooLong,
    /// Too many items.
    TooMany,
    /// Too many bytes.
    TooLarge,
    /// A number out of range.
    OutOfRange,
    /// Does not match its pattern.
    InvalidFormat,
    /// A refused character.
    ForbiddenCharacter,
    /// Outside an allowed set.
    NotAllowed,
    /// Given twice.
    Duplicate,
    /// Names no level.
    UnknownLevel,
}

/// One problem of an input.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Violation {
    /// Dotted path, indexes in brackets; empty for the whole document.
    pub path: String,
    /// The stable code.
    pub code: ViolationCode,
    /// A sentence for people.
    pub message: String,
}

/// A rule that matched.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchedRule {
    /// The rule's name.
    pub rule: String,
    /// The level it asks for.
    pub level: String,
}

/// Why a change needs its level.
#[derive(Tsify, Serialize, Deserialize)]
#[tsify(missing_as_null)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LevelExplanation {
    /// Every matching rule, in document order.
    pub matched_rules: Vec<MatchedRule>,
    /// The rule that decided; `null` when none matched.
    pub deciding_rule: Option<String>,
    /// Whether the default level applied.
    pub default_used: bool,
    /// One sentence.
    pub summary: String,
}

/// The answer of `previewChange`.
#[derive(Tsify, Serialize, Deserialize)]
#[tsify(missing_as_null)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preview {
    /// Whether the change is valid.
    pub valid: bool,
    /// Every problem.
    pub errors: Vec<Violation>,
    /// The level it needs; `null` when invalid.
    pub level: Option<String>,
    /// Why; `null` when invalid.
    pub explanation: Option<LevelExplanation>,
}

/// Where a request is in its lifecycle.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting at `stage`.
    Pending,
    /// Every stage passed.
    Approved,
    /// Rejected.
    Rejected,
    /// Ran out of time.
    Expired,
    /// Withdrawn.
    Cancelled,
}

/// What a history entry records.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Filed.
    Create,
    /// Approved.
    Approve,
    /// Rejected.
    Reject,
    /// Cancelled.
    Cancel,
    /// Commented.
    Comment,
    /// Expired by the clock.
    Expire,
}

/// A counted approval.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// Who.
    pub by: String,
    /// For which stage.
    pub stage: String,
    /// When (RFC 3339).
    pub at: String,
    /// The note.
    #[tsify(optional)]
    pub comment: Option<String>,
}

/// The rejection of a request.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rejection {
    /// Who.
    pub by: String,
    /// At which stage.
    pub stage: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    pub reason: String,
}

/// One entry of a request's history.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who (`system` for expiry).
    pub actor: String,
    /// What.
    pub action: ActionKind,
    /// The stage current then.
    #[tsify(optional)]
    pub stage: Option<String>,
    /// The comment, note or reason.
    #[tsify(optional)]
    pub comment: Option<String>,
}

/// A stored change request (SPEC section 4).
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRequest {
    /// A UUID.
    pub id: String,
    /// The validated change (texts trimmed, `priority` filled in).
    pub change: PolicyChange,
    /// The requester's id.
    pub requested_by: String,
    /// The level decided at creation.
    pub level: String,
    /// Why that level.
    pub level_explanation: LevelExplanation,
    /// The level's stages as they were at creation.
    pub stages: Vec<Stage>,
    /// The lifecycle state.
    pub status: Status,
    /// The current stage; absent when terminal.
    #[tsify(optional)]
    pub stage: Option<String>,
    /// Counted approvals.
    pub approvals: Vec<Approval>,
    /// When rejected.
    #[tsify(optional)]
    pub rejection: Option<Rejection>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Moves on every change.
    pub version: u64,
    /// Digest of the rules that decided it.
    pub rules_digest: String,
    /// Everything that happened.
    pub history: Vec<HistoryEntry>,
}

/// One page of a listing.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Page {
    /// The requests.
    pub items: Vec<ApprovalRequest>,
    /// Present when more items may follow.
    #[tsify(optional)]
    pub next_cursor: Option<String>,
}

/// The answer of `expireDue`.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpireReport {
    /// How many this sweep expired.
    pub expired: u32,
    /// Their ids.
    pub ids: Vec<String>,
}

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

/// The stable error codes a `SignoffError` carries.
#[derive(Tsify, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed input; `details` lists every problem.
    InvalidRequest,
    /// No such request.
    NotFound,
    /// The request expired.
    Expired,
    /// The request is terminal.
    NotPending,
    /// The requester acted on their own request.
    SelfApproval,
    /// Approved before.
    AlreadyApproved,
    /// No eligible role for the current stage.
    NotEligible,
    /// Not allowed (cancel by someone else).
    Forbidden,
    /// The rate limit is exhausted; `details.retryAfterSeconds`.
    RateLimited,
    /// An idempotency key reused with another change, or endless contention.
    Conflict,
    /// The cache threw, rejected or broke its contract.
    Unavailable,
    /// Stored data could not be read.
    Internal,
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
 * Storage for an `ApprovalManager` (SPEC section 6). Methods may answer with
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use signoff_core::{
        Manager, MemoryCache, Principal as CorePrincipal, Rules as CoreRules, Timestamp, preview,
    };

    fn rules() -> serde_json::Value {
        json!({
            "levels": [
                { "name": "peer", "ttlSeconds": 3600, "stages": [
                    { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
                ]},
                { "name": "security", "ttlSeconds": 3600, "stages": [
                    { "name": "peer", "requiredApprovals": 1 },
                    { "name": "sec", "requiredApprovals": 1, "eligibleRoles": ["security"] }
                ]}
            ],
            "defaultLevel": "peer",
            "rules": [{ "name": "prod", "when": { "environments": ["prod"] }, "level": "security" }],
            "policyTypes": ["iam"],
            "rateLimit": { "requests": 10, "perSeconds": 60, "burst": 20 }
        })
    }

    fn change() -> serde_json::Value {
        json!({
            "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
            "environment": "prod", "title": "  Add bob ", "justification": "Bob joins on-call.",
            "riskScore": 40, "metadata": { "ticket": "SEC-1", "n": 2, "ok": true }
        })
    }

    #[test]
    fn documents_the_core_reads_fit_the_declared_inputs() {
        let _: Rules = serde_json::from_value(rules()).unwrap();
        let _: PolicyChange = serde_json::from_value(change()).unwrap();
    }

    #[test]
    fn every_answer_of_the_core_fits_the_declared_outputs() {
        let core_rules = CoreRules::parse(&rules()).unwrap();
        let manager = Manager::new(
            MemoryCache::new(),
            || Timestamp::from_millis(1_767_225_600_000),
            || uuid::Uuid::from_u128(7),
            core_rules.clone(),
        );
        let alice = CorePrincipal::new("alice", &["engineer"]);
        let bob = CorePrincipal::new("bob", &["engineer"]);
        let eve = CorePrincipal::new("eve", &["security"]);
        futures_lite(async {
            let created = manager.create(&change(), &alice, None).await.unwrap();
            let id = created.request.id.to_string();
            manager.approve(&id, &bob, Some("ok".into())).await.unwrap();
            let done = manager.reject(&id, &eve, "no".into()).await.unwrap();
            let as_json = serde_json::to_value(&done).unwrap();
            let _: ApprovalRequest = serde_json::from_value(as_json).unwrap();
            let page = manager
                .list(&signoff_core::ListQuery {
                    status: signoff_core::Status::Rejected,
                    limit: 1,
                    ..Default::default()
                })
                .await
                .unwrap();
            let _: Page = serde_json::from_value(serde_json::to_value(&page).unwrap()).unwrap();
            let report = manager.expire_due(10).await.unwrap();
            let _: ExpireReport =
                serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
        });
        for input in [change(), json!({ "title": 3 })] {
            let answer = serde_json::to_value(preview(&input, &core_rules)).unwrap();
            let _: Preview = serde_json::from_value(answer).unwrap();
        }
        let error = signoff_core::Error::RateLimited {
            retry_after_seconds: 3,
        };
        let _: ErrorCode = serde_json::from_value(json!(error.code().as_str())).unwrap();
    }

    /// Runs a future whose cache never waits.
    fn futures_lite(future: impl std::future::Future<Output = ()>) {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        assert!(future.as_mut().poll(&mut context).is_ready());
    }
}
