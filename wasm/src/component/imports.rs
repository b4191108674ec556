//! The host's imports as the core's [`Cache`], [`Clock`] and [`IdSource`].

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use signoff_core::{
    Batch, Cache, CacheError, Clock, CommitOutcome, Entry, Error, IdSource, IndexEntry, Timestamp,
};
use uuid::Uuid;

use super::bindings::signoff::engine::{cache, host};

/// Runs a future of the core to completion. Every import answers
/// synchronously, so the future is ready on its first poll; should it ever
/// pend, the call fails instead of spinning.
pub fn block_on<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => Err(Error::Internal(
            "an operation waited although every import is synchronous".to_owned(),
        )),
    }
}

/// The cache served by the host's `cache` import.
pub struct HostCache;

fn to_wit_entry(entry: &IndexEntry) -> cache::IndexEntry {
    cache::IndexEntry {
        sort_key: entry.sort_key.clone(),
        member: entry.member.clone(),
    }
}

fn to_wit_changes(changes: Vec<signoff_core::IndexChange>) -> Vec<cache::IndexChange> {
    changes
        .into_iter()
        .map(|change| cache::IndexChange {
            index: change.index,
            sort_key: change.entry.sort_key,
            member: change.entry.member,
        })
        .collect()
}

impl Cache for HostCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        cache::get(key)
            .map(|entry| {
                entry.map(|entry| Entry {
                    value: entry.value,
                    version: entry.version,
                })
            })
            .map_err(CacheError)
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        let entries = cache::get_many(keys, max_bytes).map_err(CacheError)?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                entry.map(|entry| Entry {
                    value: entry.value,
                    version: entry.version,
                })
            })
            .collect())
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let batch = cache::Batch {
            checks: batch
                .checks
                .into_iter()
                .map(|check| cache::Check {
                    key: check.key,
                    version: check.version,
                })
                .collect(),
            puts: batch
                .puts
                .into_iter()
                .map(|put| cache::Put {
                    key: put.key,
                    value: put.value,
                    ttl_ms: put.ttl_ms,
                })
                .collect(),
            deletes: batch.deletes,
            index_adds: to_wit_changes(batch.index_adds),
            index_removes: to_wit_changes(batch.index_removes),
        };
        match cache::commit(&batch).map_err(CacheError)? {
            cache::CommitOutcome::Committed => Ok(CommitOutcome::Committed),
            cache::CommitOutcome::Conflict => Ok(CommitOutcome::Conflict),
        }
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        let after = after.map(to_wit_entry);
        let entries = cache::range(index, after.as_ref(), limit).map_err(CacheError)?;
        Ok(entries
            .into_iter()
            .map(|entry| IndexEntry {
                sort_key: entry.sort_key,
                member: entry.member,
            })
            .collect())
    }
}

/// The layout of the host's store.
pub fn host_layout() -> Result<signoff_core::keys::Layout, Error> {
    let partitions = cache::partitions();
    signoff_core::keys::Layout::new(u32::from(partitions))
        .map_err(|error| Error::Internal(format!("the host's store: {error}")))
}

/// The host's clock.
pub struct HostClock;

impl Clock for HostClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(host::now_ms())
    }
}

/// The host's source of fresh ids.
pub struct HostIds;

impl IdSource for HostIds {
    fn new_id(&self) -> Result<Uuid, signoff_core::Error> {
        let (high, low) = host::new_id();
        Ok(Uuid::from_u64_pair(high, low))
    }
}
