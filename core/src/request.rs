//! The stored change request and the pure transitions of its lifecycle.
//!
//! Every transition is a function `(request, action, principal, now) ->
//! Result<request, Error>`: it checks the invariants of the lifecycle in the
//! order the specification gives, and never touches storage. The manager
//! stores what these functions return.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::PolicyChange;
use crate::error::Error;
use crate::rules::{Level, LevelExplanation, Quorum, Rules, Separation, Stage, Visibility};
use crate::time::Timestamp;

/// The actor recorded for transitions the clock makes.
pub const SYSTEM_ACTOR: &str = "system";

/// Roles that see every request when the rules set `visibility: involved`.
pub const SEE_EVERY_REQUEST_ROLES: [&str; 2] = ["auditor", "admin"];

/// Whether `viewer` may see a request filed by `requested_by` whose level
/// has `stages`, under `visibility`: always under `all`; under `involved`
/// when it is the requester, holds a role eligible somewhere in the level (a
/// stage, a group, an escalation; the emergency review is open to the same
/// principals), or holds `auditor` or `admin`.
pub fn may_see(
    visibility: Visibility,
    requested_by: &str,
    stages: &[Stage],
    viewer: &Principal,
) -> bool {
    visibility == Visibility::All
        || viewer.id == requested_by
        || viewer
            .roles
            .iter()
            .any(|role| SEE_EVERY_REQUEST_ROLES.contains(&role.as_str()))
        || stages.iter().any(|stage| stage.involves(&viewer.roles))
}

/// At most this many history entries; comments beyond it are refused.
pub const MAX_HISTORY: usize = 1000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Principal {
    /// Stable identifier.
    pub id: String,
    /// Roles held.
    #[serde(default)]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub roles: Vec<String>,
}

impl Principal {
    /// A principal with `id` and `roles`.
    pub fn new(id: impl Into<String>, roles: &[&str]) -> Self {
        Self {
            id: id.into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }
}

/// Where a request is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Status {
    /// Waiting for approvals at `stage`.
    Pending,
    /// Every stage passed.
    Approved,
    /// Someone rejected it.
    Rejected,
    /// Its time ran out.
    Expired,
    /// Its requester withdrew it.
    Cancelled,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Expired,
        Self::Cancelled,
    ];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }

    /// Whether the status never changes again.
    pub fn is_terminal(self) -> bool {
        self != Self::Pending
    }
}

/// What happened, as recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActionKind {
    /// The request was filed.
    Create,
    /// An approval was counted.
    Approve,
    /// The request was rejected.
    Reject,
    /// The requester withdrew it.
    Cancel,
    /// A comment was added.
    Comment,
    /// The clock expired it.
    Expire,
    /// The clock made the escalation roles eligible for a stage or group.
    Escalate,
    /// The requester replaced the change.
    Amend,
    /// The change was filed as an emergency and approved at once.
    Emergency,
    /// The after-the-fact review of an emergency was closed.
    Review,
}

/// One counted approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// The stage it counted for.
    pub stage: String,
    /// The group it counted for, in a stage with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub group: Option<String>,
    /// When.
    pub at: Timestamp,
    /// An optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub comment: Option<String>,
    /// The `changeDigest` of the change approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub change_digest: Option<String>,
}

/// The rejection of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejection {
    /// Who rejected.
    pub by: String,
    /// The stage it was rejected at.
    pub stage: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
}

/// One entry of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    /// When.
    pub at: Timestamp,
    /// Who (`system` for expiry).
    pub actor: String,
    /// What.
    pub action: ActionKind,
    /// The stage current at the time, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub stage: Option<String>,
    /// The group, for an approval or escalation of one group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub group: Option<String>,
    /// The comment, approval note, rejection reason or emergency reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub comment: Option<String>,
    /// For an amend: whether it dropped the approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub approvals_reset: Option<bool>,
    /// The audit chain: hex SHA-256 of the previous entry's `hash` (for
    /// the first, of the request id) followed by this entry's canonical
    /// JSON without `hash` (see [`crate::audit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub hash: Option<String>,
}

impl HistoryEntry {
    /// An entry with no stage, group, comment or reset flag.
    fn new(at: Timestamp, actor: &str, action: ActionKind) -> Self {
        Self {
            at,
            actor: actor.to_owned(),
            action,
            stage: None,
            group: None,
            comment: None,
            approvals_reset: None,
            hash: None,
        }
    }
}

/// A break-glass request's emergency: why, and its after-the-fact review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Emergency {
    /// Why it could not wait.
    pub reason: String,
    /// The review that must follow.
    pub review: Review,
}

/// The after-the-fact review of an emergency request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// `open` until someone closes it with an outcome.
    pub status: ReviewStatus,
    /// When it is due: `createdAt` + the level's `reviewWithinSeconds`.
    pub due_at: Timestamp,
    /// Who closed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub by: Option<String>,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub at: Option<Timestamp>,
    /// The reviewer's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub comment: Option<String>,
}

