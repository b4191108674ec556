//! What a principal may do to a request now, and why not.
//!
//! An editor disables a button with its reason before anyone clicks; the
//! answer must be the one the action itself would give. So nothing here
//! restates a lifecycle rule: each action is tried on a copy of the request
//! with [`ApprovalRequest::apply`], the one place where the rules live, and a
//! refusal is the error that the action would have returned, with its code
//! and message. Texts the caller has not typed yet (a reason, a comment) are
//! assumed valid: their checks belong to the form, not to the request.

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::error::{Error, ErrorCode};
use crate::manager::{Clock, IdSource, Manager};
use crate::request::{Action, ApprovalRequest, Principal, ReviewOutcome};
use crate::time::Timestamp;

/// Why an action is refused: the error the action would return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refusal {
    /// The stable error code, such as `not_eligible`.
    pub code: ErrorCode,
    /// The error's message, for people.
    pub reason: String,
}

/// Each action of the lifecycle, `null` when the principal may take it now,
/// else its [`Refusal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedActions {
    /// `approve`.
    pub approve: Option<Refusal>,
    /// `reject`.
    pub reject: Option<Refusal>,
    /// `cancel`.
    pub cancel: Option<Refusal>,
    /// `comment`.
    pub comment: Option<Refusal>,
    /// `amend`, whatever the new change.
    pub amend: Option<Refusal>,
    /// `review`: closing an emergency's after-the-fact review.
    pub review: Option<Refusal>,
}

impl AllowedActions {
    /// Whether `principal` may take each action on `request` at `now`. The
    /// request may be stale: it is brought up to date with the clock first,
    /// as every action does.
    pub fn of(request: &ApprovalRequest, principal: &Principal, now: Timestamp) -> Self {
        let mut current = request.clone();
        current.catch_up(now);
        let refused = |error: Error| Refusal {
            code: error.code(),
            reason: error.to_string(),
        };
        let refusal = |action: Action| current.apply(&action, principal, now).err().map(refused);
        // Placeholder texts: any valid text gives the same answer.
        let text = || "ok".to_owned();
        Self {
            approve: refusal(Action::Approve { comment: None }),
            reject: refusal(Action::Reject { reason: text() }),
            cancel: refusal(Action::Cancel),
            comment: refusal(Action::Comment { text: text() }),
            amend: current.ensure_may_amend(principal, now).err().map(refused),
            review: refusal(Action::Review {
                outcome: ReviewOutcome::Ratified,
                comment: None,
            }),
        }
    }
}

impl<C: Cache, K: Clock, I: IdSource> Manager<C, K, I> {
    /// What `principal` may do now to the stored request `id`
    /// (`not_found` when unknown, or when the principal may not see it).
    pub async fn allowed_actions(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Result<AllowedActions, Error> {
        let request = self
            .get_as(id, Some(principal))
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        Ok(AllowedActions::of(&request, principal, self.now()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on a broken fixture")]
mod tests {
    use super::*;
    use crate::change::PolicyChange;
    use crate::rules::Rules;
    use serde_json::json;
    use uuid::Uuid;

    fn request() -> ApprovalRequest {
        let rules = Rules::parse(&json!({
            "levels": [{ "name": "peer", "ttlSeconds": 60, "stages": [
                { "name": "review", "requiredApprovals": 2, "eligibleRoles": ["eng"] }
            ]}],
            "defaultLevel": "peer"
        }))
        .unwrap();
        let change = PolicyChange::parse(
            &json!({
                "policyId": "p", "policyType": "iam", "changeKind": "update",
                "title": "t", "justification": "because it matters"
            }),
            None,
        )
        .unwrap();
        ApprovalRequest::create(
            Uuid::from_u128(1),
            change,
            &Principal::new("alice", &["eng"]),
            &rules,
            "digest",
            Timestamp::from_millis(0),
        )
        .unwrap()
    }

    fn code(refusal: Option<Refusal>) -> Option<ErrorCode> {
        refusal.map(|refusal| refusal.code)
    }

    #[test]
    fn the_requester_may_cancel_and_comment_but_not_decide() {
        let allowed = AllowedActions::of(
            &request(),
            &Principal::new("alice", &["eng"]),
            Timestamp::from_millis(1),
        );
        assert_eq!(code(allowed.approve), Some(ErrorCode::SelfApproval));
        assert_eq!(code(allowed.reject), Some(ErrorCode::SelfApproval));
        assert_eq!(code(allowed.cancel), None);
        assert_eq!(code(allowed.comment), None);
    }

    #[test]
    fn an_eligible_approver_may_decide_once() {
        let bob = Principal::new("bob", &["eng"]);
        let now = Timestamp::from_millis(1);
        let allowed = AllowedActions::of(&request(), &bob, now);
        assert_eq!(code(allowed.approve.clone()), None);
        assert_eq!(code(allowed.cancel), Some(ErrorCode::Forbidden));
        let approved = request()
            .apply(&Action::Approve { comment: None }, &bob, now)
            .unwrap();
        let allowed = AllowedActions::of(&approved, &bob, now);
        assert_eq!(code(allowed.approve), Some(ErrorCode::AlreadyApproved));
        assert_eq!(code(allowed.reject), Some(ErrorCode::AlreadyApproved));
    }

    #[test]
    fn a_stale_request_is_judged_as_the_clock_sees_it() {
        let carol = Principal::new("carol", &["ops"]);
        let allowed = AllowedActions::of(&request(), &carol, Timestamp::from_millis(1));
        assert_eq!(code(allowed.approve), Some(ErrorCode::NotEligible));
        let later = Timestamp::from_millis(61_000);
        let allowed = AllowedActions::of(&request(), &carol, later);
        assert_eq!(code(allowed.approve), Some(ErrorCode::Expired));
        assert_eq!(code(allowed.cancel), Some(ErrorCode::Expired));
        assert_eq!(code(allowed.comment), None);
    }
}
