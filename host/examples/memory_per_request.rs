//! Memory per stored request in the in-memory cache (`MemoryCache`).
//!
//! The example creates `N` requests through the native core's `Manager` over
//! a `MemoryCache` (the embedded store `signoff serve` uses without
//! `--redis-url`), with the rules `cargo xtask load` uses (one engineer's
//! approval, no rate limit) and the change of `host/benches/engine.rs`, and
//! prints the growth of the process's resident memory divided by `N` (what
//! the requests cost in RAM: the allocator's own overhead and the spare
//! capacity of the cache's hash maps included), next to what the cache was
//! asked to hold per request (key and value bytes of every put, by kind, and
//! the bytes of every index entry), so that the difference is the
//! containers' overhead. Resident memory rather than a counting allocator:
//! the workspace denies `unsafe` code, which a `GlobalAlloc` needs.
//!
//! ```text
//! cargo run --release -p signoff-host --example memory_per_request -- 100000
//! ```
//!
//! (or the binary `cargo test --release --workspace --no-run` leaves in
//! `target/release/examples/`). `cargo xtask load` runs it and writes its
//! lines into `docs/PERFORMANCE.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    reason = "a measurement program: a broken setup must fail loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use signoff_core::{
    Batch, Cache, CacheError, CommitOutcome, Entry, IndexEntry, Manager, MemoryCache, Principal,
    Rules, Timestamp,
};

/// The resident memory of this process, in bytes (`VmRSS` of
/// `/proc/self/status`, which the kernel gives in KiB).
fn resident_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<i64>().ok())
        .expect("a VmRSS line")
        * 1024
}

/// A `MemoryCache` that also adds up what it is asked to store.
#[derive(Clone)]
struct Tally {
    cache: MemoryCache,
    /// Bytes of key + value per kind of key (`req`, `ev`, ...), and puts.
    puts: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
    index_bytes: Arc<AtomicU64>,
    index_entries: Arc<AtomicU64>,
}

/// `p3:req:<id>` -> `req`.
fn kind(key: &str) -> String {
    let mut parts = key.split(':');
    let first = parts.next().unwrap_or_default();
    if first.starts_with('p') && first[1..].bytes().all(|byte| byte.is_ascii_digit()) {
        parts.next().unwrap_or_default().to_owned()
    } else {
        first.to_owned()
    }
}

impl Cache for Tally {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.cache.get_now(key))
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        Ok(self.cache.get_many_now(keys, max_bytes))
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let mut puts = BTreeMap::new();
        for put in &batch.puts {
            let entry: &mut (u64, u64) = puts.entry(kind(&put.key)).or_default();
            entry.0 += (put.key.len() + put.value.len()) as u64;
            entry.1 += 1;
        }
        let index: u64 = batch
            .index_adds
            .iter()
            .map(|change| (change.entry.sort_key.len() + change.entry.member.len()) as u64)
            .sum();
        let adds = batch.index_adds.len() as u64;
        let outcome = self.cache.commit_now(batch);
        if outcome == CommitOutcome::Committed {
            let mut tally = self.puts.lock().unwrap();
            for (kind, (bytes, count)) in puts {
                let entry = tally.entry(kind).or_default();
                entry.0 += bytes;
                entry.1 += count;
            }
            self.index_bytes.fetch_add(index, Ordering::Relaxed);
            self.index_entries.fetch_add(adds, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        Ok(self.cache.range_now(index, after, limit))
    }
}

/// Polls a future over the memory cache, which is ready at once.
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the memory cache never waits"),
    }
}

/// The rules of `cargo xtask load`: one engineer's approval, no rate limit.
fn rules() -> Rules {
    Rules::parse(&json!({
        "levels": [{ "name": "peer", "ttlSeconds": 86400, "stages": [
            { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "peer"
    }))
    .expect("valid rules")
}

/// The change of `host/benches/engine.rs`.
fn change() -> Value {
    json!({
        "policyId": "iam/admins",
        "policyType": "iam",
        "changeKind": "update",
        "environment": "staging",
        "title": "Add bob to the admins",
        "justification": "Bob joins the on-call rotation this week.",
        "riskScore": 40,
        "metadata": { "ticket": "OPS-1234" }
    })
}

fn measure(count: u64) {
    assert!(count > 0, "a count of at least one request");
    let alice = Principal::new("alice", &["engineer"]);
    let change = change();
    let tally = Tally {
        cache: MemoryCache::with_clock(Arc::new(|| chrono::Utc::now().timestamp_millis())),
        puts: Arc::default(),
        index_bytes: Arc::default(),
        index_entries: Arc::default(),
    };
    let manager = Manager::new(
        tally.clone(),
        || Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        uuid::Uuid::new_v4,
        rules(),
    );
    // One create first, so that the manager's and the cache's one-off
    // allocations (the partition record, the first map tables) are not
    // counted per request.
    ready(manager.create(&change, &alice, None)).unwrap();
    let values_before = tally.cache.stored_len();
    let bytes_before = resident_bytes();
    let tally_before = tally.puts.lock().unwrap().clone();
    let index_before = (
        tally.index_bytes.load(Ordering::Relaxed),
        tally.index_entries.load(Ordering::Relaxed),
    );
    let mut last = None;
    for _ in 0..count {
        last = Some(
            ready(manager.create(&change, &alice, None))
                .unwrap()
                .request,
        );
    }
    let bytes = resident_bytes() - bytes_before;
    let values = tally.cache.stored_len() - values_before;
    let per = |total: f64| total / count as f64;
    let request = last.unwrap();
    let stored = serde_json::to_vec(&request).unwrap().len();
    println!(
        "MEMORY n={count} resident_bytes_per_request={:.0} \
         values_per_request={:.2} request_json_bytes={stored}",
        per(bytes as f64),
        per(values as f64),
    );
    let tally_after = tally.puts.lock().unwrap().clone();
    let mut asked = 0.0;
    for (kind, (bytes, puts)) in &tally_after {
        let (bytes_then, puts_then) = tally_before.get(kind).copied().unwrap_or_default();
        let bytes = per((bytes - bytes_then) as f64);
        // The partition's event head (`p<N>:events:head`) is rewritten by
        // every create: one value per partition, not one per request.
        let overwritten = kind == "events";
        if !overwritten {
            asked += bytes;
        }
        println!(
            "MEMORY n={count} put kind={kind} puts_per_request={:.2} key_and_value_bytes_per_request={bytes:.0}{}",
            per((puts - puts_then) as f64),
            if overwritten {
                " (overwritten: one per partition, not counted)"
            } else {
                ""
            }
        );
    }
    let index_bytes = per((tally.index_bytes.load(Ordering::Relaxed) - index_before.0) as f64);
    let index_entries = per((tally.index_entries.load(Ordering::Relaxed) - index_before.1) as f64);
    asked += index_bytes;
    println!(
        "MEMORY n={count} index entries_per_request={index_entries:.2} \
         sort_key_and_member_bytes_per_request={index_bytes:.0}"
    );
    println!(
        "MEMORY n={count} payload_bytes_per_request={asked:.0} overhead_bytes_per_request={:.0}",
        per(bytes as f64) - asked
    );
    drop(manager);
}

/// One count per process: memory freed by an earlier measurement would be
/// reused by the next one and hide part of its growth.
fn main() {
    let count = std::env::args()
        .nth(1)
        .map_or(100_000, |count| count.parse().expect("a count of requests"));
    measure(count);
}
