//! A proptest state machine over the approval model of docs/CONTRACT.md
//! section 10: a stage of random groups (each with random roles, quorum and
//! escalation), random principals, and random sequences of approvals,
//! rejections, reads and clock steps, run through the [`Manager`] and
//! checked after every step against a reference model: which group each
//! approval counts toward, when the stage is met, and that each escalation
//! is recorded once, at its exact time, only while its group is unmet and
//! before expiry. A second property files emergencies with random roles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: helpers outside #[test] fns fail loudly too"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{Value, json};
use signoff_core::{
    ActionKind, ErrorCode, Manager, MemoryCache, Principal, ReviewOutcome, ReviewStatus, Rules,
    Status, Timestamp,
};
use uuid::Uuid;

const ROLES: [&str; 3] = ["r0", "r1", "r2"];
const START_MS: i64 = 1_767_225_600_000;
const TTL_SECONDS: i64 = 600;

#[derive(Debug, Clone)]
struct GroupSpec {
    required: usize,
    roles: Vec<String>,
    /// Seconds after the stage started, and the role it lets in.
    escalation: Option<(i64, String)>,
}

#[derive(Debug, Clone)]
enum Op {
    Approve(usize),
    Reject(usize),
    Advance(i64),
    Get,
    Sweep,
}

fn role() -> impl Strategy<Value = String> {
    proptest::sample::select(ROLES.to_vec()).prop_map(str::to_owned)
}

fn groups() -> impl Strategy<Value = Vec<GroupSpec>> {
    let group = (
        1usize..=2,
        proptest::sample::subsequence(ROLES.to_vec(), 1..=2),
        proptest::option::of((1i64..=TTL_SECONDS, role())),
    )
        .prop_map(|(required, roles, escalation)| GroupSpec {
            required,
            roles: roles.into_iter().map(str::to_owned).collect(),
            escalation,
        });
    prop::collection::vec(group, 1..=3)
}

/// Principal 0 is the requester; the others hold random roles.
fn principals() -> impl Strategy<Value = Vec<Principal>> {
    prop::collection::vec(proptest::sample::subsequence(ROLES.to_vec(), 0..=2), 5..=7).prop_map(
        |sets| {
            sets.into_iter()
                .enumerate()
                .map(|(i, roles)| Principal {
                    id: format!("p{i}"),
                    roles: roles.into_iter().map(str::to_owned).collect(),
                })
                .collect()
        },
    )
}

fn ops(principals: usize) -> impl Strategy<Value = Vec<Op>> {
    let who = 0..principals;
    let op = prop_oneof![
        6 => who.clone().prop_map(Op::Approve),
        1 => who.prop_map(Op::Reject),
        3 => prop_oneof![1i64..=120_000, Just(TTL_SECONDS * 1000)].prop_map(Op::Advance),
        1 => Just(Op::Get),
        1 => Just(Op::Sweep),
    ];
    prop::collection::vec(op, 1..50)
}

fn rules_of(groups: &[GroupSpec]) -> Rules {
    let groups: Vec<Value> = groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let mut value = json!({
                "name": format!("g{i}"),
                "requiredApprovals": group.required,
                "eligibleRoles": group.roles,
            });
            if let Some((after, role)) = &group.escalation {
                value["escalateAfterSeconds"] = json!(after);
                value["escalationRoles"] = json!([role]);
            }
            value
        })
        .collect();
    Rules::parse(&json!({
        "levels": [{ "name": "level", "ttlSeconds": TTL_SECONDS, "stages": [
            { "name": "s", "groups": groups }
        ]}],
        "defaultLevel": "level",
    }))
    .unwrap()
}

/// The reference model: the status, and the approvers of each group.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    status: Status,
    counted: Vec<Vec<usize>>,
}

impl Model {
    fn escalated(group: &GroupSpec, now: i64) -> bool {
        group.escalation.as_ref().is_some_and(|(after, _)| {
            let at = START_MS + after * 1000;
            at < START_MS + TTL_SECONDS * 1000 && now >= at
        })
    }

    fn admits(group: &GroupSpec, principal: &Principal, now: i64) -> bool {
        group
            .roles
            .iter()
            .any(|role| principal.roles.contains(role))
            || (Self::escalated(group, now)
                && group
                    .escalation
                    .as_ref()
                    .is_some_and(|(_, role)| principal.roles.contains(role)))
    }

