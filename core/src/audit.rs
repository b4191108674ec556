//! The audit chain: every history entry (and every event) carries `hash`,
//! the SHA-256 of the previous link's hash followed by its own canonical
//! JSON, so that editing, removing or reordering anything stored breaks
//! every hash after it.
//!
//! `hash` = hex(SHA-256(`prev` + `canonical`)), both as UTF-8 text, where
//! `canonical` is the entry without its `hash` as canonical JSON
//! ([`crate::rules::canonical_json`]) and `prev` is the previous entry's
//! `hash`; a request's first entry has as `prev` the hash of the request
//! id's text, and the first event of partition `n` the hash of the text
//! `partition n`. The functions here work on JSON values, so that a
//! verifier judges exactly what was exported, fields it does not know
//! included.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rules::{canonical_json, sha256_hex};

/// The `prev` of a request's first history entry.
pub fn request_genesis(id: &str) -> String {
    sha256_hex(id)
}

/// The `prevHash` of the first event of partition `partition`.
pub fn partition_genesis(partition: u16) -> String {
    sha256_hex(&format!("partition {partition}"))
}

/// The hash of `item` (its `hash` field left out) chained after `prev`.
pub fn link_hash(prev: &str, item: &Value) -> String {
    let mut unsealed = item.clone();
    if let Some(object) = unsealed.as_object_mut() {
        object.remove("hash");
    }
    sha256_hex(&format!("{prev}{}", canonical_json(&unsealed)))
}

/// Where a chain breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("entry {index} breaks the chain: {reason}")]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ChainBreak {
    /// The position of the first entry (or event) that does not hold.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks the history chain of a request as JSON (`id` and `history`).
/// Returns how many entries hold.
pub fn verify_request(request: &Value) -> Result<usize, ChainBreak> {
    let whole = |reason: &str| ChainBreak {
        index: 0,
        reason: reason.to_owned(),
    };
    let id = request
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| whole("the request has no `id`"))?;
    let history = request
        .get("history")
        .and_then(Value::as_array)
        .ok_or_else(|| whole("the request has no `history`"))?;
    let mut prev = request_genesis(id);
    for (index, entry) in history.iter().enumerate() {
        let found = entry
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| ChainBreak {
                index,
                reason: "it has no `hash`".to_owned(),
            })?;
        let expected = link_hash(&prev, entry);
        if found != expected {
            return Err(ChainBreak {
                index,
                reason: format!(
                    "its hash is {found}, but its content and the entry before it make {expected}"
                ),
            });
        }
        prev = expected;
    }
    Ok(history.len())
}

/// A request's history judged against its audit chain, as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HistoryVerification {
    /// Whether every entry holds.
    pub verified: bool,
    /// How many entries hold: all of them when verified, else those before
    /// the break.
    pub held: usize,
    /// The first entry that does not hold, and why; absent when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub broken: Option<ChainBreak>,
}

impl HistoryVerification {
    /// Checks the history chain of `request` (JSON, as exported).
    pub fn of(request: &Value) -> Self {
        match verify_request(request) {
            Ok(held) => Self {
                verified: true,
                held,
                broken: None,
            },
            Err(broken) => Self {
                verified: false,
                held: broken.index,
                broken: Some(broken),
            },
        }
    }
}

