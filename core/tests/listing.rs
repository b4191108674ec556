//! Listing (docs/CONTRACT.md section 5): traversals that run while requests are created
//! and cancelled, cursors bound to their filter, malformed cursors, and the
//! cache work of one page at 100k pending requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: helpers outside #[test] fns fail loudly too"
)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{Value, json};
use signoff_core::{
    ApprovalRequest, Batch, Cache, CacheError, CommitOutcome, Entry, ErrorCode, IndexChange,
    IndexEntry, ListQuery, Manager, MemoryCache, PolicyChange, Principal, Put, Rules, Status,
    Timestamp, keys,
};
use uuid::Uuid;

const START_MS: i64 = 1_767_225_600_000;
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

fn rules() -> Rules {
    Rules::parse(&json!({
        "levels": [{ "name": "peer", "ttlSeconds": 31_536_000, "stages": [
            { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "peer",
    }))
    .unwrap()
}

fn change(priority: &str, policy_type: &str) -> Value {
    json!({
        "policyId": "iam/admins", "policyType": policy_type, "changeKind": "update",
        "title": "Add bob", "justification": "Bob joins the on-call rotation.",
        "priority": priority,
    })
}

/// A small deterministic generator, so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

type TestManager = Manager<MemoryCache, Box<dyn Fn() -> Timestamp>, Box<dyn Fn() -> Uuid>>;

/// A manager whose clock moves one millisecond per read and whose ids count up.
fn manager(cache: MemoryCache) -> TestManager {
    let now = Arc::new(AtomicI64::new(START_MS));
    let next = Arc::new(AtomicUsize::new(1));
    Manager::new(
        cache,
        Box::new(move || Timestamp::from_millis(now.fetch_add(1, Ordering::SeqCst))),
        Box::new(move || Uuid::from_u128(next.fetch_add(1, Ordering::SeqCst) as u128)),
        rules(),
    )
}

fn create(manager: &TestManager, rng: &mut Rng, policy_type: &str) -> String {
    let priority = PRIORITIES[rng.below(4)];
    let alice = Principal::new("alice", &["engineer"]);
    let created = block_on(manager.create(&change(priority, policy_type), &alice, None)).unwrap();
    created.request.id.to_string()
}

fn list(manager: &TestManager, query: Value) -> Result<signoff_core::Page, signoff_core::Error> {
    block_on(manager.list(&ListQuery::parse(Some(&query))?))
}

/// The position of a request in its listing: sort key, then id.
fn position(request: &ApprovalRequest) -> (String, String) {
    (keys::listing_sort_key(request), request.id.to_string())
}

/// Runs one traversal of `status` with pages of `limit`, and between pages
/// creates and cancels requests. Checks that no item comes twice, that the
/// order is the listing order, and that every item listed before the
/// traversal and never cancelled during it is returned.
fn traverse_while_changing(seed: u64, limit: usize, status: Status) {
    let manager = manager(MemoryCache::new());
    let mut rng = Rng(seed);
    let alice = Principal::new("alice", &["engineer"]);
    let mut pending: Vec<String> = (0..120)
        .map(|_| create(&manager, &mut rng, "iam"))
        .collect();
    // Some requests start out cancelled, for the non-pending traversal.
    let mut cancelled: Vec<String> = Vec::new();
    for _ in 0..60 {
        let id = pending.swap_remove(rng.below(pending.len()));
        block_on(manager.cancel(&id, &alice)).unwrap();
        cancelled.push(id);
    }
    let listed_at_start: BTreeSet<String> = match status {
        Status::Pending => pending.iter().cloned().collect(),
        _ => cancelled.iter().cloned().collect(),
    };
    let mut left_during = HashSet::new();
    let mut returned = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut last_position: Option<(String, String)> = None;
    loop {
        let mut query = json!({ "status": status.as_str(), "limit": limit });
        if let Some(cursor) = &cursor {
            query["cursor"] = json!(cursor);
        }
        let page = list(&manager, query).unwrap();
        assert!(page.items.len() <= limit);
        for item in &page.items {
            assert_eq!(item.status, status);
            let id = item.id.to_string();
            assert!(seen.insert(id.clone()), "seed {seed}: {id} returned twice");
            let here = position(item);
            if let Some(previous) = &last_position {
                assert!(*previous < here, "seed {seed}: out of order");
            }
            last_position = Some(here);
            returned.push(id);
        }
        // Change the list between pages: new requests, cancellations (often
        // of the last item returned, so the cursor's item leaves the list).
        for _ in 0..rng.below(4) {
            pending.push(create(&manager, &mut rng, "iam"));
        }
        for _ in 0..rng.below(3) {
            let index = if rng.below(2) == 0 {
                page.items
                    .last()
                    .and_then(|last| pending.iter().position(|id| *id == last.id.to_string()))
            } else {
                None
            };
            let index = index.unwrap_or_else(|| rng.below(pending.len()));
            let id = pending.swap_remove(index);
            block_on(manager.cancel(&id, &alice)).unwrap();
            left_during.insert(id.clone());
            cancelled.push(id);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let stayed: Vec<&String> = match status {
        Status::Pending => listed_at_start
            .iter()
            .filter(|id| !left_during.contains(*id))
            .collect(),
        _ => listed_at_start.iter().collect(),
    };
    for id in stayed {
        assert!(
            seen.contains(id),
            "seed {seed}, limit {limit}: {id} stayed but was skipped"
        );
    }
}

#[test]
fn a_pending_traversal_survives_inserts_and_cancellations() {
    for seed in 1..=12 {
        for limit in [1, 2, 3, 7] {
            traverse_while_changing(seed * 7919, limit, Status::Pending);
        }
    }
}

#[test]
fn a_cancelled_traversal_survives_new_cancellations() {
    for seed in 1..=6 {
        for limit in [1, 4, 9] {
            traverse_while_changing(seed * 104_729, limit, Status::Cancelled);
        }
    }
}

#[test]
fn the_pending_order_is_urgent_first_then_oldest_then_id() {
    let manager = manager(MemoryCache::new());
    let mut rng = Rng(42);
    for _ in 0..200 {
        create(&manager, &mut rng, "iam");
    }
    let page = list(&manager, json!({ "limit": 500 })).unwrap();
    assert_eq!(page.items.len(), 200);
    assert!(page.next_cursor.is_none());
    let order: Vec<_> = page
        .items
        .iter()
        .map(|r| (r.change.priority.queue_rank(), r.created_at, r.id))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn a_cursor_is_bound_to_its_status_and_policy_type() {
    let manager = manager(MemoryCache::new());
    let mut rng = Rng(3);
    for policy_type in ["iam", "net", "iam", "net", "iam"] {
        create(&manager, &mut rng, policy_type);
    }
    let page = list(&manager, json!({ "policyType": "iam", "limit": 1 })).unwrap();
    let cursor = page.next_cursor.expect("more iam items");
    for other in [
        json!({ "cursor": cursor }),
        json!({ "cursor": cursor, "policyType": "net" }),
        json!({ "cursor": cursor, "policyType": "iam", "status": "approved" }),
        json!({ "cursor": cursor, "status": "cancelled" }),
    ] {
        let error = list(&manager, other.clone()).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidRequest, "{other}");
    }
    let next = list(&manager, json!({ "cursor": cursor, "policyType": "iam" })).unwrap();
    assert_eq!(next.items.len(), 2);
    assert!(next.items.iter().all(|r| r.change.policy_type == "iam"));
}

#[test]
fn malformed_cursors_are_invalid_requests() {
    let manager = manager(MemoryCache::new());
    let mut rng = Rng(5);
    for _ in 0..3 {
        create(&manager, &mut rng, "iam");
    }
    let good = list(&manager, json!({ "limit": 1 }))
        .unwrap()
        .next_cursor
        .unwrap();
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let mut flipped: Vec<char> = good.chars().collect();
    flipped[3] = if flipped[3] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    let mut bad = vec![
        String::new(),
        "!!!".into(),
        "e30".into(),
        truncated,
        format!("{good}="),
        format!("{good}x"),
        "A".repeat(5000),
        "%00".into(),
        "\u{202e}".into(),
    ];
    // A flipped character may still decode; if it does, it must not panic.
    if list(&manager, json!({ "limit": 1, "cursor": flipped })).is_err() {
        bad.push(flipped);
    }
    for cursor in bad {
        let error = list(&manager, json!({ "limit": 1, "cursor": cursor })).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidRequest, "{cursor:?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_cursors_never_panic(cursor in ".{0,80}|[A-Za-z0-9_-]{0,200}") {
        let manager = manager(MemoryCache::new());
        match list(&manager, json!({ "cursor": cursor })) {
            Ok(page) => prop_assert!(page.items.is_empty()),
            Err(error) => prop_assert_eq!(error.code(), ErrorCode::InvalidRequest),
        }
    }
}

// ---------------------------------------------------------------------------
// Page cost
// ---------------------------------------------------------------------------

/// A cache that counts the calls the manager makes.
#[derive(Default)]
struct CountingCache {
    inner: MemoryCache,
    gets: AtomicUsize,
    ranges: AtomicUsize,
    commits: AtomicUsize,
}

impl CountingCache {
    fn reset(&self) {
        self.gets.store(0, Ordering::SeqCst);
        self.ranges.store(0, Ordering::SeqCst);
        self.commits.store(0, Ordering::SeqCst);
    }

    fn counts(&self) -> (usize, usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.ranges.load(Ordering::SeqCst),
            self.commits.load(Ordering::SeqCst),
        )
    }
}

impl Cache for CountingCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(keys, max_bytes).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(batch).await
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        self.ranges.fetch_add(1, Ordering::SeqCst);
        self.inner.range(index, after, limit).await
    }
}

/// Stores `count` pending requests directly (requests and their index
/// entries in big batches), as `create` would store them.
fn seed_pending(cache: &MemoryCache, count: u128) {
    let rules = rules();
    let digest = rules.digest();
    let alice = Principal::new("alice", &["engineer"]);
    let changes: Vec<PolicyChange> = PRIORITIES
        .iter()
        .map(|p| PolicyChange::parse(&change(p, "iam"), None).unwrap())
        .collect();
    let mut batch = Batch::default();
    for n in 0..count {
        let request = ApprovalRequest::create(
            Uuid::from_u128(n + 1),
            changes[(n % 4) as usize].clone(),
            &alice,
            &rules,
            &digest,
            Timestamp::from_millis(START_MS + (n as i64) / 3),
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
        if batch.puts.len() == 10_000 {
            assert_eq!(
                cache.commit_now(std::mem::take(&mut batch)),
                CommitOutcome::Committed
            );
        }
    }
    assert_eq!(cache.commit_now(batch), CommitOutcome::Committed);
}

fn page_cost(pending: u128, limit: u32) -> Vec<(usize, usize, usize)> {
    let counting = CountingCache::default();
    seed_pending(&counting.inner, pending);
    let manager = Manager::new(
        &counting,
        || Timestamp::from_millis(START_MS + 1000),
        || Uuid::from_u128(u128::MAX),
        rules(),
    );
    let mut costs = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let mut query = ListQuery {
            limit,
            ..ListQuery::default()
        };
        query.cursor = cursor.take();
        counting.reset();
        let page = block_on(manager.list(&query)).unwrap();
        assert_eq!(page.items.len(), limit as usize);
        costs.push(counting.counts());
        cursor = page.next_cursor;
    }
    costs
}

#[test]
fn a_page_costs_one_range_per_partition_and_one_batched_read_whatever_its_limit() {
    let partitions = usize::from(keys::DEFAULT_PARTITIONS);
    let small = page_cost(1_000, 50);
    let large = page_cost(100_000, 50);
    let wide = page_cost(100_000, 500);
    for (gets, ranges, commits) in large.iter().chain(&small).chain(&wide) {
        assert_eq!(*gets, 1, "one batched read of the page's values");
        assert_eq!(*ranges, partitions, "one range per partition");
        assert_eq!(*commits, 0, "listing wrote");
    }
    assert_eq!(
        small, large,
        "the cost does not grow with the number of requests"
    );
    assert_eq!(large, wide, "nor with the page's limit");
}

#[test]
fn a_page_over_many_due_requests_is_bounded_work_and_the_traversal_goes_on() {
    let rules = Rules::parse(&json!({
        "levels": [
            { "name": "short", "ttlSeconds": 60, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": [] }
            ]},
            { "name": "long", "ttlSeconds": 31_536_000, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": [] }
            ]}
        ],
        "defaultLevel": "long",
        "rules": [{ "name": "tmp", "when": { "policyTypes": ["tmp"] }, "level": "short" }],
    }))
    .unwrap();
    let counting = CountingCache::default();
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock_now = now.clone();
    let next = AtomicUsize::new(1);
    let manager = Manager::new(
        &counting,
        move || Timestamp::from_millis(clock_now.load(Ordering::SeqCst)),
        move || Uuid::from_u128(next.fetch_add(1, Ordering::SeqCst) as u128),
        rules,
    );
    let alice = Principal::new("alice", &[]);
    // 1000 requests that will be due, queued before 10 that will not.
    for _ in 0..1000 {
        block_on(manager.create(&change("normal", "tmp"), &alice, None)).unwrap();
    }
    let live: BTreeSet<String> = (0..10)
        .map(|_| {
            let created = block_on(manager.create(&change("normal", "iam"), &alice, None));
            created.unwrap().request.id.to_string()
        })
        .collect();
    now.fetch_add(3_600_000, Ordering::SeqCst);
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "the traversal does not end");
        let query = ListQuery {
            cursor: cursor.take(),
            ..ListQuery::default()
        };
        counting.reset();
        let page = block_on(manager.list(&query)).unwrap();
        let (gets, ranges, commits) = counting.counts();
        // Each round reads a range per partition and one batch of values;
        // a page steps over at most 256 entries, 51 candidates a round.
        let rounds = 256 / 51 + 2;
        assert!(gets <= rounds, "{gets} batched reads");
        assert_eq!(commits, 0, "{commits} commits");
        assert!(
            ranges <= rounds * usize::from(keys::DEFAULT_PARTITIONS),
            "{ranges} ranges"
        );
        for item in page.items {
            assert!(seen.insert(item.id.to_string()), "returned twice");
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, live);
    assert!(
        pages >= 4,
        "due requests were stepped over in bounded pages"
    );
}

