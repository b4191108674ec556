//! The event log: every change to a request appends its events in the same
//! atomic commit as the change (docs/CONTRACT.md section 12), so there is no
//! change without its event and no event without its change.
//!
//! Each partition keeps its own log: a head record (the last event's id and
//! hash), one record per event (kept for the retention period), and an index
//! of event ids. Appending reads the head and checks its version in the
//! commit, so the events of a partition form one hash chain (`prevHash`,
//! `hash`, see [`crate::audit`]) in the order they were committed.
//!
//! An event id is `<t>-<partition>-<seq>`: the time of the commit that
//! appended it in epoch milliseconds (never before the partition's
//! previous event; the event's own `at` may be earlier, e.g. an expiry
//! recorded after its `expiresAt`), the
//! partition, and its number in the partition, each fixed-width, so ids
//! sort in one order across partitions and every id is a cursor. The ids
//! are opaque to callers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{link_hash, partition_genesis};
use crate::error::Error;
use crate::request::{ActionKind, ApprovalRequest, ReviewStatus, Status};
use crate::time::Timestamp;
use crate::validation::{Violation, ViolationCode};

/// Limits of the event listing.
pub mod limits {
    /// The page size when none is given.
    pub const DEFAULT_PAGE_SIZE: u32 = 100;
    /// The largest page.
    pub const MAX_PAGE_SIZE: u32 = 500;
    /// How long events are kept by default: 7 days.
    pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    /// A request was filed.
    #[serde(rename = "request.created")]
    Created,
    /// One approval was counted.
    #[serde(rename = "request.approval")]
    Approval,
    /// A stage was met and the request moved on.
    #[serde(rename = "request.stage_passed")]
    StagePassed,
    /// The request was approved.
    #[serde(rename = "request.approved")]
    Approved,
    /// The request was rejected.
    #[serde(rename = "request.rejected")]
    Rejected,
    /// The requester withdrew it.
    #[serde(rename = "request.cancelled")]
    Cancelled,
    /// Its time ran out.
    #[serde(rename = "request.expired")]
    Expired,
    /// A stage or group escalated.
    #[serde(rename = "request.escalated")]
    Escalated,
    /// The requester replaced the change.
    #[serde(rename = "request.amended")]
    Amended,
    /// A comment was added.
    #[serde(rename = "request.commented")]
    Commented,
    /// A change was filed as an emergency.
    #[serde(rename = "request.emergency_opened")]
    EmergencyOpened,
    /// An emergency's review was closed.
    #[serde(rename = "request.review_closed")]
    ReviewClosed,
    /// The rules were replaced.
    #[serde(rename = "rules.replaced")]
    RulesReplaced,
}

impl EventType {
    /// The wire name, as serde writes it (`request.created`).
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }
}

/// Which events a webhook endpoint receives: one entry of its `events`
/// list. `*` is every event, `request.*` (or `rules.*`) every event of that
/// family, and a type's wire name (`request.approved`) that type only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`.
    Every,
    /// `<family>.*`, the family being the text before the type's dot.
    Family(&'static str),
    /// One type.
    Exactly(EventType),
}

/// Every event type, in the contract's order.
pub const EVENT_TYPES: [EventType; 13] = [
    EventType::Created,
    EventType::Approval,
    EventType::StagePassed,
    EventType::Approved,
    EventType::Rejected,
    EventType::Cancelled,
    EventType::Expired,
    EventType::Escalated,
    EventType::Amended,
    EventType::Commented,
    EventType::EmergencyOpened,
    EventType::ReviewClosed,
    EventType::RulesReplaced,
];

fn family_of(kind: EventType) -> &'static str {
    kind.as_str()
        .split_once('.')
        .map_or("", |(family, _)| family)
}

impl EventPattern {
    /// Parses one pattern; a pattern that could match no type is refused
    /// (it is a typo, and would silently deliver nothing).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self::Every);
        }
        if let Some(family) = text.strip_suffix(".*") {
            return EVENT_TYPES
                .iter()
                .map(|kind| family_of(*kind))
                .find(|known| *known == family)
                .map(Self::Family)
                .ok_or_else(|| format!("`{text}` matches no event type"));
        }
        EVENT_TYPES
            .iter()
            .find(|kind| kind.as_str() == text)
            .map(|kind| Self::Exactly(*kind))
            .ok_or_else(|| format!("`{text}` is not an event type nor a `family.*` pattern"))
    }

    /// Whether an event of type `kind` matches.
    pub fn matches(self, kind: EventType) -> bool {
        match self {
            Self::Every => true,
            Self::Family(family) => family_of(kind) == family,
            Self::Exactly(wanted) => wanted == kind,
        }
    }
}

