//! The cache contract: the only way the core reaches storage.
//!
//! Four operations are enough for everything signoff stores: a versioned
//! `get`, its batched form `get_many` (one round trip for many keys, so a
//! listing page costs the same number of round trips whatever its size), an
//! all-or-nothing `commit` guarded by version checks, and `range` over ordered
//! indexes. They can be implemented over Redis (one Lua script per commit;
//! every key of a commit lies in one partition, which is its hash tag), a JS
//! `Map`, IndexedDB or an edge store with atomic checks.

use serde::{Deserialize, Serialize};

use crate::error::CacheError;

/// A stored value and the version a later commit must check against.
///
/// Each shape of this contract is declared once, here: the JS package's
/// TypeScript declares them from these types (the `tsify` feature) as
/// `CacheEntry`, `CacheCheck`, `CachePut`, `CacheBatch`, `IndexEntry` and
/// `IndexChange`, and the WIT records of the component have the same fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(rename = "CacheEntry"))]
pub struct Entry {
    /// The value's bytes.
    #[cfg_attr(feature = "tsify", tsify(type = "Uint8Array"))]
    pub value: Vec<u8>,
    /// Changes on every put of the key.
    pub version: u64,
}

/// A precondition of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "tsify",
    derive(tsify::Tsify),
    tsify(rename = "CacheCheck", missing_as_null)
)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The key.
    pub key: String,
    /// The version it must have, or `None` for "must be absent".
    pub version: Option<u64>,
}

/// A write of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(rename = "CachePut"))]
#[serde(rename_all = "camelCase")]
pub struct Put {
    /// The key.
    pub key: String,
    /// The new value; the cache assigns the new version.
    #[cfg_attr(feature = "tsify", tsify(type = "Uint8Array"))]
    pub value: Vec<u8>,
    /// Time to live, when the value should vanish by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub ttl_ms: Option<u64>,
}

/// A member of an ordered index, with its sort key; also a position in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Ordering key, compared as bytes; ties break by member.
    pub sort_key: String,
    /// The member, e.g. a request id.
    pub member: String,
}

/// An addition to or removal from an ordered index. Its one shape, in
/// JSON, in JS, in the IndexedDB cache and in the component's WIT record
/// alike, is flat: `{ index, sortKey, member }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct IndexChange {
    /// The index's name.
    pub index: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: IndexEntry,
}

/// An atomic batch: the checks, then every write, or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify), tsify(rename = "CacheBatch"))]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// Preconditions, all of which must hold.
    #[cfg_attr(feature = "tsify", tsify(type = "CacheCheck[]"))]
    pub checks: Vec<Check>,
    /// Values to write.
    #[cfg_attr(feature = "tsify", tsify(type = "CachePut[]"))]
    pub puts: Vec<Put>,
    /// Keys to remove.
    pub deletes: Vec<String>,
    /// Index entries to add.
    pub index_adds: Vec<IndexChange>,
    /// Index entries to remove.
    pub index_removes: Vec<IndexChange>,
}

impl Batch {
    /// Every key the batch reads or writes (indexes included), for hosts that
    /// must route a commit to one shard.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.checks
            .iter()
            .map(|check| check.key.as_str())
            .chain(self.puts.iter().map(|put| put.key.as_str()))
            .chain(self.deletes.iter().map(String::as_str))
            .chain(self.index_adds.iter().map(|change| change.index.as_str()))
            .chain(
                self.index_removes
                    .iter()
                    .map(|change| change.index.as_str()),
            )
    }
}

/// The outcome of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    /// Every write was applied.
    Committed,
    /// A check failed; nothing was written.
    Conflict,
}

/// Storage as the core sees it. Methods are async without a `Send` bound so
/// that a JavaScript host can await Promises behind them; a synchronous store
/// simply returns ready futures.
#[allow(
    async_fn_in_trait,
    reason = "implementations are not required to be Send (JS hosts)"
)]
pub trait Cache {
    /// The value at `key` with its version, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError>;

