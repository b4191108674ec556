//! An in-memory cache: the embedded default of the host, and the store of
//! tests and benchmarks.
//!
//! Values live in a hash map, ordered indexes in B-trees, so `range` costs
//! O(log N + limit). One mutex makes every commit atomic; it is never held
//! across an await because nothing here awaits.
//!
//! A value whose TTL has passed is dropped when a read finds it, and by
//! [`MemoryCache::purge_expired`], which a host calls periodically: values
//! with a TTL are also kept in a B-tree by deadline, so a purge costs
//! O(log N) per value dropped, never a scan, and memory tracks what is live.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::cache::{Batch, Cache, CommitOutcome, Entry, IndexEntry};
use crate::error::CacheError;

/// Milliseconds since the epoch, for TTLs.
pub type MillisClock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Stored {
    value: Vec<u8>,
    version: u64,
    expires_at_ms: Option<i64>,
}

#[derive(Default)]
struct State {
    values: HashMap<String, Stored>,
    indexes: HashMap<String, BTreeSet<IndexEntry>>,
    /// `(expires_at_ms, key)` of every value with a TTL.
    deadlines: BTreeSet<(i64, String)>,
    last_version: u64,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(stored) = self.values.remove(key)
            && let Some(deadline) = stored.expires_at_ms
        {
            self.deadlines.remove(&(deadline, key.to_owned()));
        }
    }

    /// The live value at `key`; an expired one is dropped on the way.
    fn live(&mut self, key: &str, now: Option<i64>) -> Option<&Stored> {
        let expired = self
            .values
            .get(key)
            .is_some_and(|stored| !is_live(stored, now));
        if expired {
            self.remove(key);
        }
        self.values.get(key)
    }
}

/// A thread-safe in-memory [`Cache`].
#[derive(Clone, Default)]
pub struct MemoryCache {
    state: Arc<Mutex<State>>,
    clock: Option<MillisClock>,
}

/// A handle on a [`MemoryCache`] that does not keep it alive (for a
/// periodic purge that should end with the cache).
#[derive(Clone)]
pub struct WeakMemoryCache {
    state: Weak<Mutex<State>>,
    clock: Option<MillisClock>,
}

impl WeakMemoryCache {
    /// The cache, while any handle on it lives.
    pub fn upgrade(&self) -> Option<MemoryCache> {
        Some(MemoryCache {
            state: self.state.upgrade()?,
            clock: self.clock.clone(),
        })
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").finish_non_exhaustive()
    }
}

impl MemoryCache {
    /// A cache whose TTLs never lapse (there is no clock to measure them).
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache that drops values once their TTL has passed on `clock`.
    pub fn with_clock(clock: MillisClock) -> Self {
        Self {
            state: Arc::default(),
            clock: Some(clock),
        }
    }

    /// A handle that does not keep the cache alive.
    pub fn downgrade(&self) -> WeakMemoryCache {
        WeakMemoryCache {
            state: Arc::downgrade(&self.state),
            clock: self.clock.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied commit
        // (commits are applied only after every check passed), so the data is
        // still consistent and the poison can be ignored.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Option<i64> {
        self.clock.as_ref().map(|clock| clock())
    }

    /// The number of members of `index`.
    pub fn index_len(&self, index: &str) -> usize {
        self.lock().indexes.get(index).map_or(0, BTreeSet::len)
    }

    /// Drops every value whose TTL has passed; returns how many.
    pub fn purge_expired(&self) -> usize {
        let Some(now) = self.now() else {
            return 0;
        };
        let mut state = self.lock();
        let mut purged = 0;
        while let Some((deadline, key)) = state.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            state.remove(&key);
            purged += 1;
        }
        purged
    }

    /// The number of values held, live or not yet purged.
    pub fn stored_len(&self) -> usize {
        self.lock().values.len()
    }

    /// The number of live values.
    pub fn len(&self) -> usize {
        let now = self.now();
        self.lock()
            .values
            .values()
            .filter(|stored| is_live(stored, now))
            .count()
    }

    /// Whether no live value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synchronous [`Cache::get`].
    pub fn get_now(&self, key: &str) -> Option<Entry> {
        let now = self.now();
        let mut state = self.lock();
        state.live(key, now).map(|stored| Entry {
            value: stored.value.clone(),
            version: stored.version,
        })
    }

