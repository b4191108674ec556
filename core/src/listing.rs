//! Opaque listing cursors.
//!
//! A cursor carries the position `(sortKey, id)` of the last item returned and
//! the filter it was made for, as base64url JSON. It is opaque to callers, and
//! anything that does not decode is an `invalid_request`, never a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::cache::IndexEntry;
use crate::change::Priority;
use crate::error::Error;
use crate::input::ListQuery;
use crate::request::{ApprovalRequest, Status};
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
/// listing; the rest (a diff may be large) is skipped, not copied.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    status: Status,
    change: ListedChange,
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedChange {
    policy_type: String,
    #[serde(default)]
    priority: Priority,
}

/// The item a stored request gives in the listing `query`, found at
/// `sort_key` in its index, or `None` when it no longer belongs there at that
/// position once brought up to date with the clock (`now`). The full view
/// passes the stored bytes through.
pub fn listed_item(
    stored: &[u8],
    sort_key: &str,
    query: &ListQuery,
    now: Timestamp,
) -> Result<Option<Vec<u8>>, Error> {
    let Ok(listed) = serde_json::from_slice::<Listed>(stored) else {
        // Not a request this build can read: not part of any listing.
        return Ok(None);
    };
    // A pending request past its deadline is expired, whatever the store
    // says yet: it has left the pending listing, and joins the expired one
    // once stored so (the expired listing sweeps first).
    let due = listed.status == Status::Pending && now >= listed.expires_at;
    let belongs = !due
        && listed.status == query.status
        && query
            .policy_type
            .as_ref()
            .is_none_or(|policy_type| *policy_type == listed.change.policy_type)
        && crate::keys::listing_sort_key_of(
            listed.status,
            listed.change.priority,
            listed.created_at,
            listed.updated_at,
        ) == sort_key;
    if !belongs {
        return Ok(None);
    }
    match query.view {
        View::Full => Ok(Some(stored.to_vec())),
        View::Summary => summary(stored).map(Some),
    }
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
}

/// The longest cursor accepted, well above any cursor this module writes.
const MAX_CURSOR_LEN: usize = 1024;

/// Encodes the position after `entry` for a listing of `status` and `policy_type`.
pub fn encode(status: Status, policy_type: Option<&str>, entry: &IndexEntry) -> String {
    let data = CursorData {
        s: status,
        t: policy_type.map(str::to_owned),
        k: entry.sort_key.clone(),
        m: entry.member.clone(),
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

/// Decodes a cursor made for the same `status` and `policy_type`.
pub fn decode(
    cursor: &str,
    status: Status,
    policy_type: Option<&str>,
) -> Result<IndexEntry, Error> {
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
    if data.s != status || data.t.as_deref() != policy_type {
        return Err(invalid(
            ViolationCode::NotAllowed,
            "was made for another status or policy type",
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

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_filter() {
        let entry = IndexEntry {
            sort_key: "2.0001".into(),
            member: "id".into(),
        };
        let cursor = encode(Status::Pending, Some("iam"), &entry);
        assert_eq!(
            decode(&cursor, Status::Pending, Some("iam")).unwrap(),
            entry
        );
        assert_eq!(
            decode(&cursor, Status::Pending, None).unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            decode(&cursor, Status::Approved, Some("iam"))
                .unwrap_err()
                .code(),
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
            let cursor = encode(Status::Pending, None, &entry);
            let error = decode(&cursor, Status::Pending, None).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{sort_key:?}");
        }
    }

    #[test]
    fn garbage_is_an_invalid_request() {
        for garbage in ["", "!!!", "e30", "bm90IGpzb24", &"A".repeat(5000)] {
            let error = decode(garbage, Status::Pending, None).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{garbage}");
        }
    }
}