/// Where an emergency's review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReviewStatus {
    /// Not reviewed yet.
    Open,
    /// Reviewed and found justified.
    Ratified,
    /// Reviewed and found wanting.
    Flagged,
}

impl ReviewStatus {
    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }
}

/// How a review is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReviewOutcome {
    /// The emergency was justified.
    Ratified,
    /// It was not, or something needs following up.
    Flagged,
}

impl ReviewOutcome {
    /// Every outcome.
    pub const ALL: [Self; 2] = [Self::Ratified, Self::Flagged];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }

    fn status(self) -> ReviewStatus {
        match self {
            Self::Ratified => ReviewStatus::Ratified,
            Self::Flagged => ReviewStatus::Flagged,
        }
    }
}

/// A stored change request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRequest {
    /// A UUID.
    #[cfg_attr(feature = "tsify", tsify(type = "string"))]
    pub id: Uuid,
    /// The validated change.
    pub change: PolicyChange,
    /// The principal who filed it.
    pub requested_by: String,
    /// The approval level decided at creation.
    pub level: String,
    /// Why that level.
    pub level_explanation: LevelExplanation,
    /// The level's stages as they were when the request was decided, so that a
    /// later rules change cannot alter who may approve it.
    pub stages: Vec<Stage>,
    /// The level's separation of duties as it was when decided; absent
    /// means the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub separation: Option<Separation>,
    /// Lifecycle state.
    pub status: Status,
    /// The current stage; absent when terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub stage: Option<String>,
    /// Counted approvals, in order.
    pub approvals: Vec<Approval>,
    /// The rejection, when rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub rejection: Option<Rejection>,
    /// When it was filed.
    pub created_at: Timestamp,
    /// When its status, stage or approvals last changed.
    pub updated_at: Timestamp,
    /// When a pending request expires.
    pub expires_at: Timestamp,
    /// Moves on every change, comments included.
    pub version: u64,
    /// When the current stage became current (escalation counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub stage_started_at: Option<Timestamp>,
    /// Digest of the rules that decided it.
    pub rules_digest: String,
    /// The digest of the change's canonical JSON as stored.
    #[serde(default)]
    pub change_digest: String,
    /// Present when filed as an emergency (break-glass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub emergency: Option<Emergency>,
    /// Everything that happened, in order.
    pub history: Vec<HistoryEntry>,
}

/// A lifecycle action, with its already validated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Count an approval for the current stage.
    Approve {
        /// Optional note.
        comment: Option<String>,
    },
    /// Reject the request.
    Reject {
        /// Why.
        reason: String,
    },
    /// Withdraw the request (requester only).
    Cancel,
    /// Append a comment.
    Comment {
        /// The text.
        text: String,
    },
    /// Close an emergency's after-the-fact review.
    Review {
        /// Ratified or flagged.
        outcome: ReviewOutcome,
        /// Optional note.
        comment: Option<String>,
    },
}

/// Where a level puts a request it starts: its stages, the first stage and
/// whether it is approved at once.
struct Start {
    stages: Vec<Stage>,
    separation: Option<Separation>,
    stage: Option<String>,
    status: Status,
    expires_at: Timestamp,
}

impl Start {
    fn of(level: Option<&Level>, now: Timestamp) -> Self {
        let stages = level.map(|level| level.stages.clone()).unwrap_or_default();
        let stage = stages.first().map(|stage| stage.name.clone());
        let ttl = level.map_or(0, |level| level.ttl_seconds);
        Self {
            separation: level.and_then(|level| level.separation),
            status: if stage.is_some() {
                Status::Pending
            } else {
                Status::Approved
            },
            stage,
            stages,
            expires_at: now.plus_seconds(u64::from(ttl)),
        }
    }
}

/// The break-glass policy of `level` if `requester` may use it, else
/// `forbidden` saying why.
fn emergency_policy<'r>(
    level: Option<&'r Level>,
    requester: &Principal,
) -> Result<&'r crate::rules::EmergencyPolicy, Error> {
    let name = level.map_or("", |level| level.name.as_str());
    let Some(policy) = level.and_then(|level| level.emergency.as_ref()) else {
        return Err(Error::Forbidden(format!(
            "level `{name}` allows no emergency filing"
        )));
    };
    if policy
        .allowed_roles
        .iter()
        .any(|role| requester.roles.contains(role))
    {
        Ok(policy)
    } else {
        Err(Error::Forbidden(format!(
            "an emergency at level `{name}` needs one of the roles {}",
            policy.allowed_roles.join(", ")
        )))
    }
}

/// What an escalation of `quorum` is recorded under: its group when the
/// group has its own escalation, else its stage (`None`), for a group
/// without its own escalates with its stage.
fn escalation_source<'s>(stage: &'s Stage, quorum: &Quorum<'s>) -> Option<&'s str> {
    let own = stage
        .groups
        .as_ref()
        .and_then(|groups| {
            groups
                .iter()
                .find(|group| Some(group.name.as_str()) == quorum.group)
        })
        .is_some_and(|group| group.escalate_after_seconds.is_some());
    if own { quorum.group } else { None }
}