/// An inbox traversal (`actionableBy`) while other approvers take requests
/// out of it and new ones come in: nothing twice, in listing order, never a
/// request the principal may not approve (its own), and every request that
/// was in the inbox from the start and stayed there is returned.
#[test]
fn an_inbox_traversal_survives_concurrent_approvals() {
    let bob = Principal::new("bob", &["engineer"]);
    for seed in 1..=8_u64 {
        for limit in [1_u32, 3, 8] {
            let manager = manager(MemoryCache::new());
            let mut rng = Rng(seed * 6_700_417);
            let mut open: Vec<String> =
                (0..60).map(|_| create(&manager, &mut rng, "iam")).collect();
            // Bob's own requests are pending but never his to approve.
            let own: HashSet<String> = (0..10)
                .map(|_| {
                    let created =
                        block_on(manager.create(&change("normal", "iam"), &bob, None)).unwrap();
                    created.request.id.to_string()
                })
                .collect();
            let at_start: BTreeSet<String> = open.iter().cloned().collect();
            let mut taken = HashSet::new();
            let mut seen = HashSet::new();
            let mut last_position = None;
            let mut cursor = None;
            let mut approver = 0;
            loop {
                let query = ListQuery {
                    limit,
                    cursor: cursor.clone(),
                    actionable_by: Some(bob.clone()),
                    ..ListQuery::default()
                };
                let page = block_on(manager.list(&query)).unwrap();
                for item in &page.items {
                    let id = item.id.to_string();
                    assert!(!own.contains(&id), "seed {seed}: bob's own request listed");
                    assert_eq!(item.status, Status::Pending);
                    assert!(seen.insert(id.clone()), "seed {seed}: {id} twice");
                    let here = position(item);
                    if let Some(previous) = &last_position {
                        assert!(*previous < here, "seed {seed}: out of order");
                    }
                    last_position = Some(here);
                }
                // Others approve (often the page's last item, so the cursor's
                // request leaves the inbox), and alice files more.
                for _ in 0..rng.below(3) {
                    if open.is_empty() {
                        break;
                    }
                    let index = if rng.below(2) == 0 {
                        page.items
                            .last()
                            .and_then(|last| open.iter().position(|id| *id == last.id.to_string()))
                    } else {
                        None
                    };
                    let index = index.unwrap_or_else(|| rng.below(open.len()));
                    let id = open.swap_remove(index);
                    approver += 1;
                    let other = Principal::new(format!("engineer-{approver}"), &["engineer"]);
                    block_on(manager.approve(&id, &other, None)).unwrap();
                    taken.insert(id);
                }
                for _ in 0..rng.below(3) {
                    open.push(create(&manager, &mut rng, "iam"));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            for id in at_start.iter().filter(|id| !taken.contains(*id)) {
                assert!(
                    seen.contains(id),
                    "seed {seed}, limit {limit}: {id} stayed in the inbox but was skipped"
                );
            }
        }
    }
}