    /// Synchronous [`Cache::get_many`].
    pub fn get_many_now(&self, keys: &[String], max_bytes: Option<u64>) -> Vec<Option<Entry>> {
        let now = self.now();
        let mut state = self.lock();
        let sizes: Vec<Option<u64>> = keys
            .iter()
            .map(|key| {
                state
                    .live(key, now)
                    .map(|stored| u64::try_from(stored.value.len()).unwrap_or(u64::MAX))
            })
            .collect();
        let taken = crate::cache::budget_prefix(sizes, max_bytes);
        keys.iter()
            .take(taken)
            .map(|key| {
                state.values.get(key).map(|stored| Entry {
                    value: stored.value.clone(),
                    version: stored.version,
                })
            })
            .collect()
    }

    /// Synchronous [`Cache::commit`].
    pub fn commit_now(&self, batch: Batch) -> CommitOutcome {
        let now = self.now();
        let mut state = self.lock();
        let holds = batch.checks.iter().all(|check| {
            let current = state.live(&check.key, now).map(|stored| stored.version);
            current == check.version
        });
        if !holds {
            return CommitOutcome::Conflict;
        }
        for key in &batch.deletes {
            state.remove(key);
        }
        for put in batch.puts {
            state.last_version += 1;
            let version = state.last_version;
            let expires_at_ms = match (put.ttl_ms, now) {
                (Some(ttl), Some(now)) => {
                    Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)))
                }
                _ => None,
            };
            state.remove(&put.key);
            if let Some(deadline) = expires_at_ms {
                state.deadlines.insert((deadline, put.key.clone()));
            }
            state.values.insert(
                put.key,
                Stored {
                    value: put.value,
                    version,
                    expires_at_ms,
                },
            );
        }
        for change in batch.index_removes {
            if let Some(index) = state.indexes.get_mut(&change.index) {
                index.remove(&change.entry);
                if index.is_empty() {
                    state.indexes.remove(&change.index);
                }
            }
        }
        for change in batch.index_adds {
            state
                .indexes
                .entry(change.index)
                .or_default()
                .insert(change.entry);
        }
        CommitOutcome::Committed
    }

    /// Synchronous [`Cache::range`].
    pub fn range_now(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Vec<IndexEntry> {
        let state = self.lock();
        let Some(entries) = state.indexes.get(index) else {
            return Vec::new();
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        entries
            .range((lower, Bound::Unbounded))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

fn is_live(stored: &Stored, now: Option<i64>) -> bool {
    match (stored.expires_at_ms, now) {
        (Some(expires), Some(now)) => now < expires,
        _ => true,
    }
}

impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.get_now(key))
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        Ok(self.get_many_now(keys, max_bytes))
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        Ok(self.commit_now(batch))
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        Ok(self.range_now(index, after, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Check, IndexChange, Put};
    use std::sync::atomic::{AtomicI64, Ordering};

    fn put(key: &str, value: &str) -> Put {
        Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            ttl_ms: None,
        }
    }

    fn entry(sort_key: &str, member: &str) -> IndexEntry {
        IndexEntry {
            sort_key: sort_key.into(),
            member: member.into(),
        }
    }

    #[test]
    fn a_failed_check_writes_nothing() {
        let cache = MemoryCache::new();
        assert_eq!(
            cache.commit_now(Batch {
                puts: vec![put("a", "1")],
                ..Batch::default()
            }),
            CommitOutcome::Committed
        );
        let version = cache.get_now("a").unwrap().version;
        let stale = Batch {
            checks: vec![Check {
                key: "a".into(),
                version: Some(version + 1),
            }],
            puts: vec![put("a", "2"), put("b", "2")],
            ..Batch::default()
        };
        assert_eq!(cache.commit_now(stale), CommitOutcome::Conflict);
        assert_eq!(cache.get_now("a").unwrap().value, b"1");
        assert!(cache.get_now("b").is_none());
        let absent = Batch {
            checks: vec![Check {
                key: "a".into(),
                version: None,
            }],
            ..Batch::default()
        };
        assert_eq!(cache.commit_now(absent), CommitOutcome::Conflict);
    }

    #[test]
    fn versions_move_on_every_put() {
        let cache = MemoryCache::new();
        cache.commit_now(Batch {
            puts: vec![put("a", "1")],
            ..Batch::default()
        });
        let first = cache.get_now("a").unwrap().version;
        cache.commit_now(Batch {
            puts: vec![put("a", "1")],
            ..Batch::default()
        });
        assert!(cache.get_now("a").unwrap().version > first);
    }

    #[test]
    fn ranges_start_strictly_after_a_position_that_may_be_gone() {
        let cache = MemoryCache::new();
        let adds = ["a", "b", "c", "d"]
            .iter()
            .map(|m| IndexChange {
                index: "i".into(),
                entry: entry("k", m),
            })
            .collect();
        cache.commit_now(Batch {
            index_adds: adds,
            ..Batch::default()
        });
        cache.commit_now(Batch {
            index_removes: vec![IndexChange {
                index: "i".into(),
                entry: entry("k", "b"),
            }],
            ..Batch::default()
        });
        let page = cache.range_now("i", Some(&entry("k", "b")), 10);
        let members: Vec<_> = page.iter().map(|e| e.member.as_str()).collect();
        assert_eq!(members, ["c", "d"]);
        assert_eq!(cache.range_now("i", None, 1)[0].member, "a");
        assert!(cache.range_now("missing", None, 10).is_empty());
    }

    #[test]
    fn ttls_lapse_on_the_injected_clock() {
        let now = Arc::new(AtomicI64::new(1_000));
        let clock = now.clone();
        let cache = MemoryCache::with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        let mut lived = put("a", "1");
        lived.ttl_ms = Some(500);
        cache.commit_now(Batch {
            puts: vec![lived],
            ..Batch::default()
        });
        now.store(1_499, Ordering::SeqCst);
        assert!(cache.get_now("a").is_some());
        now.store(1_500, Ordering::SeqCst);
        assert!(cache.get_now("a").is_none());
        let absent = Batch {
            checks: vec![Check {
                key: "a".into(),
                version: None,
            }],
            ..Batch::default()
        };
        assert_eq!(cache.commit_now(absent), CommitOutcome::Committed);
    }

    #[test]
    fn expired_values_are_dropped_on_read_and_by_a_purge() {
        let now = Arc::new(AtomicI64::new(1_000));
        let clock = now.clone();
        let cache = MemoryCache::with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        let with_ttl = |key: &str, ttl| {
            let mut put = put(key, "v");
            put.ttl_ms = Some(ttl);
            put
        };
        cache.commit_now(Batch {
            puts: vec![
                with_ttl("a", 100),
                with_ttl("b", 200),
                with_ttl("c", 300),
                put("d", "forever"),
            ],
            ..Batch::default()
        });
        // Replacing a value with a TTL moves its deadline.
        cache.commit_now(Batch {
            puts: vec![with_ttl("c", 10_000)],
            ..Batch::default()
        });
        now.store(1_250, Ordering::SeqCst);
        assert!(cache.get_now("a").is_none());
        assert_eq!(cache.stored_len(), 3, "the read dropped `a`");
        assert_eq!(cache.purge_expired(), 1, "`b` only: `c` lives on");
        assert_eq!(cache.stored_len(), 2);
        assert_eq!(cache.purge_expired(), 0);
        now.store(20_000, Ordering::SeqCst);
        assert_eq!(cache.purge_expired(), 1);
        assert_eq!(cache.stored_len(), 1);
        assert!(cache.get_now("d").is_some());
    }

    #[test]
    fn get_many_answers_in_order_and_within_a_budget() {
        let cache = MemoryCache::new();
        cache.commit_now(Batch {
            puts: vec![put("a", "12345"), put("b", "12345"), put("c", "1")],
            ..Batch::default()
        });
        let keys: Vec<String> = ["a", "x", "b", "c"].map(String::from).to_vec();
        let all = cache.get_many_now(&keys, None);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].as_ref().unwrap().value, b"12345");
        assert!(all[1].is_none());
        assert_eq!(all[3].as_ref().unwrap().value, b"1");
        assert_eq!(cache.get_many_now(&keys, Some(10)).len(), 3);
        assert_eq!(cache.get_many_now(&keys, Some(1)).len(), 1);
        assert!(cache.get_many_now(&[], Some(1)).is_empty());
    }
}