/// One event, as listed, streamed and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// An opaque cursor, increasing within a partition.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When.
    pub at: Timestamp,
    /// The request it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string"))]
    pub request_id: Option<Uuid>,
    /// Who (`system` for the clock).
    pub actor: String,
    /// The request's level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub level: Option<String>,
    /// The stage it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub stage: Option<String>,
    /// The group it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub group: Option<String>,
    /// The request's status after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub status: Option<Status>,
    /// What else the event carries (a comment, an outcome, `approvalsReset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Record<string, unknown>"))]
    pub data: Option<Value>,
    /// The previous event's `hash` in the partition (for the first, the
    /// hash of `partition n`).
    pub prev_hash: String,
    /// hex SHA-256 of `prevHash` followed by this event's canonical JSON
    /// without `hash`.
    pub hash: String,
}

/// The last event of a partition, as its head record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its id.
    pub id: String,
    /// The time its id carries (its commit's), in epoch milliseconds.
    pub at: i64,
    /// Its number in the partition.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// An event before it is placed in its partition's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    kind: EventType,
    at: Timestamp,
    actor: String,
    stage: Option<String>,
    group: Option<String>,
    data: Option<Value>,
}

impl Draft {
    fn new(kind: EventType, at: Timestamp, actor: &str) -> Self {
        Self {
            kind,
            at,
            actor: actor.to_owned(),
            stage: None,
            group: None,
            data: None,
        }
    }
}

/// The event of a rules replacement by `actor` at `at`: `data` holds the
/// new rules' `digest` and the `previousDigest`.
pub fn rules_replaced(at: Timestamp, actor: &str, digest: &str, previous: &str) -> Draft {
    let mut draft = Draft::new(EventType::RulesReplaced, at, actor);
    draft.data = Some(serde_json::json!({ "digest": digest, "previousDigest": previous }));
    draft
}

/// The id of the `seq`th event of `partition`, at `at_ms`.
pub fn event_id(at_ms: i64, partition: u16, seq: u64) -> String {
    format!("{:013}-{partition:04}-{seq:012}", at_ms.max(0))
}

/// Checks an `after` cursor: an event id as [`event_id`] writes them.
pub fn parse_cursor(after: &str) -> Result<(), Error> {
    let parts: Vec<&str> = after.split('-').collect();
    let well_formed = matches!(parts.as_slice(), [at, partition, seq]
        if at.len() == 13 && partition.len() == 4 && seq.len() == 12
            && after.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(Error::invalid(
            "the cursor is invalid",
            vec![Violation::new(
                "after",
                ViolationCode::InvalidFormat,
                "is not an event id",
            )],
        ))
    }
}

/// The events a change from `before` (absent for a new request) to `after`
/// reports, in the order they happened: one per history entry it appended,
/// plus a stage passed and an approval where the state says so.
pub fn drafts_of(before: Option<&ApprovalRequest>, after: &ApprovalRequest) -> Vec<Draft> {
    let appended = before.map_or(0, |before| before.history.len());
    let mut drafts = Vec::new();
    let mut stage = before.and_then(|before| before.stage.clone());
    for entry in after.history.iter().skip(appended) {
        let mut draft = Draft::new(EventType::Created, entry.at, &entry.actor);
        draft.stage.clone_from(&entry.stage);
        draft.group.clone_from(&entry.group);
        match entry.action {
            ActionKind::Create => {
                drafts.push(draft);
                stage.clone_from(&entry.stage);
                continue;
            }
            ActionKind::Emergency => {
                draft.kind = EventType::EmergencyOpened;
                draft.data = entry
                    .comment
                    .as_ref()
                    .map(|reason| serde_json::json!({ "reason": reason }));
            }
            ActionKind::Approve => draft.kind = EventType::Approval,
            ActionKind::Reject => draft.kind = EventType::Rejected,
            ActionKind::Cancel => draft.kind = EventType::Cancelled,
            ActionKind::Expire => draft.kind = EventType::Expired,
            ActionKind::Escalate => draft.kind = EventType::Escalated,
            ActionKind::Comment => {
                draft.kind = EventType::Commented;
                draft.data = entry
                    .comment
                    .as_ref()
                    .map(|text| serde_json::json!({ "text": text }));
            }
            ActionKind::Amend => {
                draft.kind = EventType::Amended;
                draft.data = entry
                    .approvals_reset
                    .map(|reset| serde_json::json!({ "approvalsReset": reset }));
            }
            ActionKind::Review => {
                draft.kind = EventType::ReviewClosed;
                let outcome = after
                    .emergency
                    .as_ref()
                    .map(|emergency| emergency.review.status)
                    .filter(|status| *status != ReviewStatus::Open);
                draft.data =
                    outcome.map(|status| serde_json::json!({ "outcome": status.as_str() }));
            }
        }
        let approving = entry.action == ActionKind::Approve;
        let at = entry.at;
        drafts.push(draft);
        if approving && stage.is_some() && stage != after.stage {
            let mut passed = Draft::new(EventType::StagePassed, at, &entry.actor);
            passed.stage.clone_from(&stage);
            drafts.push(passed);
        }
        stage = if after.status == Status::Pending {
            after.stage.clone()
        } else {
            None
        };
    }
    let was_approved = before.is_some_and(|before| before.status == Status::Approved);
    if after.status == Status::Approved && !was_approved {
        // Approved by its last approval, by an amend to a level without
        // stages, at creation (no stages, or an emergency).
        let last = after.history.last();
        let actor = last.map_or(crate::request::SYSTEM_ACTOR, |entry| entry.actor.as_str());
        drafts.push(Draft::new(EventType::Approved, after.updated_at, actor));
    }
    drafts
}

