//! A proptest state machine over the lifecycle: random multi-stage rules,
//! random principals and random sequences of actions, run through the
//! [`Manager`] and checked after every step against a small reference model
//! and against every invariant of docs/CONTRACT.md section 4, with the error codes in the
//! order of docs/CONTRACT.md section 9.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: helpers outside #[test] fns fail loudly too"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::json;
use signoff_core::{
    ActionKind, ApprovalRequest, ErrorCode, EventType, Manager, MemoryCache, Principal, Rules,
    Status, Timestamp, keys,
};
use uuid::Uuid;

const ROLES: [&str; 3] = ["r0", "r1", "r2"];
const START_MS: i64 = 1_767_225_600_000;
const TTL_SECONDS: i64 = 600;

#[derive(Debug, Clone)]
struct StageSpec {
    required: usize,
    roles: Vec<String>,
}

#[derive(Debug, Clone)]
enum Op {
    Approve(usize),
    Reject(usize),
    Cancel(usize),
    Comment(usize),
    /// An amend by a principal: of the wording alone (`true`), which keeps
    /// the approvals, or of the policy id, which starts the request again.
    Amend(usize, bool),
    Advance(i64),
    Expire,
    Get,
}

fn role_set() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(ROLES.to_vec(), 0..=2)
        .prop_map(|roles| roles.into_iter().map(str::to_owned).collect())
}

fn stages() -> impl Strategy<Value = Vec<StageSpec>> {
    prop::collection::vec(
        (1usize..=3, role_set()).prop_map(|(required, roles)| StageSpec { required, roles }),
        1..=4,
    )
}

/// Principal 0 is the requester; the others hold random roles.
fn principals() -> impl Strategy<Value = Vec<Principal>> {
    prop::collection::vec(role_set(), 6..=8).prop_map(|sets| {
        sets.into_iter()
            .enumerate()
            .map(|(i, roles)| Principal {
                id: format!("p{i}"),
                roles,
            })
            .collect()
    })
}

fn ops(principals: usize) -> impl Strategy<Value = Vec<Op>> {
    let who = 0..principals;
    let op = prop_oneof![
        6 => who.clone().prop_map(Op::Approve),
        1 => who.clone().prop_map(Op::Reject),
        1 => who.clone().prop_map(Op::Cancel),
        2 => who.clone().prop_map(Op::Comment),
        1 => (who, any::<bool>()).prop_map(|(p, wording)| Op::Amend(p, wording)),
        // Mostly small steps, sometimes right up to or past the deadline.
        2 => prop_oneof![1i64..=60_000, Just(TTL_SECONDS * 1000 - 1), Just(TTL_SECONDS * 1000)]
            .prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => Just(Op::Get),
    ];
    prop::collection::vec(op, 1..60)
}

fn rules_of(stages: &[StageSpec]) -> Rules {
    let stages: Vec<_> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({ "name": format!("s{i}"), "requiredApprovals": s.required, "eligibleRoles": s.roles })
        })
        .collect();
    Rules::parse(&json!({
        "levels": [{ "name": "level", "ttlSeconds": TTL_SECONDS, "stages": stages }],
        "defaultLevel": "level",
    }))
    .unwrap()
}

/// What the contract says the request should be: the reference model.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    status: Status,
    /// Index of the current stage while pending.
    stage: usize,
    /// `(principal index, stage index)` of each counted approval.
    approvals: Vec<(usize, usize)>,
    version: u64,
    history_len: usize,
    updated_at: i64,
    expires_at: i64,
}

impl Model {
    fn expire_if_due(&mut self, now: i64) {
        if self.status == Status::Pending && now >= self.expires_at {
            self.status = Status::Expired;
            self.version += 1;
            self.history_len += 1;
            self.updated_at = self.expires_at;
        }
    }

