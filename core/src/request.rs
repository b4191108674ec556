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
use crate::rules::{LevelExplanation, Rules, Stage};
use crate::time::Timestamp;

/// The actor recorded for transitions the clock makes.
pub const SYSTEM_ACTOR: &str = "system";

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
    /// When.
    pub at: Timestamp,
    /// An optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub comment: Option<String>,
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
    /// The comment, approval note or rejection reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub comment: Option<String>,
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
    /// Digest of the rules that decided it.
    pub rules_digest: String,
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
}

impl ApprovalRequest {
    /// Files a validated change: decides its level and starts it pending at the
    /// first stage, or approved when the level has no stages.
    pub fn create(
        id: Uuid,
        change: PolicyChange,
        requester: &Principal,
        rules: &Rules,
        rules_digest: &str,
        now: Timestamp,
    ) -> Self {
        let determination = rules.determine(&change);
        let level = rules.levels.get(determination.level_index);
        let stages = level.map(|level| level.stages.clone()).unwrap_or_default();
        let ttl = level.map_or(0, |level| level.ttl_seconds);
        let first_stage = stages.first().map(|stage| stage.name.clone());
        let status = if first_stage.is_some() {
            Status::Pending
        } else {
            Status::Approved
        };
        Self {
            id,
            change,
            requested_by: requester.id.clone(),
            level: level.map(|level| level.name.clone()).unwrap_or_default(),
            level_explanation: determination.explanation,
            stages,
            status,
            stage: first_stage.clone(),
            approvals: Vec::new(),
            rejection: None,
            created_at: now,
            updated_at: now,
            expires_at: now.plus_seconds(u64::from(ttl)),
            version: 1,
            rules_digest: rules_digest.to_owned(),
            history: vec![HistoryEntry {
                at: now,
                actor: requester.id.clone(),
                action: ActionKind::Create,
                stage: first_stage,
                comment: None,
            }],
        }
    }

    /// Whether the request is pending but past its `expiresAt` at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.status == Status::Pending && now >= self.expires_at
    }

    /// The request as the clock sees it at `now`: expired (at `expiresAt`, by
    /// `system`) if it is due, else unchanged. Returns whether it changed.
    pub fn expire_if_due(&mut self, now: Timestamp) -> bool {
        if !self.is_due(now) {
            return false;
        }
        self.history.push(HistoryEntry {
            at: self.expires_at,
            actor: SYSTEM_ACTOR.to_owned(),
            action: ActionKind::Expire,
            stage: self.stage.take(),
            comment: None,
        });
        self.status = Status::Expired;
        self.updated_at = self.expires_at;
        self.version += 1;
        true
    }

    fn current_stage(&self) -> Option<&Stage> {
        let name = self.stage.as_deref()?;
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The checks shared by approve, reject and cancel, in the order of the
    /// specification: expired, then not pending.
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

    /// The checks of approve and reject: the caller is not the requester, has
    /// not approved before and holds a role of the current stage.
    fn ensure_may_decide(&self, principal: &Principal) -> Result<&Stage, Error> {
        if principal.id == self.requested_by {
            return Err(Error::SelfApproval(principal.id.clone()));
        }
        if self
            .approvals
            .iter()
            .any(|approval| approval.by == principal.id)
        {
            return Err(Error::AlreadyApproved(principal.id.clone()));
        }
        let stage = self.current_stage().ok_or_else(|| {
            Error::Internal(format!("request `{}` has no current stage", self.id))
        })?;
        if !stage.admits(&principal.roles) {
            return Err(Error::NotEligible {
                principal: principal.id.clone(),
                stage: stage.name.clone(),
            });
        }
        Ok(stage)
    }

    /// Applies `action` by `principal` at `now`, returning the new request.
    /// The request must already have been brought up to date with
    /// [`ApprovalRequest::expire_if_due`] by the caller that stores it.
    pub fn apply(
        &self,
        action: &Action,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let mut next = self.clone();
        let entry =
            |action: ActionKind, stage: Option<String>, comment: Option<String>| HistoryEntry {
                at: now,
                actor: principal.id.clone(),
                action,
                stage,
                comment,
            };
        match action {
            Action::Approve { comment } => {
                self.ensure_actionable(now)?;
                let stage = self.ensure_may_decide(principal)?;
                next.approvals.push(Approval {
                    by: principal.id.clone(),
                    stage: stage.name.clone(),
                    at: now,
                    comment: comment.clone(),
                });
                next.history.push(entry(
                    ActionKind::Approve,
                    Some(stage.name.clone()),
                    comment.clone(),
                ));
                let counted = next
                    .approvals
                    .iter()
                    .filter(|approval| approval.stage == stage.name)
                    .count();
                if counted >= usize::try_from(stage.required_approvals).unwrap_or(usize::MAX) {
                    let position = self.stages.iter().position(|s| s.name == stage.name);
                    match position.and_then(|position| self.stages.get(position + 1)) {
                        Some(following) => next.stage = Some(following.name.clone()),
                        None => {
                            next.stage = None;
                            next.status = Status::Approved;
                        }
                    }
                }
                next.updated_at = now;
            }
            Action::Reject { reason } => {
                self.ensure_actionable(now)?;
                let stage = self.ensure_may_decide(principal)?;
                next.rejection = Some(Rejection {
                    by: principal.id.clone(),
                    stage: stage.name.clone(),
                    at: now,
                    reason: reason.clone(),
                });
                next.history.push(entry(
                    ActionKind::Reject,
                    Some(stage.name.clone()),
                    Some(reason.clone()),
                ));
                next.status = Status::Rejected;
                next.stage = None;
                next.updated_at = now;
            }
            Action::Cancel => {
                self.ensure_actionable(now)?;
                if principal.id != self.requested_by {
                    return Err(Error::Forbidden(format!(
                        "only the requester `{}` may cancel this request",
                        self.requested_by
                    )));
                }
                next.history
                    .push(entry(ActionKind::Cancel, self.stage.clone(), None));
                next.status = Status::Cancelled;
                next.stage = None;
                next.updated_at = now;
            }
            Action::Comment { text } => {
                if self.history.len() >= MAX_HISTORY {
                    return Err(Error::invalid(
                        format!("the history already holds {MAX_HISTORY} entries"),
                        Vec::new(),
                    ));
                }
                next.history.push(entry(
                    ActionKind::Comment,
                    self.stage.clone(),
                    Some(text.clone()),
                ));
            }
        }
        next.version += 1;
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
}