/// Checks a run of events in the order exported: each event's `hash` must
/// match its content and its `prevHash`, and each `prevHash` must be the
/// hash of the latest event of its chain seen so far, or start a chain (a
/// partition's genesis, or an event before the export began). Two events
/// continuing the same link are a fork. Returns how many events hold.
pub fn verify_events(events: &[Value]) -> Result<usize, ChainBreak> {
    use std::collections::HashSet;
    // The hashes that the next event of some chain may continue from, and
    // every hash already continued (a second continuation is a fork).
    let mut heads: HashSet<String> = HashSet::new();
    let mut continued: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (index, event) in events.iter().enumerate() {
        let field = |name: &str| {
            event
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ChainBreak {
                    index,
                    reason: format!("it has no `{name}`"),
                })
        };
        let prev = field("prevHash")?;
        let found = field("hash")?;
        let expected = link_hash(&prev, event);
        if found != expected {
            return Err(ChainBreak {
                index,
                reason: format!(
                    "its hash is {found}, but its content and prevHash make {expected}"
                ),
            });
        }
        if !continued.insert(prev.clone()) {
            return Err(ChainBreak {
                index,
                reason: "another event already continues the same prevHash (a fork)".to_owned(),
            });
        }
        if seen.contains(&prev) && !heads.contains(&prev) {
            return Err(ChainBreak {
                index,
                reason: "its prevHash is not the latest event of its chain".to_owned(),
            });
        }
        heads.remove(&prev);
        heads.insert(found.clone());
        seen.insert(found);
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed(id: &str, entries: &[Value]) -> Value {
        let mut prev = request_genesis(id);
        let history: Vec<Value> = entries
            .iter()
            .map(|entry| {
                let hash = link_hash(&prev, entry);
                prev = hash.clone();
                let mut entry = entry.clone();
                entry["hash"] = json!(hash);
                entry
            })
            .collect();
        json!({ "id": id, "history": history })
    }

    #[test]
    fn a_sealed_history_verifies_and_any_edit_breaks_it_where_it_was_made() {
        let entries = [
            json!({ "at": "2026-01-01T00:00:00.000Z", "actor": "alice", "action": "create", "stage": "review" }),
            json!({ "at": "2026-01-01T00:01:00.000Z", "actor": "bob", "action": "approve", "stage": "review" }),
            json!({ "at": "2026-01-01T00:02:00.000Z", "actor": "carol", "action": "comment", "comment": "ok" }),
        ];
        let request = sealed("r-1", &entries);
        assert_eq!(verify_request(&request), Ok(3));
        let mut edited = request.clone();
        edited["history"][1]["actor"] = json!("mallory");
        assert_eq!(verify_request(&edited).unwrap_err().index, 1);
        let mut removed = request.clone();
        removed["history"].as_array_mut().unwrap().remove(1);
        assert_eq!(verify_request(&removed).unwrap_err().index, 1);
        let mut moved = request.clone();
        moved["id"] = json!("r-2");
        assert_eq!(verify_request(&moved).unwrap_err().index, 0);
        // Key order and whitespace are not part of the hash.
        let reordered: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&request).unwrap()).unwrap();
        assert_eq!(verify_request(&reordered), Ok(3));
    }

    #[test]
    fn a_verification_names_the_first_entry_that_does_not_hold() {
        let entries = [
            json!({ "at": "2026-01-01T00:00:00.000Z", "actor": "alice", "action": "create" }),
            json!({ "at": "2026-01-01T00:01:00.000Z", "actor": "bob", "action": "approve" }),
        ];
        let request = sealed("r-1", &entries);
        assert_eq!(
            serde_json::to_value(HistoryVerification::of(&request)).unwrap(),
            json!({ "verified": true, "held": 2 })
        );
        let mut edited = request.clone();
        edited["history"][1]["actor"] = json!("mallory");
        let judged = HistoryVerification::of(&edited);
        assert!(!judged.verified);
        assert_eq!(judged.held, 1);
        assert_eq!(judged.broken.map(|broken| broken.index), Some(1));
    }

    #[test]
    fn the_first_hash_follows_from_the_id_text() {
        let entry = json!({ "at": "2026-01-01T00:00:00.000Z", "actor": "a", "action": "create" });
        let expected = sha256_hex(&format!(
            "{}{}",
            sha256_hex("r-1"),
            r#"{"action":"create","actor":"a","at":"2026-01-01T00:00:00.000Z"}"#
        ));
        assert_eq!(link_hash(&request_genesis("r-1"), &entry), expected);
        assert_eq!(partition_genesis(3), sha256_hex("partition 3"));
    }

    #[test]
    fn events_chain_per_partition_and_forks_or_edits_break() {
        let link = |prev: &str, id: &str| {
            let mut event =
                json!({ "id": id, "type": "request.created", "actor": "a", "prevHash": prev });
            event["hash"] = json!(link_hash(prev, &event));
            event
        };
        let a1 = link(&partition_genesis(0), "0-1");
        let b1 = link(&partition_genesis(1), "1-1");
        let a2 = link(a1["hash"].as_str().unwrap(), "0-2");
        let events = [a1.clone(), b1.clone(), a2.clone()];
        assert_eq!(verify_events(&events), Ok(3));
        let fork = link(a1["hash"].as_str().unwrap(), "0-3");
        assert_eq!(
            verify_events(&[a1.clone(), a2.clone(), fork])
                .unwrap_err()
                .index,
            2
        );
        let mut edited = a2.clone();
        edited["actor"] = json!("b");
        assert_eq!(verify_events(&[a1, b1, edited]).unwrap_err().index, 2);
    }
}