    /// The docs/CONTRACT.md section 9 order for approve/reject/cancel after expiry.
    fn check(&self, op: &Op, principals: &[Principal], stages: &[StageSpec]) -> Option<ErrorCode> {
        if self.status == Status::Expired {
            return Some(ErrorCode::Expired);
        }
        if self.status != Status::Pending {
            return Some(ErrorCode::NotPending);
        }
        match *op {
            Op::Approve(p) | Op::Reject(p) => {
                if p == 0 {
                    return Some(ErrorCode::SelfApproval);
                }
                if self.approvals.iter().any(|(by, _)| *by == p) {
                    return Some(ErrorCode::AlreadyApproved);
                }
                let stage = &stages[self.stage];
                let eligible = stage.roles.is_empty()
                    || stage.roles.iter().any(|r| principals[p].roles.contains(r));
                (!eligible).then_some(ErrorCode::NotEligible)
            }
            Op::Cancel(p) | Op::Amend(p, _) => (p != 0).then_some(ErrorCode::Forbidden),
            _ => None,
        }
    }

    /// Applies a successful action (never called for the clock or reads).
    fn apply(&mut self, op: &Op, now: i64, stages: &[StageSpec]) {
        self.version += 1;
        self.history_len += 1;
        match *op {
            Op::Approve(p) => {
                self.approvals.push((p, self.stage));
                self.updated_at = now;
                let counted = self
                    .approvals
                    .iter()
                    .filter(|(_, s)| *s == self.stage)
                    .count();
                if counted >= stages[self.stage].required {
                    if self.stage + 1 == stages.len() {
                        self.status = Status::Approved;
                    } else {
                        self.stage += 1;
                    }
                }
            }
            Op::Reject(_) => {
                self.status = Status::Rejected;
                self.updated_at = now;
            }
            Op::Cancel(_) => {
                self.status = Status::Cancelled;
                self.updated_at = now;
            }
            Op::Comment(_) => {}
            Op::Amend(_, wording) => {
                self.updated_at = now;
                if !wording {
                    self.approvals.clear();
                    self.stage = 0;
                    self.expires_at = now + TTL_SECONDS * 1000;
                }
            }
            Op::Advance(_) | Op::Expire | Op::Get => {}
        }
    }
}

fn stored(cache: &MemoryCache, id: Uuid) -> ApprovalRequest {
    let entry = cache
        .get_now(&keys::Layout::default().request(&id))
        .expect("the request is stored");
    serde_json::from_slice(&entry.value).unwrap()
}

/// Every docs/CONTRACT.md section 4 invariant that a single stored state must satisfy.
fn check_invariants(
    request: &ApprovalRequest,
    principals: &[Principal],
    stages: &[StageSpec],
) -> Result<(), TestCaseError> {
    let requester = &principals[0].id;
    let mut seen = HashSet::new();
    let mut last_stage = 0;
    for approval in &request.approvals {
        prop_assert_ne!(&approval.by, requester, "self approval counted");
        prop_assert!(
            seen.insert(approval.by.clone()),
            "{} approved twice",
            approval.by
        );
        let stage: usize = approval.stage[1..].parse().unwrap();
        prop_assert!(stage >= last_stage, "approvals went back a stage");
        last_stage = stage;
        let holder = principals.iter().find(|p| p.id == approval.by).unwrap();
        let roles = &stages[stage].roles;
        prop_assert!(
            roles.is_empty() || roles.iter().any(|r| holder.roles.contains(r)),
            "{} is not eligible for {}",
            approval.by,
            approval.stage
        );
    }
    let count = |stage: usize| {
        request
            .approvals
            .iter()
            .filter(|a| a.stage == format!("s{stage}"))
            .count()
    };
    for (i, spec) in stages.iter().enumerate() {
        prop_assert!(count(i) <= spec.required, "stage s{i} over-approved");
    }
    match request.status {
        Status::Pending => {
            let current: usize = request.stage.as_ref().unwrap()[1..].parse().unwrap();
            for (i, spec) in stages.iter().enumerate().take(current) {
                prop_assert_eq!(count(i), spec.required, "stage s{} passed early", i);
            }
            prop_assert!(count(current) < stages[current].required);
        }
        Status::Approved => {
            prop_assert!(request.stage.is_none());
            for (i, spec) in stages.iter().enumerate() {
                prop_assert_eq!(count(i), spec.required);
            }
        }
        _ => prop_assert!(request.stage.is_none(), "a terminal request has a stage"),
    }
    prop_assert_eq!(
        request.rejection.is_some(),
        request.status == Status::Rejected
    );
    if request.status == Status::Expired {
        prop_assert_eq!(request.updated_at, request.expires_at);
        let expiry = request
            .history
            .iter()
            .find(|entry| entry.action == ActionKind::Expire)
            .expect("an expiry entry");
        prop_assert_eq!(expiry.actor.as_str(), "system");
        prop_assert_eq!(expiry.at, request.expires_at);
    }
    prop_assert!(request.history.len() as u64 <= request.version);
    Ok(())
}

