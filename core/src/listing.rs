//! Opaque listing cursors.
//!
//! A cursor carries the position `(sortKey, id)` of the last item returned and
//! the filter it was made for, as base64url JSON. It is opaque to callers, and
//! anything that does not decode is an `invalid_request`, never a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::cache::IndexEntry;
use crate::error::Error;
use crate::request::{ApprovalRequest, Status};
use crate::validation::{Violation, ViolationCode};

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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

    #[test]
    fn garbage_is_an_invalid_request() {
        for garbage in ["", "!!!", "e30", "bm90IGpzb24", &"A".repeat(5000)] {
            let error = decode(garbage, Status::Pending, None).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidRequest, "{garbage}");
        }
    }
}