/// An escalation that has not been recorded yet: of a stage (`group`
/// `None`, for every group without its own) or of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DueEscalation {
    at: Timestamp,
    stage: String,
    group: Option<String>,
}

impl ApprovalRequest {
    /// Files a validated change: decides its level and starts it pending at the
    /// first stage, or approved when the level has no stages. An emergency
    /// filing is approved at once with an open review; it is `forbidden`
    /// unless the level allows break-glass to one of the principal's roles.
    pub fn create(
        id: Uuid,
        mut change: PolicyChange,
        requester: &Principal,
        rules: &Rules,
        rules_digest: &str,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let determination = rules.determine(&change);
        let level = rules.levels.get(determination.level_index);
        let filing = change.emergency.take();
        let start = Start::of(level, now);
        let change_digest = change.digest();
        let mut request = Self {
            id,
            change,
            requested_by: requester.id.clone(),
            level: level.map(|level| level.name.clone()).unwrap_or_default(),
            level_explanation: determination.explanation,
            stages: start.stages,
            separation: start.separation,
            status: start.status,
            stage: start.stage.clone(),
            approvals: Vec::new(),
            rejection: None,
            created_at: now,
            updated_at: now,
            expires_at: start.expires_at,
            version: 1,
            stage_started_at: start.stage.is_some().then_some(now),
            rules_digest: rules_digest.to_owned(),
            change_digest,
            emergency: None,
            history: vec![HistoryEntry {
                stage: start.stage,
                ..HistoryEntry::new(now, &requester.id, ActionKind::Create)
            }],
        };
        if let Some(filing) = filing {
            let policy = emergency_policy(level, requester)?;
            request.status = Status::Approved;
            request.stage = None;
            request.stage_started_at = None;
            request.history.push(HistoryEntry {
                comment: Some(filing.reason.clone()),
                ..HistoryEntry::new(now, &requester.id, ActionKind::Emergency)
            });
            request.emergency = Some(Emergency {
                reason: filing.reason,
                review: Review {
                    status: ReviewStatus::Open,
                    due_at: now.plus_seconds(u64::from(policy.review_within_seconds)),
                    by: None,
                    at: None,
                    comment: None,
                },
            });
        }
        request.seal();
        Ok(request)
    }

    /// Refuses a filing that `create` would refuse whatever the clock says:
    /// an emergency that the change's level does not allow to `requester`.
    pub fn check_filing(
        change: &PolicyChange,
        requester: &Principal,
        rules: &Rules,
    ) -> Result<(), Error> {
        if change.emergency.is_some() {
            let level = rules.levels.get(rules.determine(change).level_index);
            emergency_policy(level, requester)?;
        }
        Ok(())
    }

