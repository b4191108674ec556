//! Opaque listing cursors.
//!
//! A cursor carries the position `(sortKey, id)` of the last item returned and
//! the filter it was made for, as base64url JSON. It is opaque to callers, and
//! anything that does not decode is an `invalid_request`, never a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::cache::IndexEntry;
use crate::change::Priority;
use crate::error::Error;
use crate::input::{ListQuery, ReviewFilter};
use crate::request::{Action, ApprovalRequest, Principal, ReviewStatus, Status, may_see};
use crate::rules::{Stage, Visibility};
use crate::time::Timestamp;
use crate::validation::{Violation, ViolationCode};

/// The most item JSON one page holds: when the next item would pass it, the
/// page ends early (a page with items left holds at least one).
pub const PAGE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// The most stored bytes a summary page reads in one batch. Summary items
/// are much smaller than the stored requests they come from, so the read
/// budget is larger than the page budget, and still bounded for a guest of
/// 64 MiB.
pub const SUMMARY_READ_BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// How much of each request a listing gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum View {
    /// The stored request.
    #[default]
    Full,
    /// The stored request without `change.diff`, `change.justification`
    /// and `history`.
    Summary,
}

impl View {
    /// Every view.
    pub const ALL: [View; 2] = [View::Full, View::Summary];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Full => "full",
            View::Summary => "summary",
        }
    }
}

/// One page of a listing with its items as JSON, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    /// Each item's JSON, in listing order.
    pub items: Vec<Vec<u8>>,
    /// Present when more items may follow.
    pub next_cursor: Option<String>,
}

impl RawPage {
    /// The page as the JSON object `{ items, nextCursor? }`, built around
    /// the items' bytes without decoding them.
    pub fn to_json(&self) -> Vec<u8> {
        let items: usize = self.items.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(items + self.items.len() + 64);
        out.extend_from_slice(b"{\"items\":[");
        for (position, item) in self.items.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.push(b']');
        if let Some(cursor) = &self.next_cursor {
            out.extend_from_slice(b",\"nextCursor\":");
            // A cursor is base64url: it needs no escaping, but encode it as
            // any string to be sure.
            out.extend_from_slice(&serde_json::to_vec(cursor).unwrap_or_default());
        }
        out.push(b'}');
        out
    }
}

/// The fields of a stored request that decide whether it belongs to a
/// listing; the rest (a diff may be large) is skipped, not copied, and the
/// strings are borrowed from the stored bytes unless they hold escapes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    status: Status,
    #[serde(borrow)]
    requested_by: Cow<'a, str>,
    #[serde(borrow)]
    change: ListedChange<'a>,
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Timestamp,
    #[serde(default)]
    emergency: Option<ListedEmergency>,
}

/// The stages of a stored request, read only when a restricted viewer's
/// visibility needs them (most listings never do).
#[derive(Deserialize)]
struct ListedStages {
    #[serde(default)]
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedChange<'a> {
    #[serde(borrow)]
    policy_type: Cow<'a, str>,
    #[serde(default, borrow)]
    policy_id: Cow<'a, str>,
    #[serde(default, borrow)]
    title: Cow<'a, str>,
    #[serde(default)]
    priority: Priority,
}

impl ListedChange<'_> {
    /// Whether the title or the `policyId` holds `search` (ASCII letters
    /// lowercased), ASCII letters compared without case. Unicode case
    /// mapping is left out on purpose: its tables would add 10.6 KB gzipped
    /// to the JS package (docs/DECISIONS.md).
    fn mentions(&self, search: &str) -> bool {
        contains_ignoring_ascii_case(&self.title, search)
            || contains_ignoring_ascii_case(&self.policy_id, search)
    }
}

