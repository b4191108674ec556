//! Benchmarks of the core's hot paths. Results and the command that produced
//! them are in `docs/PERFORMANCE.md` (section "Core (native)").
//!
//! - `preview/typical`: validate a typical change and determine its level;
//! - `apply/approve`: one approve transition (`ApprovalRequest::apply`, pure);
//! - `decode/request`: decoding one stored request (what a page pays per item);
//! - `list_page_50/{1k,1M}`: one page of 50 pending requests through the
//!   `Manager` over `MemoryCache`, at 1,000 and 1,000,000 pending requests
//!   (the store is filled directly with big `commit` batches, as `create`
//!   would fill it, to keep the setup fast);
//! - `inbox_page_50/{10k,1M}`: the first page of 50 of `actionableBy` (what
//!   an engineer may approve now), at 10,000 and 1,000,000 pending: the
//!   role indexes make it a range per partition and role, not a scan.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly; criterion macros generate undocumented items"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use serde_json::{Value, json};
use signoff_core::cache::{Batch, CommitOutcome, IndexChange, Put};
use signoff_core::{
    Action, ApprovalRequest, ListQuery, Manager, MemoryCache, PolicyChange, Principal, Rules,
    Timestamp, keys, preview,
};
use uuid::Uuid;

const START_MS: i64 = 1_767_225_600_000;

/// A rules document of the size teams write: three levels, eight rules.
fn rules() -> Rules {
    Rules::parse(&json!({
        "levels": [
            { "name": "auto", "ttlSeconds": 3600, "stages": [] },
            { "name": "peer", "ttlSeconds": 31_536_000, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "security", "ttlSeconds": 31_536_000, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] },
                { "name": "security", "requiredApprovals": 2, "eligibleRoles": ["security"] }
            ]}
        ],
        "defaultLevel": "peer",
        "policyTypes": ["iam", "firewall", "docs", "network"],
        "rules": [
            { "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" },
            { "name": "prod", "when": { "environments": ["prod"] }, "level": "peer" },
            { "name": "risky", "when": { "riskScoreAtLeast": 70 }, "level": "security" },
            { "name": "iam-prod", "when": { "policyTypes": ["iam"], "environments": ["prod"] }, "level": "security" },
            { "name": "deletes", "when": { "changeKinds": ["delete"] }, "level": "peer" },
            { "name": "root", "when": { "policyIdPrefix": "root/" }, "level": "security" },
            { "name": "pci", "when": { "metadata": { "compliance": "pci" } }, "level": "security" },
            { "name": "hotfix", "when": { "priorities": ["urgent"] }, "level": "peer" }
        ]
    }))
    .unwrap()
}

/// A typical change: every common field, a short diff and two metadata keys.
fn typical_change() -> Value {
    json!({
        "policyId": "iam/admins",
        "policyType": "iam",
        "changeKind": "update",
        "environment": "prod",
        "title": "Add bob to the admins group",
        "justification": "Bob joins the on-call rotation and needs admin access to page in.",
        "diff": "--- a/admins\n+++ b/admins\n@@ -1,3 +1,4 @@\n alice\n carol\n+bob\n dave\n",
        "riskScore": 40,
        "priority": "high",
        "metadata": { "ticket": "SEC-1234", "team": "platform" }
    })
}

fn bench_preview(c: &mut Criterion) {
    let rules = rules();
    let change = typical_change();
    let decided = preview(&change, &rules);
    assert!(decided.valid);
    assert_eq!(decided.level.as_deref(), Some("security"));
    c.bench_function("preview/typical", |b| {
        b.iter(|| preview(black_box(&change), black_box(&rules)));
    });
}

fn bench_apply(c: &mut Criterion) {
    let rules = rules();
    let change = PolicyChange::parse(&typical_change(), Some(&rules)).unwrap();
    let request = ApprovalRequest::create(
        Uuid::from_u128(1),
        change,
        &Principal::new("alice", &["engineer"]),
        &rules,
        &rules.digest(),
        Timestamp::from_millis(START_MS),
    )
    .expect("a filing without emergency is never refused");
    let bob = Principal::new("bob", &["engineer"]);
    let action = Action::Approve {
        comment: Some("looks right".into()),
    };
    let now = Timestamp::from_millis(START_MS + 60_000);
    assert!(request.apply(&action, &bob, now).is_ok());
    c.bench_function("apply/approve", |b| {
        b.iter(|| black_box(&request).apply(black_box(&action), &bob, now));
    });
    // What listing pays per item on top of the cache lookup.
    let bytes = serde_json::to_vec(&request).unwrap();
    c.bench_function("decode/request", |b| {
        b.iter(|| serde_json::from_slice::<ApprovalRequest>(black_box(&bytes)).unwrap());
    });
}