/// Places `drafts` of the request `request` (`None` for the rules) in the
/// chain of `partition` after `head`: their ids, `prevHash` and `hash`,
/// and the new head. An event is never dated before the one it follows.
pub fn chain(
    drafts: Vec<Draft>,
    request: Option<&ApprovalRequest>,
    partition: u16,
    head: Option<&Head>,
    committed_at: Timestamp,
) -> (Vec<Event>, Option<Head>) {
    let mut prev_hash = head.map_or_else(|| partition_genesis(partition), |head| head.hash.clone());
    let mut seq = head.map_or(0, |head| head.seq);
    // An id carries the commit's time, never the time the event reports:
    // an expiry recorded now for an `expiresAt` an hour ago must not take
    // an id below events other partitions committed meanwhile, or a reader
    // already past them would never see it.
    let mut floor = head.map_or(i64::MIN, |head| head.at);
    let mut events = Vec::with_capacity(drafts.len());
    let mut new_head = head.cloned();
    for draft in drafts {
        seq += 1;
        let id_ms = committed_at.as_millis().max(floor);
        floor = id_ms;
        let mut event = Event {
            id: event_id(id_ms, partition, seq),
            kind: draft.kind,
            at: draft.at,
            request_id: request.map(|request| request.id),
            actor: draft.actor,
            level: request.map(|request| request.level.clone()),
            stage: draft.stage,
            group: draft.group,
            status: request.map(|request| request.status),
            data: draft.data,
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        let value = serde_json::to_value(&event).unwrap_or(Value::Null);
        event.hash = link_hash(&prev_hash, &value);
        prev_hash.clone_from(&event.hash);
        new_head = Some(Head {
            id: event.id.clone(),
            at: id_ms,
            seq,
            hash: event.hash.clone(),
        });
        events.push(event);
    }
    (events, new_head)
}

/// One page of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events, oldest first.
    pub items: Vec<Event>,
    /// The id of the page's last event, when the page is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_and_families() {
        let every = EventPattern::parse("*").unwrap();
        let requests = EventPattern::parse("request.*").unwrap();
        let rules = EventPattern::parse("rules.*").unwrap();
        let approved = EventPattern::parse("request.approved").unwrap();
        for kind in EVENT_TYPES {
            assert!(every.matches(kind));
            assert_eq!(requests.matches(kind), kind != EventType::RulesReplaced);
            assert_eq!(rules.matches(kind), kind == EventType::RulesReplaced);
            assert_eq!(approved.matches(kind), kind == EventType::Approved);
        }
        for typo in [
            "request.aproved",
            "requests.*",
            "",
            ".*",
            "request.",
            "*.*",
            "REQUEST.*",
        ] {
            assert!(EventPattern::parse(typo).is_err(), "{typo}");
        }
    }

    #[test]
    fn ids_sort_by_time_then_partition_then_number() {
        let ids = [
            event_id(5, 2, 1),
            event_id(5, 10, 1),
            event_id(5, 10, 2),
            event_id(6, 0, 9),
        ];
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        assert!(parse_cursor(&ids[0]).is_ok());
        for bad in ["", "x", "1-2-3", "0000000000005-0002-00000000000x"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
