//! Concurrent writers (docs/CONTRACT.md section 4): every write is a compare-and-swap on
//! the version, retried against the fresh state, so no approval is lost or
//! counted twice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: helpers outside #[test] fns fail loudly too"
)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use futures::executor::block_on;
use serde_json::{Value, json};
use signoff_core::manager::MAX_ATTEMPTS;
use signoff_core::{
    ActionKind, Batch, Cache, CacheError, CommitOutcome, Entry, ErrorCode, IndexEntry, Manager,
    MemoryCache, Principal, Rules, Status, Timestamp,
};
use uuid::Uuid;

const APPROVERS: usize = 64;

fn rules(required: usize) -> Rules {
    Rules::parse(&json!({
        "levels": [{ "name": "crowd", "ttlSeconds": 86400, "stages": [
            { "name": "everyone", "requiredApprovals": required, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "crowd",
    }))
    .unwrap()
}

fn change() -> Value {
    json!({
        "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
        "title": "Add bob", "justification": "Bob joins the on-call rotation.",
    })
}

fn clock() -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000)
}

fn approver(n: usize) -> Principal {
    Principal::new(format!("approver-{n:02}"), &["engineer"])
}

#[test]
fn sixty_four_threads_approve_at_once_and_every_approval_counts_once() {
    let cache = MemoryCache::new();
    let manager = Manager::new(cache, clock, || Uuid::from_u128(64), rules(APPROVERS));
    let requester = Principal::new("alice", &["engineer"]);
    let id = block_on(manager.create(&change(), &requester, None))
        .unwrap()
        .request
        .id
        .to_string();
    let start = Barrier::new(APPROVERS);
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..APPROVERS)
            .map(|n| {
                let (manager, start, id) = (&manager, &start, &id);
                scope.spawn(move || {
                    start.wait();
                    block_on(manager.approve(id, &approver(n), None))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every approval succeeded: none was refused or gave up.
    let versions: HashSet<u64> = answers
        .iter()
        .map(|answer| answer.as_ref().unwrap().version)
        .collect();
    assert_eq!(
        versions.len(),
        APPROVERS,
        "each writer won a distinct version"
    );
    let request = block_on(manager.get(&id)).unwrap().unwrap();
    assert_eq!(request.status, Status::Approved);
    assert_eq!(request.version, APPROVERS as u64 + 1);
    assert_eq!(request.approvals.len(), APPROVERS);
    let distinct: HashSet<_> = request.approvals.iter().map(|a| a.by.clone()).collect();
    assert_eq!(distinct.len(), APPROVERS, "no approval lost or doubled");
    let approves = request
        .history
        .iter()
        .filter(|entry| entry.action == ActionKind::Approve)
        .count();
    assert_eq!(approves, APPROVERS);
    assert_eq!(request.history.len(), APPROVERS + 1);
}

#[test]
fn racing_duplicate_approvals_by_one_principal_count_once() {
    let manager = Manager::new(MemoryCache::new(), clock, || Uuid::from_u128(5), rules(2));
    let requester = Principal::new("alice", &["engineer"]);
    let id = block_on(manager.create(&change(), &requester, None))
        .unwrap()
        .request
        .id
        .to_string();
    let start = Barrier::new(16);
    let codes: Vec<Option<ErrorCode>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (manager, start, id) = (&manager, &start, &id);
                scope.spawn(move || {
                    start.wait();
                    block_on(manager.approve(id, &approver(1), None))
                        .err()
                        .map(|e| e.code())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1);
    assert!(
        codes
            .iter()
            .flatten()
            .all(|code| *code == ErrorCode::AlreadyApproved)
    );
    let request = block_on(manager.get(&id)).unwrap().unwrap();
    assert_eq!(request.approvals.len(), 1);
    assert_eq!(request.version, 2);
}

/// A manager with plain function pointers for clock and ids.
type PlainManager = Manager<MemoryCache, fn() -> Timestamp, fn() -> Uuid>;

/// A cache that, before some commits, lets another writer change the same
/// request first (a comment through a second manager on the same store), so
/// the commit's version check fails and the manager must retry.
struct InterferingCache {
    inner: MemoryCache,
    other: PlainManager,
    target: String,
    interferences_left: AtomicUsize,
    commits: AtomicUsize,
    conflicts: AtomicUsize,
}

impl Cache for InterferingCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        self.inner.get(key).await
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        self.inner.get_many(keys, max_bytes).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let left = self.interferences_left.load(Ordering::SeqCst);
        if left > 0 {
            self.interferences_left.store(left - 1, Ordering::SeqCst);
            let intruder = Principal::new("intruder", &[]);
            self.other
                .comment(&self.target, &intruder, format!("interference {left}"))
                .await
                .unwrap();
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        let outcome = self.inner.commit(batch).await?;
        if outcome == CommitOutcome::Conflict {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        self.inner.range(index, after, limit).await
    }
}

fn interfering(interferences: usize) -> (InterferingCache, String) {
    let inner = MemoryCache::new();
    let other: PlainManager = Manager::new(inner.clone(), clock, || Uuid::from_u128(9), rules(2));
    let requester = Principal::new("alice", &["engineer"]);
    let id = block_on(other.create(&change(), &requester, None))
        .unwrap()
        .request
        .id
        .to_string();
    let cache = InterferingCache {
        inner,
        other,
        target: id.clone(),
        interferences_left: AtomicUsize::new(interferences),
        commits: AtomicUsize::new(0),
        conflicts: AtomicUsize::new(0),
    };
    (cache, id)
}

#[test]
fn a_conflicting_write_makes_the_manager_retry_against_fresh_state() {
    let (cache, id) = interfering(5);
    let cache = Arc::new(cache);
    let manager = Manager::new(cache.clone(), clock, Uuid::nil, rules(2));
    let approved = block_on(manager.approve(&id, &approver(1), Some("lgtm".into()))).unwrap();
    // Five interfering comments each made one commit fail; the sixth went in.
    assert_eq!(cache.conflicts.load(Ordering::SeqCst), 5);
    assert_eq!(cache.commits.load(Ordering::SeqCst), 6);
    // The approval was applied to the fresh state: nothing of the intruder's
    // writes was lost, and the approval counts once.
    assert_eq!(approved.version, 1 + 5 + 1);
    assert_eq!(approved.approvals.len(), 1);
    let comments = approved
        .history
        .iter()
        .filter(|entry| entry.action == ActionKind::Comment)
        .count();
    assert_eq!(comments, 5);
    assert_eq!(approved.history.last().unwrap().action, ActionKind::Approve);
    let stored = block_on(manager.get(&id)).unwrap().unwrap();
    assert_eq!(stored, approved);
}

#[test]
fn endless_conflicts_give_up_with_conflict_and_change_nothing_of_ours() {
    let (cache, id) = interfering(usize::MAX);
    let cache = Arc::new(cache);
    let manager = Manager::new(cache.clone(), clock, Uuid::nil, rules(2));
    let error = block_on(manager.approve(&id, &approver(1), None)).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict);
    assert_eq!(cache.conflicts.load(Ordering::SeqCst), MAX_ATTEMPTS);
    let stored = block_on(cache.other.get(&id)).unwrap().unwrap();
    assert!(stored.approvals.is_empty());
    assert_eq!(stored.version, 1 + MAX_ATTEMPTS as u64);
}