fn run(
    stages: Vec<StageSpec>,
    principals: Vec<Principal>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock_now = now.clone();
    let cache = MemoryCache::new();
    let id = Uuid::from_u128(7);
    let manager = Manager::new(
        cache.clone(),
        move || Timestamp::from_millis(clock_now.load(Ordering::SeqCst)),
        move || id,
        rules_of(&stages),
    );
    let change = json!({
        "policyId": "p", "policyType": "iam", "changeKind": "update",
        "title": "t", "justification": "because it matters",
    });
    block_on(manager.create(&change, &principals[0], None)).unwrap();
    let mut model = Model {
        status: Status::Pending,
        stage: 0,
        approvals: Vec::new(),
        version: 1,
        history_len: 1,
        updated_at: START_MS,
        expires_at: START_MS + TTL_SECONDS * 1000,
    };
    let mut before = stored(&cache, id);
    let key = id.to_string();
    let mut policy_id = "p".to_owned();
    for (step, op) in ops.iter().enumerate() {
        let at = now.load(Ordering::SeqCst);
        let expected_error = match op {
            Op::Advance(ms) => {
                now.fetch_add(*ms, Ordering::SeqCst);
                None
            }
            Op::Expire => {
                let report = block_on(manager.expire_due(100)).unwrap();
                let was_due = model.status == Status::Pending && at >= model.expires_at;
                model.expire_if_due(at);
                prop_assert_eq!(report.ids.len(), usize::from(was_due), "step {}", step);
                None
            }
            Op::Get => {
                model.expire_if_due(at);
                let got = block_on(manager.get(&key)).unwrap().unwrap();
                prop_assert_eq!(got.version, model.version);
                None
            }
            Op::Approve(p) | Op::Reject(p) | Op::Cancel(p) | Op::Comment(p) | Op::Amend(p, _) => {
                model.expire_if_due(at);
                // A comment is taken in any state (the history stays far
                // below its cap of 1000 entries here).
                let expected = match op {
                    Op::Comment(_) => None,
                    _ => model.check(op, &principals, &stages),
                };
                let principal = &principals[*p];
                let result = match op {
                    Op::Approve(_) => block_on(manager.approve(&key, principal, Some("ok".into()))),
                    Op::Reject(_) => block_on(manager.reject(&key, principal, "no".into())),
                    Op::Cancel(_) => block_on(manager.cancel(&key, principal)),
                    Op::Amend(_, wording) => {
                        // A wording amend keeps the policy id in force; any
                        // other gives a new one.
                        let mut amended = change.clone();
                        amended["title"] = json!(format!("t{step}"));
                        amended["policyId"] = json!(if *wording {
                            policy_id.clone()
                        } else {
                            format!("p{step}")
                        });
                        block_on(manager.amend(&key, principal, &amended))
                    }
                    _ => block_on(manager.comment(&key, principal, "note".into())),
                };
                match (&result, expected) {
                    (Ok(answer), None) => {
                        model.apply(op, at, &stages);
                        policy_id = answer.change.policy_id.clone();
                        prop_assert_eq!(
                            answer,
                            &stored(&cache, id),
                            "the answer is the stored request"
                        );
                    }
                    (Err(error), Some(code)) => {
                        prop_assert_eq!(error.code(), code, "step {} {:?}", step, op)
                    }
                    (Ok(_), Some(code)) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {op:?}: expected {code}, got success"
                        )));
                    }
                    (Err(error), None) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {op:?}: expected success, got {error}"
                        )));
                    }
                }
                expected
            }
        };
        let after = stored(&cache, id);
        // The model and the store agree.
        prop_assert_eq!(after.status, model.status, "step {} {:?}", step, op);
        prop_assert_eq!(after.version, model.version, "step {} {:?}", step, op);
        prop_assert_eq!(after.history.len(), model.history_len);
        prop_assert_eq!(after.updated_at.as_millis(), model.updated_at);
        let approvals: Vec<(String, String)> = model
            .approvals
            .iter()
            .map(|(p, s)| (format!("p{p}"), format!("s{s}")))
            .collect();
        let found: Vec<(String, String)> = after
            .approvals
            .iter()
            .map(|a| (a.by.clone(), a.stage.clone()))
            .collect();
        prop_assert_eq!(found, approvals);
        if model.status == Status::Pending {
            prop_assert_eq!(after.stage.clone(), Some(format!("s{}", model.stage)));
        }
        // The version moves by exactly one per change, the history only grows.
        let changes = after.history.len() - before.history.len();
        prop_assert_eq!(after.version - before.version, changes as u64);
        prop_assert_eq!(&after.history[..before.history.len()], &before.history[..]);
        if expected_error.is_some() && before.status == after.status {
            prop_assert_eq!(&after, &before, "a failed action changed the request");
        }
        // Terminal states are frozen: only comments are appended.
        if before.status.is_terminal() {
            prop_assert_eq!(after.status, before.status);
            prop_assert_eq!(&after.stage, &before.stage);
            prop_assert_eq!(&after.approvals, &before.approvals);
            prop_assert_eq!(&after.rejection, &before.rejection);
            prop_assert_eq!(after.updated_at, before.updated_at);
            for entry in &after.history[before.history.len()..] {
                prop_assert_eq!(entry.action, ActionKind::Comment);
            }
        }
        check_invariants(&after, &principals, &stages)?;
        before = after;
    }
    check_events_rebuild(&manager, &before)
}