/// Stores `count` pending requests and their index entries directly.
fn seed_pending(cache: &MemoryCache, rules: &Rules, count: u128) {
    let digest = rules.digest();
    let alice = Principal::new("alice", &["engineer"]);
    let priorities = ["low", "normal", "high", "urgent"];
    let changes: Vec<PolicyChange> = priorities
        .iter()
        .map(|priority| {
            let mut change = typical_change();
            change["priority"] = json!(priority);
            change["environment"] = json!("staging");
            PolicyChange::parse(&change, Some(rules)).unwrap()
        })
        .collect();
    let mut batch = Batch::default();
    for n in 0..count {
        let request = ApprovalRequest::create(
            Uuid::from_u128(n + 1),
            changes[(n % 4) as usize].clone(),
            &alice,
            rules,
            &digest,
            Timestamp::from_millis(START_MS + i64::try_from(n).unwrap()),
        )
        .unwrap();
        batch.puts.push(Put {
            key: keys::Layout::default().request(&request.id),
            value: serde_json::to_vec(&request).unwrap(),
            ttl_ms: None,
        });
        batch.index_adds.extend(
            keys::Layout::default()
                .index_entries(&request)
                .into_iter()
                .map(|(index, entry)| IndexChange { index, entry }),
        );
        if batch.puts.len() == 50_000 {
            let full = std::mem::take(&mut batch);
            assert_eq!(cache.commit_now(full), CommitOutcome::Committed);
        }
    }
    assert_eq!(cache.commit_now(batch), CommitOutcome::Committed);
    assert_eq!(
        keys::Layout::default()
            .all()
            .map(|partition| cache.index_len(
                &keys::Layout::default().status_index(partition, signoff_core::Status::Pending)
            ))
            .sum::<usize>(),
        usize::try_from(count).unwrap()
    );
}

type BenchManager = Manager<MemoryCache, fn() -> Timestamp, fn() -> Uuid>;

/// A manager over a store holding `count` pending requests, a day after
/// they were filed.
fn seeded_manager(count: u128) -> BenchManager {
    let rules = rules();
    let cache = MemoryCache::new();
    seed_pending(&cache, &rules, count);
    Manager::new(
        cache,
        (|| Timestamp::from_millis(START_MS + 86_400_000)) as fn() -> Timestamp,
        (|| Uuid::from_u128(u128::MAX)) as fn() -> Uuid,
        rules,
    )
}

fn bench_list(c: &mut Criterion) {
    let mut group = c.benchmark_group("list_page_50");
    for (label, count) in [("1k", 1_000u128), ("1M", 1_000_000)] {
        let manager = seeded_manager(count);
        let first = ListQuery {
            limit: 50,
            ..ListQuery::default()
        };
        // A page from the middle of the queue, through a cursor.
        let mut middle = first.clone();
        let mut cursor = None;
        for _ in 0..10 {
            middle.cursor = cursor;
            cursor = block_on(manager.list(&middle)).unwrap().next_cursor;
        }
        middle.cursor = cursor;
        assert_eq!(block_on(manager.list(&first)).unwrap().items.len(), 50);
        assert_eq!(block_on(manager.list(&middle)).unwrap().items.len(), 50);
        group.bench_function(BenchmarkId::new("first", label), |b| {
            b.iter(|| block_on(manager.list(black_box(&first))).unwrap());
        });
        group.bench_function(BenchmarkId::new("cursor", label), |b| {
            b.iter(|| block_on(manager.list(black_box(&middle))).unwrap());
        });
    }
    group.finish();
}

fn bench_inbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox_page_50");
    for (label, count) in [("10k", 10_000u128), ("1M", 1_000_000)] {
        let manager = seeded_manager(count);
        let inbox = ListQuery {
            limit: 50,
            actionable_by: Some(Principal::new("bob", &["engineer"])),
            ..ListQuery::default()
        };
        let page = block_on(manager.list(&inbox)).unwrap();
        assert_eq!(page.items.len(), 50);
        assert!(page.next_cursor.is_some());
        group.bench_function(BenchmarkId::new("first", label), |b| {
            b.iter(|| block_on(manager.list(black_box(&inbox))).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, bench_preview, bench_apply, bench_list, bench_inbox);
criterion_main!(benches);