    /// The values at `keys`, one per key and in order, in one round trip.
    ///
    /// With `max_bytes`, the answer may be a prefix of `keys`: the store
    /// stops before the first key whose value would take the total of value
    /// bytes answered past `max_bytes` (absent keys count nothing), but always
    /// answers the first key. This bounds what a caller with little memory
    /// (a listing in a guest of 64 MiB) receives, whatever the stored sizes.
    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError>;

    /// Applies `batch` atomically if all its checks hold.
    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError>;

    /// Up to `limit` entries of `index` strictly after `after` (which need not
    /// be in the index any more), in `(sort_key, member)` order.
    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError>;
}

impl<C: Cache + ?Sized> Cache for &C {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        (**self).get(key).await
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        (**self).get_many(keys, max_bytes).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        (**self).commit(batch).await
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        (**self).range(index, after, limit).await
    }
}

impl<C: Cache + ?Sized> Cache for std::sync::Arc<C> {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        (**self).get(key).await
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        (**self).get_many(keys, max_bytes).await
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        (**self).commit(batch).await
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        (**self).range(index, after, limit).await
    }
}

/// The length of the prefix of `sizes` (value sizes; `None` for an absent
/// key) that [`Cache::get_many`] answers under `max_bytes`: at least one key
/// when there is any, then every key while the running total stays within
/// the budget. Every implementation cuts with this one function.
pub fn budget_prefix(
    sizes: impl IntoIterator<Item = Option<u64>>,
    max_bytes: Option<u64>,
) -> usize {
    let mut total: u64 = 0;
    let mut taken = 0;
    for size in sizes {
        let size = size.unwrap_or(0);
        total = total.saturating_add(size);
        if let Some(budget) = max_bytes
            && taken > 0
            && total > budget
        {
            break;
        }
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::{Batch, Check, IndexChange, IndexEntry, Put, budget_prefix};

    #[test]
    fn an_index_change_has_one_flat_shape() {
        let change = IndexChange {
            index: "p3:idx:status:pending".into(),
            entry: IndexEntry {
                sort_key: "0001".into(),
                member: "r1".into(),
            },
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "index": "p3:idx:status:pending", "sortKey": "0001", "member": "r1" })
        );
        assert_eq!(serde_json::from_value::<IndexChange>(json).unwrap(), change);
        let nested =
            serde_json::json!({ "index": "i", "entry": { "sortKey": "s", "member": "m" } });
        assert!(serde_json::from_value::<IndexChange>(nested).is_err());
    }

    #[test]
    fn a_batch_reads_back_what_it_writes() {
        let batch = Batch {
            checks: vec![Check {
                key: "p0:req:r1".into(),
                version: None,
            }],
            puts: vec![Put {
                key: "p0:req:r1".into(),
                value: b"{}".to_vec(),
                ttl_ms: Some(1000),
            }],
            deletes: vec!["p0:old".into()],
            index_adds: vec![IndexChange {
                index: "p0:idx".into(),
                entry: IndexEntry {
                    sort_key: "a".into(),
                    member: "r1".into(),
                },
            }],
            index_removes: Vec::new(),
        };
        let json = serde_json::to_string(&batch).unwrap();
        assert!(json.contains(r#""indexAdds":[{"index":"p0:idx","sortKey":"a","member":"r1"}]"#));
        assert_eq!(serde_json::from_str::<Batch>(&json).unwrap(), batch);
    }

    #[test]
    fn the_budget_keeps_at_least_one_key_and_stops_before_passing() {
        assert_eq!(budget_prefix([Some(10), Some(10)], None), 2);
        assert_eq!(budget_prefix([Some(50), Some(1)], Some(10)), 1);
        assert_eq!(budget_prefix([Some(5), Some(5), Some(1)], Some(10)), 2);
        assert_eq!(
            budget_prefix([Some(5), None, Some(5), Some(1)], Some(10)),
            3
        );
        assert_eq!(budget_prefix([Some(5), None, None], Some(5)), 3);
        assert_eq!(budget_prefix(Vec::<Option<u64>>::new(), Some(5)), 0);
    }
}