/// The events replayed from empty rebuild the request: its status, its
/// approvals (an amend that reset them clears them), one event per history
/// entry besides the derived ones, and one unbroken hash chain.
fn check_events_rebuild<
    C: signoff_core::Cache,
    K: signoff_core::Clock,
    I: signoff_core::IdSource,
>(
    manager: &Manager<C, K, I>,
    request: &ApprovalRequest,
) -> Result<(), TestCaseError> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = block_on(manager.events(after.as_deref(), 7, None)).unwrap();
        events.extend(page.items);
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect();
    prop_assert_eq!(
        signoff_core::audit::verify_events(&values),
        Ok(events.len())
    );
    let mut ids: Vec<&String> = events.iter().map(|event| &event.id).collect();
    let listed = ids.clone();
    ids.sort();
    ids.dedup();
    prop_assert_eq!(ids, listed, "events come once each, in id order");
    let mut status = None;
    let mut approvals: Vec<(String, String)> = Vec::new();
    let mut recorded = 0;
    for event in &events {
        status = event.status;
        match event.kind {
            EventType::Approval => {
                approvals.push((event.actor.clone(), event.stage.clone().unwrap()));
            }
            EventType::Amended if event.data.as_ref().unwrap()["approvalsReset"] == true => {
                approvals.clear();
            }
            _ => {}
        }
        if !matches!(event.kind, EventType::StagePassed | EventType::Approved) {
            recorded += 1;
        }
    }
    prop_assert_eq!(status, Some(request.status));
    let stored: Vec<(String, String)> = request
        .approvals
        .iter()
        .map(|approval| (approval.by.clone(), approval.stage.clone()))
        .collect();
    prop_assert_eq!(approvals, stored);
    prop_assert_eq!(recorded, request.history.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_lifecycle_keeps_every_invariant(
        (stages, principals, ops) in (stages(), principals())
            .prop_flat_map(|(stages, principals)| {
                let count = principals.len();
                (Just(stages), Just(principals), ops(count))
            })
    ) {
        run(stages, principals, ops)?;
    }
}