/// Whether `text` holds `lowercase` (whose ASCII letters are lowercase),
/// ASCII letters of `text` compared without case, without copying it.
fn contains_ignoring_ascii_case(text: &str, lowercase: &str) -> bool {
    let needle = lowercase.as_bytes();
    needle.is_empty()
        || text
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedEmergency {
    review: ListedReview,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedReview {
    status: ReviewStatus,
    due_at: Timestamp,
}

/// The sort key of an open review in the review index: its `dueAt`.
pub fn review_sort_key(due_at: Timestamp) -> String {
    crate::keys::fixed(u64::try_from(due_at.as_millis()).unwrap_or(0))
}

/// The item a stored request gives in the listing `query`, found at
/// `sort_key` in its index, or `None` when it no longer belongs there at that
/// position once brought up to date with the clock (`now`), or when
/// `restricted_to` (a viewer under `visibility: involved`) may not see it.
/// The full view passes the stored bytes through.
pub fn listed_item(
    stored: &[u8],
    sort_key: &str,
    query: &ListQuery,
    now: Timestamp,
    restricted_to: Option<&Principal>,
) -> Result<Option<Vec<u8>>, Error> {
    let Ok(listed) = serde_json::from_slice::<Listed>(stored) else {
        // Not a request this build can read: not part of any listing.
        return Ok(None);
    };
    // A pending request past its deadline is expired, whatever the store
    // says yet: it has left the pending listing, and joins the expired one
    // once stored so (the expired listing sweeps first).
    let due = listed.status == Status::Pending && now >= listed.expires_at;
    let of_type = query
        .policy_type
        .as_ref()
        .is_none_or(|policy_type| *policy_type == listed.change.policy_type);
    let at_position = match query.emergency_review {
        Some(filter) => listed.emergency.as_ref().is_some_and(|emergency| {
            emergency.review.status == ReviewStatus::Open
                && review_sort_key(emergency.review.due_at) == sort_key
                && (filter == ReviewFilter::Open || emergency.review.due_at <= now)
        }),
        None => {
            crate::keys::listing_sort_key_of(
                listed.status,
                listed.change.priority,
                listed.created_at,
                listed.updated_at,
            ) == sort_key
        }
    };
    let found = query
        .search
        .as_deref()
        .is_none_or(|search| listed.change.mentions(search));
    let mut belongs = !due && listed.status == query.status && of_type && found && at_position;
    if belongs && let Some(viewer) = restricted_to {
        belongs = serde_json::from_slice::<ListedStages>(stored).is_ok_and(|read| {
            may_see(
                Visibility::Involved,
                &listed.requested_by,
                &read.stages,
                viewer,
            )
        });
    }
    if belongs && let Some(principal) = &query.actionable_by {
        belongs = may_approve_now(stored, principal, now);
    }
    if !belongs {
        return Ok(None);
    }
    match query.view {
        View::Full => Ok(Some(stored.to_vec())),
        View::Summary => summary(stored).map(Some),
    }
}

/// Whether `principal` may approve the stored request now: the answer the
/// approval itself would give, from [`ApprovalRequest::apply`].
fn may_approve_now(stored: &[u8], principal: &Principal, now: Timestamp) -> bool {
    let Ok(mut request) = serde_json::from_slice::<ApprovalRequest>(stored) else {
        return false;
    };
    request.catch_up(now);
    request
        .apply(&Action::Approve { comment: None }, principal, now)
        .is_ok()
}

/// The fields of a request that the summary view leaves out.
pub const SUMMARY_OMITS: [&str; 1] = ["history"];

/// The fields of a request's `change` that the summary view leaves out.
pub const SUMMARY_OMITS_FROM_CHANGE: [&str; 2] = ["justification", "diff"];

/// A stored request without the fields [`SUMMARY_OMITS`] and
/// [`SUMMARY_OMITS_FROM_CHANGE`] name.
fn summary(stored: &[u8]) -> Result<Vec<u8>, Error> {
    let internal = |error: serde_json::Error| Error::Internal(error.to_string());
    let mut value: serde_json::Value = serde_json::from_slice(stored).map_err(internal)?;
    if let Some(object) = value.as_object_mut() {
        for field in SUMMARY_OMITS {
            object.remove(field);
        }
        if let Some(change) = object.get_mut("change").and_then(|c| c.as_object_mut()) {
            for field in SUMMARY_OMITS_FROM_CHANGE {
                change.remove(field);
            }
        }
    }
    serde_json::to_vec(&value).map_err(internal)
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// The requests, in listing order.
    pub items: Vec<ApprovalRequest>,
    /// Present when more items may follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorData {
    s: Status,
    t: Option<String>,
    k: String,
    m: String,
    /// The `actionableBy` principal's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
    /// The `emergencyReview` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<ReviewFilter>,
    /// The search text `q`, as [`search_digest`]: a cursor stays short
    /// whatever the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
}

/// The filters a cursor is bound to.
#[derive(PartialEq)]
struct Filters {
    status: Status,
    policy_type: Option<String>,
    actionable_by: Option<String>,
    emergency_review: Option<ReviewFilter>,
    search: Option<String>,
}

impl Filters {
    fn of(query: &ListQuery) -> Self {
        Self {
            status: query.status,
            policy_type: query.policy_type.clone(),
            actionable_by: query
                .actionable_by
                .as_ref()
                .map(|principal| principal.id.clone()),
            emergency_review: query.emergency_review,
            search: query.search.as_deref().map(search_digest),
        }
    }
}

/// What a cursor keeps of a search text: the first 16 hex digits of its
/// SHA-256, enough to tell one search from another.
fn search_digest(search: &str) -> String {
    let mut digest = crate::rules::sha256_hex(search);
    digest.truncate(16);
    digest
}

/// The longest cursor accepted, well above any cursor this module writes.
const MAX_CURSOR_LEN: usize = 1024;

/// Encodes the position after `entry` for the listing `query` (its
/// filters: `status`, `policyType`, `actionableBy`, `emergencyReview`,
/// `q`).
pub fn encode(query: &ListQuery, entry: &IndexEntry) -> String {
    let filters = Filters::of(query);
    let data = CursorData {
        s: filters.status,
        t: filters.policy_type,
        k: entry.sort_key.clone(),
        m: entry.member.clone(),
        a: filters.actionable_by,
        e: filters.emergency_review,
        q: filters.search,
    };
    let json = serde_json::to_vec(&data).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn invalid(code: ViolationCode, message: &str) -> Error {
    Error::invalid(
        format!("the cursor is invalid: {message}"),
        vec![Violation::new("cursor", code, message)],
    )
}

/// Decodes a cursor made for the same filters as `query`.
pub fn decode(cursor: &str, query: &ListQuery) -> Result<IndexEntry, Error> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid(
            ViolationCode::InvalidFormat,
            "is not a cursor of this listing",
        ));
    }
    let data: CursorData = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            invalid(
                ViolationCode::InvalidFormat,
                "is not a cursor of this listing",
            )
        })?;
    // No sort key or member this module writes holds a control character
    // (a NUL would not even fit a Redis index member): such a cursor was
    // forged, and is refused here rather than reaching a cache.
    if data.k.chars().chain(data.m.chars()).any(char::is_control) {
        return Err(invalid(
            ViolationCode::InvalidFormat,
            "is not a cursor of this listing",
        ));
    }
    let made_for = Filters {
        status: data.s,
        policy_type: data.t,
        actionable_by: data.a,
        emergency_review: data.e,
        search: data.q,
    };
    if made_for != Filters::of(query) {
        return Err(invalid(
            ViolationCode::NotAllowed,
            "was made for other filters (status, policy type, actionableBy, emergencyReview or q)",
        ));
    }
    Ok(IndexEntry {
        sort_key: data.k,
        member: data.m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::request::Principal;

    fn query(status: Status, policy_type: Option<&str>) -> ListQuery {
        ListQuery {
            status,
            policy_type: policy_type.map(str::to_owned),
            ..ListQuery::default()
        }
    }

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_filter() {
        let entry = IndexEntry {
            sort_key: "2.0001".into(),
            member: "id".into(),
        };
        let iam = query(Status::Pending, Some("iam"));
        let cursor = encode(&iam, &entry);
        assert_eq!(decode(&cursor, &iam).unwrap(), entry);
        for other in [
            query(Status::Pending, None),
            query(Status::Approved, Some("iam")),
            ListQuery {
                actionable_by: Some(Principal::new("bob", &["security"])),
                ..iam.clone()
            },
            ListQuery {
                emergency_review: Some(ReviewFilter::Open),
                ..iam.clone()
            },
            ListQuery {
                search: Some("okta".into()),
                ..iam.clone()
            },
        ] {
            assert_eq!(
                decode(&cursor, &other).unwrap_err().code(),
                ErrorCode::InvalidRequest
            );
        }
        // The roles of an `actionableBy` principal are not part of the
        // filter: its id is.
        let bob = ListQuery {
            actionable_by: Some(Principal::new("bob", &["security"])),
            ..iam.clone()
        };
        let bob_cursor = encode(&bob, &entry);
        let bob_later = ListQuery {
            actionable_by: Some(Principal::new("bob", &["security", "dba"])),
            ..iam
        };
        assert_eq!(decode(&bob_cursor, &bob_later).unwrap(), entry);
    }

    /// ASCII letters match without case; every other character exactly.
    #[test]
    fn a_search_folds_ascii_letters_only() {
        let change = ListedChange {
            policy_type: "iam".into(),
            policy_id: "iam/Okta-PROD".into(),
            title: "élargir the EDGE rules".into(),
            priority: Priority::default(),
        };
        for found in ["okta-prod", "élargir", "edge rules", "iam/"] {
            let search = found.to_ascii_lowercase();
            assert!(change.mentions(&search), "{found}");
        }
        for missed in ["Élargir", "okta prod"] {
            let search = missed.to_ascii_lowercase();
            assert!(!change.mentions(&search), "{missed}");
        }
    }

    /// A search's cursor holds a digest of the text, so the longest search
    /// in four-byte characters still gives a cursor well within the limit,
    /// bound to that text.
    #[test]
    fn a_search_cursor_is_short_and_bound_to_its_text() {
        let entry = IndexEntry {
            sort_key: "2.0001".into(),
            member: "5f0c8a8e-1b7f-4c1e-9a55-1f7f0b8d2f10".into(),
        };
        let longest = ListQuery {
            search: Some("😀".repeat(crate::input::limits::MAX_SEARCH_CHARS)),
            ..query(Status::Pending, Some("iam"))
        };
        let cursor = encode(&longest, &entry);
        assert!(cursor.len() < 300, "{} bytes", cursor.len());
        assert_eq!(decode(&cursor, &longest).unwrap(), entry);
        let other = ListQuery {
            search: Some("😀".repeat(199)),
            ..longest.clone()
        };
        assert_eq!(
            decode(&cursor, &other).unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }

    /// A well-formed cursor whose position holds a NUL (or another control
    /// character) was forged: it is refused as invalid, never passed to a
    /// cache that cannot store such a position.
    #[test]
    fn a_forged_position_with_a_control_character_is_an_invalid_request() {
        for (sort_key, member) in [("2.0001\0x", "id"), ("2.0001", "i\0d"), ("2\n", "id")] {
            let entry = IndexEntry {
                sort_key: sort_key.into(),
                member: member.into(),
            };
            let pending = query(Status::Pending, None);
            let cursor = encode(&pending, &entry);
            let error = decode(&cursor, &pending).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{sort_key:?}");
        }
    }

    #[test]
    fn garbage_is_an_invalid_request() {
        for garbage in ["", "!!!", "e30", "bm90IGpzb24", &"A".repeat(5000)] {
            let error = decode(garbage, &query(Status::Pending, None)).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{garbage}");
        }
    }
}
