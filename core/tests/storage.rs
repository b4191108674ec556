//! The storage side of the manager: partitions, creates that span two
//! partitions and are cut off between their commits, pages bounded by the
//! 4 MiB budget, the summary view, and the sweeper's housekeeping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: helpers outside #[test] fns fail loudly too"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use futures::executor::block_on;
use serde_json::{Value, json};
use signoff_core::keys::{self, Layout};
use signoff_core::{
    Batch, Cache, CacheError, CommitOutcome, Entry, ErrorCode, IndexChange, IndexEntry, ListQuery,
    Manager, MemoryCache, Principal, Put, Rules, Status, Timestamp, View,
};
use uuid::Uuid;

const START_MS: i64 = 1_767_225_600_000;

fn rules() -> Rules {
    Rules::parse(&json!({
        "levels": [{ "name": "peer", "ttlSeconds": 3600, "stages": [
            { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "peer",
        "rateLimit": { "requests": 100, "perSeconds": 60, "burst": 100 },
    }))
    .unwrap()
}

fn change(title: &str, diff_bytes: usize) -> Value {
    let mut change = json!({
        "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
        "title": title, "justification": "Bob joins the on-call rotation.",
    });
    if diff_bytes > 0 {
        change["diff"] = Value::from("d".repeat(diff_bytes));
    }
    change
}

/// A cache that can refuse the next commit that stores a request, as if the
/// host died between a create's two commits.
#[derive(Default)]
struct CutCache {
    inner: MemoryCache,
    cut_next_request: AtomicBool,
    commits: AtomicUsize,
}

impl Cache for CutCache {
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
        self.commits.fetch_add(1, Ordering::SeqCst);
        let stores_request = batch.puts.iter().any(|put| put.key.contains(":req:"));
        if stores_request && self.cut_next_request.swap(false, Ordering::SeqCst) {
            return Err(CacheError("the host went away".into()));
        }
        // Every commit stays inside one partition.
        let partitions: HashSet<u16> = batch
            .keys()
            .map(|key| keys::split_partition(key).expect("a partitioned key").0)
            .collect();
        assert_eq!(partitions.len(), 1, "a commit spans partitions: {batch:?}");
        self.inner.commit(batch).await
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

type TestManager<'a> = Manager<&'a CutCache, Box<dyn Fn() -> Timestamp>, Box<dyn Fn() -> Uuid>>;

fn manager(cache: &CutCache, partitions: u32) -> TestManager<'_> {
    let now = Arc::new(AtomicI64::new(START_MS));
    let next = Arc::new(AtomicUsize::new(1));
    let clock: Box<dyn Fn() -> Timestamp> =
        Box::new(move || Timestamp::from_millis(now.fetch_add(1, Ordering::SeqCst)));
    let ids: Box<dyn Fn() -> Uuid> =
        Box::new(move || Uuid::from_u128(next.fetch_add(1, Ordering::SeqCst) as u128));
    Manager::new(cache, clock, ids, rules()).with_layout(Layout::new(partitions).unwrap())
}

fn alice() -> Principal {
    Principal::new("alice", &["engineer"])
}

fn all(manager: &TestManager<'_>, view: View, limit: u32) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        pages += 1;
        let query = ListQuery {
            limit,
            cursor: cursor.take(),
            view,
            ..ListQuery::default()
        };
        let page = block_on(manager.list_raw(&query)).unwrap();
        let bytes: usize = page.items.iter().map(Vec::len).sum();
        assert!(bytes <= 4 * 1024 * 1024 || page.items.len() == 1);
        assert!(!page.items.is_empty() || page.next_cursor.is_none());
        let body: Value = serde_json::from_slice(&page.to_json()).unwrap();
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (items, pages)
}

#[test]
fn every_commit_stays_in_one_partition_and_data_spreads_over_all() {
    let cache = CutCache::default();
    let manager = manager(&cache, 4);
    for n in 0..40 {
        block_on(manager.create(
            &change(&format!("c{n}"), 0),
            &alice(),
            Some(&format!("k{n}")),
        ))
        .unwrap();
    }
    let layout = manager.layout();
    let spread: Vec<usize> = layout
        .all()
        .map(|partition| {
            cache
                .inner
                .index_len(&layout.status_index(partition, Status::Pending))
        })
        .collect();
    assert!(spread.iter().all(|count| *count > 0), "{spread:?}");
    assert_eq!(spread.iter().sum::<usize>(), 40);
    let (items, _) = all(&manager, View::Full, 7);
    assert_eq!(items.len(), 40);
}

#[test]
fn a_create_cut_off_between_its_commits_is_completed_by_its_replay() {
    let cache = CutCache::default();
    let manager = manager(&cache, 16);
    let layout = manager.layout();
    let home = layout.partition_of_principal("alice");
    // Ids count up from 1: find one whose request lands elsewhere.
    let mut n = 0;
    loop {
        n += 1;
        let next_id = Uuid::from_u128(n);
        if layout.partition_of_id(&next_id) != home {
            break;
        }
        block_on(manager.create(&change(&format!("filler{n}"), 0), &alice(), None)).unwrap();
    }
    cache.cut_next_request.store(true, Ordering::SeqCst);
    let error = block_on(manager.create(&change("cut", 0), &alice(), Some("the-key"))).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unavailable);
    let replay = block_on(manager.create(&change("cut", 0), &alice(), Some("the-key"))).unwrap();
    assert!(replay.replayed);
    let id = replay.request.id.to_string();
    let stored = block_on(manager.get(&id))
        .unwrap()
        .expect("stored by the replay");
    assert_eq!(stored.change.title, "cut");
    let again = block_on(manager.create(&change("cut", 0), &alice(), Some("the-key"))).unwrap();
    assert_eq!(again.request.id, replay.request.id);
    let (items, _) = all(&manager, View::Full, 500);
    let cut = items
        .iter()
        .filter(|item| item["change"]["title"] == "cut")
        .count();
    assert_eq!(cut, 1, "one request for one key");
}

#[test]
fn pages_end_at_four_mebibytes_and_summaries_leave_the_large_fields_out() {
    let cache = CutCache::default();
    let manager = manager(&cache, 16);
    for n in 0..40 {
        block_on(manager.create(&change(&format!("big{n}"), 250 * 1024), &alice(), None)).unwrap();
    }
    let (full, pages) = all(&manager, View::Full, 500);
    assert_eq!(full.len(), 40);
    assert!(
        pages >= 3,
        "40 items of 250 KiB take 3 pages of 4 MiB: {pages}"
    );
    let ids: HashSet<&str> = full
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 40);
    assert_eq!(
        full[0]["change"]["diff"].as_str().unwrap().len(),
        250 * 1024
    );

    let (summary, pages) = all(&manager, View::Summary, 500);
    assert_eq!(pages, 1);
    assert_eq!(summary.len(), 40);
    for item in &summary {
        assert!(item["change"].get("diff").is_none());
        assert!(item["change"].get("justification").is_none());
        assert!(item.get("history").is_none());
        assert_eq!(item["status"], "pending");
        assert_eq!(item["change"]["policyId"], "iam/admins");
    }
    // The full view's items are the stored bytes themselves.
    let first = full[0]["id"].as_str().unwrap();
    let key = manager.layout().request(&Uuid::parse_str(first).unwrap());
    let stored: Value = serde_json::from_slice(&cache.inner.get_now(&key).unwrap().value).unwrap();
    assert_eq!(stored, full[0]);
}

#[test]
fn a_single_item_larger_than_the_budget_still_makes_a_page() {
    let cache = CutCache::default();
    let manager = manager(&cache, 2);
    let created = block_on(manager.create(&change("small", 0), &alice(), None)).unwrap();
    // Store a request far larger than a page, as an old build could have.
    let mut huge = created.request.clone();
    huge.id = Uuid::from_u128(999);
    huge.change.diff = Some("x".repeat(5 * 1024 * 1024));
    let layout = manager.layout();
    cache.inner.commit_now(Batch {
        puts: vec![Put {
            key: layout.request(&huge.id),
            value: serde_json::to_vec(&huge).unwrap(),
            ttl_ms: None,
        }],
        index_adds: layout
            .index_entries(&huge)
            .into_iter()
            .map(|(index, entry)| IndexChange { index, entry })
            .collect(),
        ..Batch::default()
    });
    let (items, pages) = all(&manager, View::Full, 50);
    assert_eq!(items.len(), 2);
    assert_eq!(pages, 2, "the huge item alone, then the other");
}

#[test]
fn the_sweep_removes_stale_due_entries_and_steps_over_undecodable_records() {
    let cache = CutCache::default();
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock = now.clone();
    let next = AtomicUsize::new(1);
    let manager = Manager::new(
        &cache,
        move || Timestamp::from_millis(clock.load(Ordering::SeqCst)),
        move || Uuid::from_u128(next.fetch_add(1, Ordering::SeqCst) as u128),
        rules(),
    );
    let layout = manager.layout();
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(block_on(manager.create(&change(&format!("s{n}"), 0), &alice(), None)).unwrap());
    }
    // One record no longer decodes.
    let broken = &ids[0].request;
    let key = layout.request(&broken.id);
    let version = cache.inner.get_now(&key).unwrap().version;
    cache.inner.commit_now(Batch {
        checks: vec![signoff_core::Check {
            key: key.clone(),
            version: Some(version),
        }],
        puts: vec![Put {
            key,
            value: b"{not json".to_vec(),
            ttl_ms: None,
        }],
        ..Batch::default()
    });
    // A due-index entry left behind for a request that does not exist.
    let ghost = Uuid::from_u128(12_345);
    let ghost_index = layout.due_index(layout.partition_of_id(&ghost));
    cache.inner.commit_now(Batch {
        index_adds: vec![IndexChange {
            index: ghost_index.clone(),
            entry: IndexEntry {
                sort_key: keys::fixed(1),
                member: ghost.to_string(),
            },
        }],
        ..Batch::default()
    });
    now.fetch_add(2 * 3_600_000, Ordering::SeqCst);
    let report = block_on(manager.expire_due(100)).unwrap();
    assert_eq!(report.expired, 3, "the others expired: {report:?}");
    assert_eq!(report.undecodable, 1);
    assert_eq!(report.stale_removed, 1);
    assert_eq!(cache.inner.index_len(&ghost_index) as u32, {
        // What is left in the ghost's partition's due index: the broken
        // record's entry, if it lives there.
        u32::from(layout.partition_of_id(&broken.id) == layout.partition_of_id(&ghost))
    });
    // The next sweep steps over the broken record again, and nothing else.
    let report = block_on(manager.expire_due(100)).unwrap();
    assert_eq!(
        (report.expired, report.undecodable, report.stale_removed),
        (0, 1, 0)
    );
}

#[test]
fn the_sweep_trims_event_index_entries_past_the_retention() {
    let cache = CutCache::default();
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock = now.clone();
    let next = AtomicUsize::new(1);
    let manager = Manager::new(
        &cache,
        move || Timestamp::from_millis(clock.load(Ordering::SeqCst)),
        move || Uuid::from_u128(next.fetch_add(1, Ordering::SeqCst) as u128),
        rules(),
    )
    .with_event_retention(60_000);
    let layout = manager.layout();
    let indexed = || -> usize {
        layout
            .all()
            .map(|partition| cache.inner.index_len(&layout.events_index(partition)))
            .sum()
    };
    for n in 0..5 {
        block_on(manager.create(&change(&format!("t{n}"), 0), &alice(), None)).unwrap();
    }
    let appended = indexed();
    assert!(appended >= 5, "each create appends its events");

    // Within the retention, nothing is trimmed.
    now.fetch_add(59_999, Ordering::SeqCst);
    assert_eq!(block_on(manager.expire_due(100)).unwrap().events_trimmed, 0);
    assert_eq!(indexed(), appended);

    // Past it, every entry goes, and the next sweep finds none.
    now.fetch_add(2, Ordering::SeqCst);
    let report = block_on(manager.expire_due(100)).unwrap();
    assert_eq!(report.events_trimmed as usize, appended);
    assert_eq!(indexed(), 0);
    assert_eq!(block_on(manager.expire_due(100)).unwrap().events_trimmed, 0);

    // A later event is kept.
    block_on(manager.create(&change("later", 0), &alice(), None)).unwrap();
    assert_eq!(block_on(manager.expire_due(100)).unwrap().events_trimmed, 0);
    assert!(indexed() >= 1);
}
