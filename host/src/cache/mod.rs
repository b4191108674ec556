//! The storage behind the engine's `cache` import: the cache contract of
//! docs/CONTRACT.md section 6 over an embedded in-memory store or Redis.
//!
//! [`CacheBackend`] is the one type the engine talks to. Both backends give
//! the same answers: versions change on every put and are never reused for a
//! key, `commit` is all or nothing, `get_many` is one round trip, and
//! `range` is O(log N + limit). A failure
//! of the store is a [`CacheError`], which the core reports as `unavailable`.

mod redis;

use std::sync::Arc;
use std::time::Duration;

use signoff_core::memory::MillisClock;
use signoff_core::{Batch, Cache, CacheError, CommitOutcome, Entry, IndexEntry, MemoryCache};

pub use self::redis::{Durability, RedisCache, RedisSetupError};

/// The most index entries one `range` returns, whatever the caller asks.
///
/// The core asks for at most a page plus one (501) when listing; a sweep asks
/// for its own limit, and simply runs again when it got fewer than it asked.
pub const MAX_RANGE: u32 = 1000;

/// `url` (or comma-separated URLs) with every password replaced by `***`,
/// for logs and error messages: a Redis URL's password never reaches either.
/// Everything between the scheme and the last `@` but the user name is
/// hidden, so a password holding a raw `/`, `?` or `@` is hidden too; a user
/// info without a `:` is hidden whole, as it may be a password.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|part| {
            let Some(scheme_end) = part.find("://").map(|at| at + 3) else {
                return part.to_owned();
            };
            let (scheme, rest) = part.split_at(scheme_end);
            let Some(at) = rest.rfind('@') else {
                return part.to_owned();
            };
            let (user_info, host) = rest.split_at(at);
            let shown = match user_info.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***"),
                _ => "***".to_owned(),
            };
            format!("{scheme}{shown}{host}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How the Redis backend connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command may wait for its answer.
    pub response_timeout: Duration,
    /// How many replicas must hold a commit before it answers (`WAIT`).
    pub wait_replicas: u32,
    /// The store's number of partitions, each a hash tag of its own.
    pub partitions: u16,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            wait_replicas: 0,
            partitions: signoff_core::keys::DEFAULT_PARTITIONS,
        }
    }
}

/// The store behind the cache contract.
#[derive(Clone, Debug)]
pub enum CacheBackend {
    /// The embedded in-memory cache; TTLs lapse on the wall clock.
    Memory(MemoryCache),
    /// Redis or Redis Cluster.
    Redis(Arc<RedisCache>),
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl CacheBackend {
    /// The embedded in-memory cache.
    pub fn memory() -> Self {
        Self::memory_with_clock(Arc::new(wall_clock_ms))
    }

    /// The embedded in-memory cache, its TTLs lapsing on `clock` (epoch ms).
    pub fn memory_with_clock(clock: MillisClock) -> Self {
        Self::Memory(MemoryCache::with_clock(clock))
    }

    /// A Redis backend for `url` (see [`RedisCache::open`] for the forms it
    /// takes); every key starts with the hash tag `{key_prefix}`. Nothing is
    /// connected yet: the first call connects, and calls after a failure
    /// reconnect by themselves.
    pub fn redis(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, RedisSetupError> {
        let mut cache = RedisCache::open(url, key_prefix, options)?;
        cache.set_wait_replicas(options.wait_replicas);
        Ok(Self::Redis(Arc::new(cache)))
    }

    /// The value at `key` with its version.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        match self {
            Self::Memory(cache) => Ok(cache.get_now(key)),
            Self::Redis(cache) => cache.get(key).await,
        }
    }

    /// The values at `keys`, in order, in one round trip (a prefix of them
    /// within `max_bytes`).
    pub async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        match self {
            Self::Memory(cache) => Ok(cache.get_many_now(keys, max_bytes)),
            Self::Redis(cache) => cache.get_many(keys, max_bytes).await,
        }
    }

    /// Applies `batch` atomically if its checks hold.
    pub async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        match self {
            Self::Memory(cache) => Ok(cache.commit_now(batch)),
            Self::Redis(cache) => cache.commit(batch).await,
        }
    }

    /// Up to `limit` (at most [`MAX_RANGE`]) entries of `index` after `after`.
    pub async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        let limit = limit.min(MAX_RANGE);
        match self {
            Self::Memory(cache) => Ok(cache.range_now(index, after, limit)),
            Self::Redis(cache) => cache.range(index, after, limit).await,
        }
    }

    /// The number of entries of `index`.
    pub async fn index_len(&self, index: &str) -> Result<u64, CacheError> {
        match self {
            Self::Memory(cache) => Ok(u64::try_from(cache.index_len(index)).unwrap_or(u64::MAX)),
            Self::Redis(cache) => cache.index_len(index).await,
        }
    }

    /// What the store promises about keeping acknowledged writes; `None`
    /// for the in-memory cache, which keeps nothing across a restart.
    pub async fn durability(&self) -> Result<Option<Durability>, CacheError> {
        match self {
            Self::Memory(_) => Ok(None),
            Self::Redis(cache) => cache.durability().await.map(Some),
        }
    }

    /// Drops expired values from the in-memory cache (Redis expires its
    /// own); how many.
    pub fn purge_expired(&self) -> usize {
        match self {
            Self::Memory(cache) => cache.purge_expired(),
            Self::Redis(_) => 0,
        }
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(cache) => cache.ping().await,
        }
    }
}

impl Cache for CacheBackend {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        CacheBackend::get(self, key).await
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        CacheBackend::get_many(self, keys, max_bytes).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        CacheBackend::commit(self, batch).await
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        CacheBackend::range(self, index, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "rediss://user:p%40ss@example.com:6380/?protocol=resp3",
                "rediss://user:***@example.com:6380/?protocol=resp3",
            ),
            ("redis://secret@host", "redis://***@host"),
            ("redis://:pa/ss?x@host:1/2", "redis://:***@host:1/2"),
            (
                "redis://a:x@h1:1, redis://b:y@h2:2",
                "redis://a:***@h1:1, redis://b:***@h2:2",
            ),
            (
                "redis+cluster://u:pw@a:1,b:2",
                "redis+cluster://u:***@a:1,b:2",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