    /// Whether the request is pending but past its `expiresAt` at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.status == Status::Pending && now >= self.expires_at
    }

    /// Seals the history: every entry without a `hash` gets the one that
    /// chains it after the entry before it. Every transition ends with it,
    /// so only the entries it appended are hashed.
    fn seal(&mut self) {
        let mut prev = crate::audit::request_genesis(&self.id.to_string());
        for entry in &mut self.history {
            if let Some(hash) = &entry.hash {
                prev.clone_from(hash);
                continue;
            }
            let value = serde_json::to_value(&*entry).unwrap_or(serde_json::Value::Null);
            let hash = crate::audit::link_hash(&prev, &value);
            entry.hash = Some(hash.clone());
            prev = hash;
        }
    }

    /// Whether `viewer` may see this request under `visibility` (see
    /// [`may_see`]).
    pub fn visible_to(&self, viewer: &Principal, visibility: Visibility) -> bool {
        may_see(visibility, &self.requested_by, &self.stages, viewer)
    }

    /// Whether the emergency review is open.
    pub fn review_open(&self) -> bool {
        self.emergency
            .as_ref()
            .is_some_and(|emergency| emergency.review.status == ReviewStatus::Open)
    }

    /// The request as the clock sees it at `now`: escalations that fell due
    /// are recorded (each once, at its exact time, by `system`), then the
    /// request is expired (at `expiresAt`) if it is due. Returns whether it
    /// changed.
    pub fn catch_up(&mut self, now: Timestamp) -> bool {
        let mut changed = false;
        while let Some(due) = self.next_escalation().filter(|due| due.at <= now) {
            self.history.push(HistoryEntry {
                stage: Some(due.stage),
                group: due.group,
                ..HistoryEntry::new(due.at, SYSTEM_ACTOR, ActionKind::Escalate)
            });
            self.version += 1;
            changed = true;
        }
        let changed = self.expire_if_due(now) || changed;
        if changed {
            self.seal();
        }
        changed
    }

    /// Expires the request (at `expiresAt`, by `system`) if it is due, else
    /// leaves it unchanged. Returns whether it changed.
    pub fn expire_if_due(&mut self, now: Timestamp) -> bool {
        if !self.is_due(now) {
            return false;
        }
        self.history.push(HistoryEntry {
            stage: self.stage.take(),
            ..HistoryEntry::new(self.expires_at, SYSTEM_ACTOR, ActionKind::Expire)
        });
        self.status = Status::Expired;
        self.updated_at = self.expires_at;
        self.version += 1;
        self.seal();
        true
    }

    /// The next moment the clock changes this request: its next escalation,
    /// else its expiry; `None` unless pending.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if self.status != Status::Pending {
            return None;
        }
        Some(
            self.next_escalation()
                .map_or(self.expires_at, |due| due.at.min(self.expires_at)),
        )
    }

    /// The earliest escalation of the current stage not recorded yet, of a
    /// quorum that is not met, falling before `expiresAt`.
    fn next_escalation(&self) -> Option<DueEscalation> {
        let stage = self.current_stage()?;
        let started = self.stage_started_at?;
        let mut sources: Vec<(Option<&str>, u32)> = Vec::new();
        for quorum in stage.quorums() {
            let Some(after) = quorum.escalate_after_seconds else {
                continue;
            };
            if self.counted(stage, &quorum) >= quorum.required {
                continue;
            }
            let source = escalation_source(stage, &quorum);
            if !sources.contains(&(source, after)) {
                sources.push((source, after));
            }
        }
        sources
            .into_iter()
            .filter(|(group, _)| !self.escalation_recorded(&stage.name, *group, started))
            .map(|(group, after)| DueEscalation {
                at: started.plus_seconds(u64::from(after)),
                stage: stage.name.clone(),
                group: group.map(str::to_owned),
            })
            .filter(|due| due.at < self.expires_at)
            .min_by_key(|due| due.at)
    }

    /// Who may approve the current stage now, as the listing of
    /// `actionableBy` indexes it: whether anyone may (a quorum with no
    /// eligible roles), and the roles that may, of the quorums not met yet,
    /// escalation roles included once the escalation is recorded. Empty
    /// unless pending.
    pub fn approver_roles(&self) -> (bool, Vec<String>) {
        let mut anyone = false;
        let mut roles: Vec<String> = Vec::new();
        let (Some(stage), Some(started)) = (self.current_stage(), self.stage_started_at) else {
            return (anyone, roles);
        };
        if self.status != Status::Pending {
            return (anyone, roles);
        }
        for quorum in stage.quorums() {
            if self.counted(stage, &quorum) >= quorum.required {
                continue;
            }
            anyone |= quorum.eligible_roles.is_empty();
            let escalated =
                self.escalation_recorded(&stage.name, escalation_source(stage, &quorum), started);
            let extra = if escalated {
                quorum.escalation_roles
            } else {
                &[]
            };
            for role in quorum.eligible_roles.iter().chain(extra) {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
        (anyone, roles)
    }

    fn escalation_recorded(&self, stage: &str, group: Option<&str>, since: Timestamp) -> bool {
        self.history.iter().rev().any(|entry| {
            entry.action == ActionKind::Escalate
                && entry.at >= since
                && entry.stage.as_deref() == Some(stage)
                && entry.group.as_deref() == group
        })
    }

    /// Whether `quorum` of the current stage has escalated at `now`.
    fn escalated(&self, quorum: &Quorum<'_>, now: Timestamp) -> bool {
        match (quorum.escalate_after_seconds, self.stage_started_at) {
            (Some(after), Some(started)) => {
                let at = started.plus_seconds(u64::from(after));
                at < self.expires_at && now >= at
            }
            _ => false,
        }
    }

    /// The approvals counted toward `quorum` of `stage`.
    fn counted(&self, stage: &Stage, quorum: &Quorum<'_>) -> u32 {
        let count = self
            .approvals
            .iter()
            .filter(|approval| {
                approval.stage == stage.name && approval.group.as_deref() == quorum.group
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The current stage, when pending.
    pub fn current_stage(&self) -> Option<&Stage> {
        let name = self.stage.as_deref()?;
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The separation of duties that applies, defaults filled in.
    pub fn separation(&self) -> Separation {
        self.separation.unwrap_or_default()
    }

    /// The checks shared by approve, reject, cancel and amend, in the order
    /// of the specification: expired, then not pending.
    fn ensure_actionable(&self, now: Timestamp) -> Result<(), Error> {
        if self.status == Status::Expired || self.is_due(now) {
            return Err(Error::Expired(self.id.to_string()));
        }
        if self.status.is_terminal() {
            return Err(Error::NotPending {
                id: self.id.to_string(),
                status: self.status,
            });
        }
        Ok(())
    }

    /// The checks of approve and reject, in the order of the specification:
    /// the caller is not the requester (unless the level allows it), has not
    /// approved before (in this request, or in this stage when the level
    /// allows one approval per stage), and holds a role of the current
    /// stage. Returns the stage and, for an approval, the quorum it counts
    /// toward: the first, in document order, that admits the caller and is
    /// not met yet.
    fn ensure_may_decide(
        &self,
        principal: &Principal,
        now: Timestamp,
        approving: bool,
    ) -> Result<(&Stage, Option<Option<String>>), Error> {
        let separation = self.separation();
        if principal.id == self.requested_by && !separation.requester_may_approve {
            return Err(Error::SelfApproval(principal.id.clone()));
        }
        let stage = self.current_stage().ok_or_else(|| {
            Error::Internal(format!("request `{}` has no current stage", self.id))
        })?;
        if self.approvals.iter().any(|approval| {
            approval.by == principal.id
                && (separation.one_approval_per_principal || approval.stage == stage.name)
        }) {
            return Err(Error::AlreadyApproved(principal.id.clone()));
        }
        let quorums = stage.quorums();
        let admitted =
            |quorum: &&Quorum<'_>| quorum.admits(&principal.roles, self.escalated(quorum, now));
        let not_eligible = || Error::NotEligible {
            principal: principal.id.clone(),
            stage: stage.name.clone(),
        };
        if !approving {
            return quorums
                .iter()
                .find(admitted)
                .map(|_| (stage, None))
                .ok_or_else(not_eligible);
        }
        quorums
            .iter()
            .filter(admitted)
            .find(|quorum| self.counted(stage, quorum) < quorum.required)
            .map(|quorum| (stage, Some(quorum.group.map(str::to_owned))))
            .ok_or_else(not_eligible)
    }

    /// Moves to the next stage (or approves) when every quorum of the
    /// current stage is met.
    fn advance_if_met(&mut self, now: Timestamp) {
        let Some(stage) = self.current_stage() else {
            return;
        };
        let met = stage
            .quorums()
            .iter()
            .all(|quorum| self.counted(stage, quorum) >= quorum.required);
        if !met {
            return;
        }
        let position = self.stages.iter().position(|s| s.name == stage.name);
        match position.and_then(|position| self.stages.get(position + 1)) {
            Some(following) => {
                self.stage = Some(following.name.clone());
                self.stage_started_at = Some(now);
            }
            None => {
                self.stage = None;
                self.stage_started_at = None;
                self.status = Status::Approved;
            }
        }
    }

    /// Applies `action` by `principal` at `now`, returning the new request.
    /// The request must already have been brought up to date with
    /// [`ApprovalRequest::catch_up`] by the caller that stores it.
    pub fn apply(
        &self,
        action: &Action,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let mut next = self.clone();
        let entry = |action: ActionKind| HistoryEntry::new(now, &principal.id, action);
        match action {
            Action::Approve { comment } => {
                self.ensure_actionable(now)?;
                let (stage, group) = self.ensure_may_decide(principal, now, true)?;
                let group = group.flatten();
                next.approvals.push(Approval {
                    by: principal.id.clone(),
                    stage: stage.name.clone(),
                    group: group.clone(),
                    at: now,
                    comment: comment.clone(),
                    change_digest: Some(self.change_digest.clone()),
                });
                next.history.push(HistoryEntry {
                    stage: Some(stage.name.clone()),
                    group,
                    comment: comment.clone(),
                    ..entry(ActionKind::Approve)
                });
                next.advance_if_met(now);
                next.updated_at = now;
            }
            Action::Reject { reason } => {
                self.ensure_actionable(now)?;
                let (stage, _) = self.ensure_may_decide(principal, now, false)?;
                next.rejection = Some(Rejection {
                    by: principal.id.clone(),
                    stage: stage.name.clone(),
                    at: now,
                    reason: reason.clone(),
                });
                next.history.push(HistoryEntry {
                    stage: Some(stage.name.clone()),
                    comment: Some(reason.clone()),
                    ..entry(ActionKind::Reject)
                });
                next.status = Status::Rejected;
                next.stage = None;
                next.stage_started_at = None;
                next.updated_at = now;
            }
            Action::Cancel => {
                self.ensure_actionable(now)?;
                self.ensure_requester(principal, "cancel")?;
                next.history.push(HistoryEntry {
                    stage: self.stage.clone(),
                    ..entry(ActionKind::Cancel)
                });
                next.status = Status::Cancelled;
                next.stage = None;
                next.stage_started_at = None;
                next.updated_at = now;
            }
            Action::Comment { text } => {
                if self.history.len() >= MAX_HISTORY {
                    return Err(Error::invalid(
                        format!("the history already holds {MAX_HISTORY} entries"),
                        Vec::new(),
                    ));
                }
                next.history.push(HistoryEntry {
                    stage: self.stage.clone(),
                    comment: Some(text.clone()),
                    ..entry(ActionKind::Comment)
                });
            }
            Action::Review { outcome, comment } => {
                if !self.review_open() {
                    return Err(Error::NoOpenReview(self.id.to_string()));
                }
                if principal.id == self.requested_by {
                    return Err(Error::SelfApproval(principal.id.clone()));
                }
                if !self
                    .stages
                    .iter()
                    .any(|stage| stage.involves(&principal.roles))
                {
                    return Err(Error::NotEligible {
                        principal: principal.id.clone(),
                        stage: "review".to_owned(),
                    });
                }
                if let Some(emergency) = next.emergency.as_mut() {
                    emergency.review.status = outcome.status();
                    emergency.review.by = Some(principal.id.clone());
                    emergency.review.at = Some(now);
                    emergency.review.comment = comment.clone();
                }
                next.history.push(HistoryEntry {
                    comment: comment.clone(),
                    ..entry(ActionKind::Review)
                });
                next.updated_at = now;
            }
        }
        next.version += 1;
        next.seal();
        Ok(next)
    }

    /// Refuses anyone but the requester with `forbidden`.
    fn ensure_requester(&self, principal: &Principal, what: &str) -> Result<(), Error> {
        if principal.id == self.requested_by {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "only the requester `{}` may {what} this request",
                self.requested_by
            )))
        }
    }

    /// The checks of an amend, whatever the new change: the request is
    /// pending and the principal is its requester.
    pub fn ensure_may_amend(&self, principal: &Principal, now: Timestamp) -> Result<(), Error> {
        self.ensure_actionable(now)?;
        self.ensure_requester(principal, "amend")
    }

    /// Replaces the change of a pending request (requester only), deciding
    /// its level again with `rules`. Approvals are kept only when the level
    /// stays and the change differs in wording alone (`title`,
    /// `justification`, `metadata`); otherwise they are dropped and the
    /// request starts again at the first stage, with a new `expiresAt`.
    pub fn amend(
        &self,
        change: PolicyChange,
        principal: &Principal,
        rules: &Rules,
        rules_digest: &str,
        now: Timestamp,
    ) -> Result<Self, Error> {
        self.ensure_may_amend(principal, now)?;
        let determination = rules.determine(&change);
        let level = rules.levels.get(determination.level_index);
        let level_name = level.map(|level| level.name.clone()).unwrap_or_default();
        let keep = level_name == self.level && change.differs_only_in_wording(&self.change);
        let mut next = self.clone();
        next.change_digest = change.digest();
        next.change = change;
        next.level_explanation = determination.explanation;
        next.rules_digest = rules_digest.to_owned();
        if !keep {
            let start = Start::of(level, now);
            next.level = level_name;
            next.stages = start.stages;
            next.separation = start.separation;
            next.stage = start.stage;
            next.status = start.status;
            next.expires_at = start.expires_at;
            next.stage_started_at = next.stage.is_some().then_some(now);
            next.approvals.clear();
        }
        next.history.push(HistoryEntry {
            stage: next.stage.clone(),
            approvals_reset: Some(!keep),
            ..HistoryEntry::new(now, &principal.id, ActionKind::Amend)
        });
        next.updated_at = now;
        next.version += 1;
        next.seal();
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn rules() -> Rules {
        Rules::parse(&json!({
            "levels": [
                { "name": "auto", "ttlSeconds": 60, "stages": [] },
                { "name": "two", "ttlSeconds": 60, "stages": [
                    { "name": "peer", "requiredApprovals": 2, "eligibleRoles": ["eng"] },
                    { "name": "sec", "requiredApprovals": 1, "eligibleRoles": ["sec"] }
                ]}
            ],
            "defaultLevel": "two",
            "rules": [{ "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" }]
        }))
        .unwrap()
    }

    fn request(policy_type: &str) -> ApprovalRequest {
        let change = PolicyChange::parse(
            &json!({
                "policyId": "p", "policyType": policy_type, "changeKind": "create",
                "title": "t", "justification": "because it matters",
            }),
            None,
        )
        .unwrap();
        let rules = rules();
        ApprovalRequest::create(
            Uuid::nil(),
            change,
            &Principal::new("alice", &["eng"]),
            &rules,
            &rules.digest(),
            Timestamp::from_millis(1_000),
        )
        .unwrap()
    }

    fn approve() -> Action {
        Action::Approve { comment: None }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn code(result: Result<ApprovalRequest, Error>) -> ErrorCode {
        result.unwrap_err().code()
    }

    /// A record written by a newer version, with fields this one does not
    /// know at every level of the stored request, reads as the request it
    /// holds (the unknown fields are dropped), so a rolling upgrade that adds
    /// fields breaks nothing.
    #[test]
    fn a_stored_record_from_a_newer_version_is_read() {
        let original = request("iam")
            .apply(&approve(), &Principal::new("bob", &["eng"]), at(2_000))
            .unwrap();
        let mut stored = serde_json::to_value(&original).unwrap();
        stored["futureField"] = json!({ "nested": [1, 2] });
        stored["change"]["futureChangeField"] = json!("x");
        stored["approvals"][0]["futureApprovalField"] = json!(true);
        stored["history"][0]["futureHistoryField"] = json!(null);
        stored["levelExplanation"]["futureExplanationField"] = json!(1);
        let read: ApprovalRequest = serde_json::from_value(stored).unwrap();
        assert_eq!(read, original);

        let rejected = request("iam")
            .apply(
                &Action::Reject {
                    reason: "not now".to_owned(),
                },
                &Principal::new("bob", &["eng"]),
                at(2_000),
            )
            .unwrap();
        let mut stored = serde_json::to_value(&rejected).unwrap();
        stored["rejection"]["futureRejectionField"] = json!([]);
        let read: ApprovalRequest = serde_json::from_value(stored).unwrap();
        assert_eq!(read, rejected);
    }

    #[test]
    fn a_level_without_stages_is_approved_at_creation() {
        let request = request("docs");
        assert_eq!(request.status, Status::Approved);
        assert_eq!(request.stage, None);
        assert_eq!(request.history.len(), 1);
    }

    #[test]
    fn stages_are_passed_in_order_by_distinct_eligible_principals() {
        let r = request("iam");
        assert_eq!(r.stage.as_deref(), Some("peer"));
        let r = r
            .apply(&approve(), &Principal::new("bob", &["eng"]), at(2_000))
            .unwrap();
        assert_eq!(r.stage.as_deref(), Some("peer"));
        let r = r
            .apply(&approve(), &Principal::new("carol", &["eng"]), at(3_000))
            .unwrap();
        assert_eq!(r.stage.as_deref(), Some("sec"));
        assert_eq!(
            code(r.apply(&approve(), &Principal::new("dave", &["eng"]), at(4_000))),
            ErrorCode::NotEligible
        );
        let r = r
            .apply(&approve(), &Principal::new("erin", &["sec"]), at(5_000))
            .unwrap();
        assert_eq!(r.status, Status::Approved);
        assert_eq!(r.stage, None);
        assert_eq!(r.version, 4);
        assert_eq!(r.updated_at, at(5_000));
    }

    #[test]
    fn invariants_have_their_codes_in_order() {
        let r = request("iam");
        let alice = Principal::new("alice", &["eng"]);
        let bob = Principal::new("bob", &["eng"]);
        assert_eq!(
            code(r.apply(&approve(), &alice, at(2_000))),
            ErrorCode::SelfApproval
        );
        let r = r.apply(&approve(), &bob, at(2_000)).unwrap();
        assert_eq!(
            code(r.apply(&approve(), &bob, at(2_000))),
            ErrorCode::AlreadyApproved
        );
        let reject = Action::Reject {
            reason: "no".into(),
        };
        assert_eq!(
            code(r.apply(&reject, &bob, at(2_000))),
            ErrorCode::AlreadyApproved
        );
        assert_eq!(
            code(r.apply(&Action::Cancel, &bob, at(2_000))),
            ErrorCode::Forbidden
        );
        // Past expiresAt, expired wins over every other check.
        assert_eq!(
            code(r.apply(&approve(), &alice, at(61_000))),
            ErrorCode::Expired
        );
        let r = r.apply(&Action::Cancel, &alice, at(3_000)).unwrap();
        assert_eq!(
            code(r.apply(&approve(), &alice, at(4_000))),
            ErrorCode::NotPending
        );
        assert_eq!(
            code(r.apply(&Action::Cancel, &alice, at(4_000))),
            ErrorCode::NotPending
        );
    }

    #[test]
    fn expiry_is_recorded_at_expires_at_by_system() {
        let mut r = request("iam");
        assert!(!r.expire_if_due(at(60_999)));
        assert!(r.expire_if_due(at(500_000)));
        assert_eq!(r.status, Status::Expired);
        assert_eq!(r.updated_at, at(61_000));
        let last = r.history.last().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.action, last.at),
            ("system", ActionKind::Expire, at(61_000))
        );
        assert_eq!(last.stage.as_deref(), Some("peer"));
        assert_eq!(
            code(r.apply(&approve(), &Principal::new("bob", &["eng"]), at(1))),
            ErrorCode::Expired
        );
    }

    #[test]
    fn comments_move_only_the_version_and_are_capped() {
        let mut r = request("iam");
        r.expire_if_due(at(100_000));
        let comment = Action::Comment {
            text: "late".into(),
        };
        let next = r
            .apply(&comment, &Principal::new("zed", &[]), at(200_000))
            .unwrap();
        assert_eq!(next.updated_at, r.updated_at);
        assert_eq!(next.status, Status::Expired);
        assert_eq!(next.version, r.version + 1);
        let mut full = next.clone();
        while full.history.len() < MAX_HISTORY {
            full = full
                .apply(&comment, &Principal::new("zed", &[]), at(200_000))
                .unwrap();
        }
        assert_eq!(
            code(full.apply(&comment, &Principal::new("zed", &[]), at(1))),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn serializes_with_the_specified_field_names() {
        let json = serde_json::to_value(request("iam")).unwrap();
        for field in [
            "id",
            "change",
            "requestedBy",
            "level",
            "levelExplanation",
            "status",
            "stage",
            "approvals",
            "createdAt",
            "updatedAt",
            "expiresAt",
            "version",
            "rulesDigest",
            "history",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["createdAt"], "1970-01-01T00:00:01.000Z");
        assert!(json.get("rejection").is_none());
    }

    #[test]
    fn the_change_digest_is_the_sha256_of_the_stored_change_as_canonical_json() {
        let request = request("iam");
        let canonical =
            crate::rules::canonical_json(&serde_json::to_value(&request.change).unwrap());
        assert!(
            canonical.contains("\"priority\":\"normal\""),
            "defaults filled in"
        );
        assert_eq!(request.change_digest, crate::rules::sha256_hex(&canonical));
        assert_eq!(request.change_digest.len(), 64);
        let mut reworded = request.change.clone();
        reworded.title = "another title".to_owned();
        assert_ne!(reworded.digest(), request.change_digest);
        assert!(reworded.differs_only_in_wording(&request.change));
        reworded.diff = Some("+ x".to_owned());
        assert!(!reworded.differs_only_in_wording(&request.change));
    }

    fn escalating() -> ApprovalRequest {
        let rules = Rules::parse(&json!({
            "levels": [{ "name": "l", "ttlSeconds": 100, "stages": [
                { "name": "s", "groups": [
                    { "name": "a", "requiredApprovals": 1, "eligibleRoles": ["ra"],
                      "escalateAfterSeconds": 10, "escalationRoles": ["lead"] },
                    { "name": "b", "requiredApprovals": 1, "eligibleRoles": ["rb"] }
                ], "escalateAfterSeconds": 20, "escalationRoles": ["boss"] }
            ]}],
            "defaultLevel": "l"
        }))
        .unwrap();
        let change = PolicyChange::parse(
            &json!({
                "policyId": "p", "policyType": "iam", "changeKind": "create",
                "title": "t", "justification": "because it matters",
            }),
            None,
        )
        .unwrap();
        ApprovalRequest::create(
            Uuid::nil(),
            change,
            &Principal::new("alice", &[]),
            &rules,
            "d",
            at(0),
        )
        .unwrap()
    }

    #[test]
    fn escalations_come_due_in_order_and_are_recorded_once_each() {
        let mut request = escalating();
        assert_eq!(request.next_deadline(), Some(at(10_000)));
        assert_eq!(
            request.approver_roles(),
            (false, vec!["ra".to_owned(), "rb".to_owned()])
        );
        assert!(!request.catch_up(at(9_999)));
        assert!(request.catch_up(at(10_000)));
        assert_eq!(request.next_deadline(), Some(at(20_000)));
        assert!(!request.catch_up(at(15_000)), "recorded once");
        let roles = request.approver_roles().1;
        assert_eq!(roles, ["ra", "lead", "rb"]);
        // The group's own escalation lets `lead` in for `a` only.
        let lead = Principal::new("lena", &["lead"]);
        let approved = request
            .apply(&Action::Approve { comment: None }, &lead, at(15_000))
            .unwrap();
        assert_eq!(approved.approvals[0].group.as_deref(), Some("a"));
        assert_eq!(
            code(approved.apply(
                &Action::Approve { comment: None },
                &Principal::new("lou", &["lead"]),
                at(15_000)
            )),
            ErrorCode::NotEligible
        );
        // The stage's escalation covers `b`, which has none of its own.
        assert!(request.catch_up(at(50_000)));
        let escalations: Vec<_> = request
            .history
            .iter()
            .filter(|entry| entry.action == ActionKind::Escalate)
            .map(|entry| (entry.at, entry.group.clone()))
            .collect();
        assert_eq!(
            escalations,
            [(at(10_000), Some("a".to_owned())), (at(20_000), None)]
        );
        assert_eq!(
            request.next_deadline(),
            Some(at(100_000)),
            "then only expiry is left"
        );
    }

    #[test]
    fn every_transition_seals_the_history_into_one_chain() {
        let mut request = escalating();
        let lead = Principal::new("lena", &["lead"]);
        assert!(request.catch_up(at(10_000)));
        let request = request
            .apply(
                &Action::Approve {
                    comment: Some("ok".into()),
                },
                &lead,
                at(11_000),
            )
            .unwrap()
            .apply(
                &Action::Comment {
                    text: "noted".into(),
                },
                &lead,
                at(12_000),
            )
            .unwrap();
        assert!(request.history.iter().all(|entry| entry.hash.is_some()));
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(crate::audit::verify_request(&json), Ok(4));
        let mut forged = json.clone();
        forged["history"][2]["comment"] = serde_json::json!("forged");
        assert_eq!(crate::audit::verify_request(&forged).unwrap_err().index, 2);
    }
}