    /// The group an approval by `p` counts toward now, or the refusal.
    fn approve(
        &self,
        groups: &[GroupSpec],
        principals: &[Principal],
        p: usize,
        now: i64,
        rejecting: bool,
    ) -> Result<Option<usize>, ErrorCode> {
        let due = self.status == Status::Pending && now >= START_MS + TTL_SECONDS * 1000;
        if due || self.status == Status::Expired {
            return Err(ErrorCode::Expired);
        }
        if self.status != Status::Pending {
            return Err(ErrorCode::NotPending);
        }
        if p == 0 {
            return Err(ErrorCode::SelfApproval);
        }
        if self.counted.iter().any(|group| group.contains(&p)) {
            return Err(ErrorCode::AlreadyApproved);
        }
        let principal = &principals[p];
        if rejecting {
            return if groups.iter().any(|g| Self::admits(g, principal, now)) {
                Ok(None)
            } else {
                Err(ErrorCode::NotEligible)
            };
        }
        groups
            .iter()
            .enumerate()
            .find(|(i, g)| Self::admits(g, principal, now) && self.counted[*i].len() < g.required)
            .map(|(i, _)| Some(i))
            .ok_or(ErrorCode::NotEligible)
    }
}

fn run(
    groups: Vec<GroupSpec>,
    principals: Vec<Principal>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock_now = now.clone();
    let manager = Manager::new(
        MemoryCache::new(),
        move || Timestamp::from_millis(clock_now.load(Ordering::SeqCst)),
        || Uuid::from_u128(9),
        rules_of(&groups),
    );
    let change = json!({
        "policyId": "p", "policyType": "iam", "changeKind": "update",
        "title": "t", "justification": "because it matters",
    });
    block_on(manager.create(&change, &principals[0], None)).unwrap();
    let key = Uuid::from_u128(9).to_string();
    let mut model = Model {
        status: Status::Pending,
        counted: vec![Vec::new(); groups.len()],
    };
    for (step, op) in ops.iter().enumerate() {
        let at = now.load(Ordering::SeqCst);
        match op {
            Op::Advance(ms) => {
                now.fetch_add(*ms, Ordering::SeqCst);
            }
            Op::Get => {
                block_on(manager.get(&key)).unwrap();
            }
            Op::Sweep => {
                block_on(manager.expire_due(100)).unwrap();
            }
            Op::Approve(p) | Op::Reject(p) => {
                let rejecting = matches!(op, Op::Reject(_));
                let expected = model.approve(&groups, &principals, *p, at, rejecting);
                let result = if rejecting {
                    block_on(manager.reject(&key, &principals[*p], "no".into()))
                } else {
                    block_on(manager.approve(&key, &principals[*p], None))
                };
                match (&result, expected) {
                    (Ok(answer), Ok(Some(group))) => {
                        let last = answer.approvals.last().unwrap();
                        prop_assert_eq!(
                            last.group.clone(),
                            Some(format!("g{group}")),
                            "step {}",
                            step
                        );
                        model.counted[group].push(*p);
                        let met = model
                            .counted
                            .iter()
                            .zip(&groups)
                            .all(|(counted, g)| counted.len() >= g.required);
                        if met {
                            model.status = Status::Approved;
                        }
                    }
                    (Ok(_), Ok(None)) => model.status = Status::Rejected,
                    (Err(error), Err(code)) => {
                        prop_assert_eq!(error.code(), code, "step {} {:?}", step, op)
                    }
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {op:?} at {at}: expected {want:?}, got {got:?}"
                        )));
                    }
                }
            }
        }
        if model.status == Status::Pending
            && now.load(Ordering::SeqCst) >= START_MS + TTL_SECONDS * 1000
            && matches!(op, Op::Get | Op::Sweep)
        {
            model.status = Status::Expired;
        }
        // The stored request, brought up to date, against the model.
        let request = block_on(manager.get(&key)).unwrap().unwrap();
        if model.status == Status::Pending && request.status == Status::Expired {
            model.status = Status::Expired;
        }
        prop_assert_eq!(request.status, model.status, "step {} {:?}", step, op);
        for (i, counted) in model.counted.iter().enumerate() {
            let stored: Vec<String> = request
                .approvals
                .iter()
                .filter(|a| a.group.as_deref() == Some(&format!("g{i}")))
                .map(|a| a.by.clone())
                .collect();
            let expected: Vec<String> = counted.iter().map(|p| format!("p{p}")).collect();
            prop_assert_eq!(stored, expected);
            prop_assert!(counted.len() <= groups[i].required, "g{} over-approved", i);
        }
        // Each escalation once, at its exact time, only for a group that
        // was unmet when it fell due, and never at or after expiry.
        let read_at = now.load(Ordering::SeqCst);
        for (i, group) in groups.iter().enumerate() {
            let entries: Vec<_> = request
                .history
                .iter()
                .filter(|e| {
                    e.action == ActionKind::Escalate && e.group.as_deref() == Some(&format!("g{i}"))
                })
                .collect();
            prop_assert!(entries.len() <= 1, "g{} escalated twice", i);
            if let Some(entry) = entries.first() {
                let (after, _) = group
                    .escalation
                    .as_ref()
                    .expect("only escalating groups escalate");
                prop_assert_eq!(entry.at.as_millis(), START_MS + after * 1000);
                prop_assert_eq!(entry.actor.as_str(), "system");
                prop_assert!(*after < TTL_SECONDS);
            } else if let Some((after, _)) = &group.escalation {
                // Read just now: a pending request whose group is still
                // unmet (so it was unmet when the escalation fell due) has
                // it recorded once its time has come.
                let due = START_MS + after * 1000;
                prop_assert!(
                    !(request.status == Status::Pending
                        && read_at >= due
                        && *after < TTL_SECONDS
                        && model.counted[i].len() < group.required),
                    "g{} due at {} but not recorded",
                    i,
                    due
                );
            }
        }
        prop_assert_eq!(
            signoff_core::audit::verify_request(&serde_json::to_value(&request).unwrap()),
            Ok(request.history.len())
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn group_stages_count_each_approval_once_and_escalate_once(
        (groups, principals, ops) in (groups(), principals())
            .prop_flat_map(|(groups, principals)| {
                let count = principals.len();
                (Just(groups), Just(principals), ops(count))
            })
    ) {
        run(groups, principals, ops)?;
    }

    #[test]
    fn an_emergency_is_approved_at_once_only_for_an_allowed_role_and_reviewed_once(
        filer_roles in proptest::sample::subsequence(ROLES.to_vec(), 0..=2),
        reviewers in prop::collection::vec(proptest::sample::subsequence(ROLES.to_vec(), 0..=2), 1..=4),
    ) {
        let rules = Rules::parse(&json!({
            "levels": [{ "name": "critical", "ttlSeconds": TTL_SECONDS,
                "emergency": { "allowedRoles": ["r0"], "reviewWithinSeconds": 60 },
                "stages": [{ "name": "s", "requiredApprovals": 1, "eligibleRoles": ["r1"] }] }],
            "defaultLevel": "critical",
        })).unwrap();
        let manager = Manager::new(MemoryCache::new(), || Timestamp::from_millis(START_MS), || Uuid::from_u128(5), rules);
        let filer = Principal { id: "filer".into(), roles: filer_roles.iter().map(|r| (*r).to_owned()).collect() };
        let change = json!({
            "policyId": "p", "policyType": "iam", "changeKind": "update", "title": "t",
            "justification": "because it matters", "emergency": { "reason": "the site is down" },
        });
        let filed = block_on(manager.create(&change, &filer, None));
        if !filer_roles.contains(&"r0") {
            prop_assert_eq!(filed.unwrap_err().code(), ErrorCode::Forbidden);
            return Ok(());
        }
        let request = filed.unwrap().request;
        prop_assert_eq!(request.status, Status::Approved);
        prop_assert!(request.change.emergency.is_none());
        let id = request.id.to_string();
        let mut closed = false;
        for (i, roles) in reviewers.iter().enumerate() {
            let reviewer = Principal { id: format!("r{i}"), roles: roles.iter().map(|r| (*r).to_owned()).collect() };
            let result = block_on(manager.review(&id, &reviewer, ReviewOutcome::Ratified, None));
            let expected = if closed {
                Some(ErrorCode::NotPending)
            } else if !roles.contains(&"r1") {
                Some(ErrorCode::NotEligible)
            } else {
                None
            };
            match (result, expected) {
                (Ok(answer), None) => {
                    closed = true;
                    let review = &answer.emergency.as_ref().unwrap().review;
                    prop_assert_eq!(review.status, ReviewStatus::Ratified);
                    prop_assert_eq!(review.by.clone(), Some(reviewer.id.clone()));
                }
                (Err(error), Some(code)) => prop_assert_eq!(error.code(), code),
                (got, want) => return Err(TestCaseError::fail(format!("expected {want:?}, got {got:?}"))),
            }
        }
        let stored = block_on(manager.get(&id)).unwrap().unwrap();
        prop_assert_eq!(stored.review_open(), !closed);
        prop_assert_eq!(stored.status, Status::Approved);
    }
}
