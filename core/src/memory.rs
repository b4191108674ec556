//! An in-memory cache: the embedded default of the host, and the store of
//! tests and benchmarks.
//!
//! Values live in a hash map, ordered indexes in B-trees, so `range` costs
//! O(log N + limit). One mutex makes every commit atomic; it is never held
//! across an await because nothing here awaits.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

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
    last_version: u64,
}

/// A thread-safe in-memory [`Cache`].
#[derive(Clone, Default)]
pub struct MemoryCache {
    state: Arc<Mutex<State>>,
    clock: Option<MillisClock>,
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
        let state = self.lock();
        state
            .values
            .get(key)
            .filter(|stored| is_live(stored, now))
            .map(|stored| Entry {
                value: stored.value.clone(),
                version: stored.version,
            })
    }

    /// Synchronous [`Cache::commit`].
    pub fn commit_now(&self, batch: Batch) -> CommitOutcome {
        let now = self.now();
        let mut state = self.lock();
        let holds = batch.checks.iter().all(|check| {
            let current = state
                .values
                .get(&check.key)
                .filter(|stored| is_live(stored, now))
                .map(|stored| stored.version);
            current == check.version
        });
        if !holds {
            return CommitOutcome::Conflict;
        }
        for key in &batch.deletes {
            state.values.remove(key);
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
}
