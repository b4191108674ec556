//! The cache contract over Redis and Redis Cluster.
//!
//! Layout, for the key prefix `signoff`:
//!
//! - every key is `{signoff}:<key of the core>`: one hash tag, so every key
//!   of a commit (and of the whole store) maps to one Redis Cluster slot and a
//!   commit never fails with `CROSSSLOT`; the price is that one shard holds
//!   all of signoff's data, which the global listing indexes need anyway;
//! - a value is a hash `{ v: bytes, ver: version }`; versions come from the
//!   counter `{signoff}:seq`, so a key deleted (or expired) and written again
//!   never gets an old version back;
//! - an ordered index is a sorted set whose members all have score 0 and read
//!   `sortKey \0 member`, ranged with `ZRANGE … BYLEX LIMIT` in
//!   O(log N + limit); the core's sort keys never hold a NUL byte, and a
//!   commit that would add one is refused;
//! - `commit` is one Lua script (EVALSHA, loading it on `NOSCRIPT`): it checks
//!   every version, then applies deletes, puts (with `PEXPIRE` for a TTL),
//!   index removes and index adds, in one round trip and atomically.
//!
//! A single node is reached through a [`ConnectionManager`], which
//! reconnects by itself after Redis comes back; a cluster through
//! [`ClusterConnection`], created on first use and retried on the next call
//! when that fails. Every command has a response timeout, so a Redis that is
//! down or stuck makes calls fail with a [`CacheError`] instead of hanging.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use signoff_core::{Batch, CacheError, CommitOutcome, Entry, IndexEntry};
use tokio::sync::OnceCell;

use super::{MAX_RANGE, RedisOptions};

/// The Lua script of `commit`. Its `KEYS` are the version counter, then the
/// keys of the checks, deletes, puts, index removes and index adds in this
/// order; `ARGV` holds the five counts, then one expected version per check
/// (`""` for "absent"), a value and a TTL in ms (`""` for none) per put, and
/// one `sortKey \0 member` per index change.
const COMMIT_SCRIPT: &str = r"
local checks, deletes, puts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local removes, adds = tonumber(ARGV[4]), tonumber(ARGV[5])
local k, a = 2, 6
for _ = 1, checks do
  local current = redis.call('HGET', KEYS[k], 'ver')
  local expected = ARGV[a]
  if expected == '' then
    if current then return 0 end
  elseif current ~= expected then
    return 0
  end
  k = k + 1
  a = a + 1
end
for _ = 1, deletes do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
for _ = 1, puts do
  local version = redis.call('INCR', KEYS[1])
  redis.call('DEL', KEYS[k])
  redis.call('HSET', KEYS[k], 'v', ARGV[a], 'ver', version)
  if ARGV[a + 1] ~= '' then
    redis.call('PEXPIRE', KEYS[k], ARGV[a + 1])
  end
  k = k + 1
  a = a + 2
end
for _ = 1, removes do
  redis.call('ZREM', KEYS[k], ARGV[a])
  k = k + 1
  a = a + 1
end
for _ = 1, adds do
  redis.call('ZADD', KEYS[k], 0, ARGV[a])
  k = k + 1
  a = a + 1
end
return 1
";

/// Why a Redis backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The URL does not parse.
    #[error("invalid redis url `{url}`: {reason}")]
    InvalidUrl {
        /// The offending URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The key prefix cannot be a hash tag.
    #[error("invalid key prefix `{0}`: it must be non-empty and hold no `{{` or `}}`")]
    InvalidPrefix(String),
}

enum Client {
    Single(ConnectionManager),
    Cluster(Box<ClusterClientState>),
}

struct ClusterClientState {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

/// A connection to either kind of deployment.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The cache contract over Redis (see the module documentation).
pub struct RedisCache {
    client: Client,
    tag: String,
    script: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("tag", &self.tag)
            .field("cluster", &matches!(self.client, Client::Cluster(_)))
            .finish_non_exhaustive()
    }
}

fn unavailable(error: &redis::RedisError) -> CacheError {
    CacheError(format!("redis: {error}"))
}

/// The nodes of a cluster URL, or `None` for a single node: either the
/// scheme `redis+cluster://host:port,host:port` or several comma-separated
/// `redis://` URLs.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    if let Some(hosts) = url.strip_prefix("redis+cluster://") {
        return Some(
            hosts
                .split(',')
                .map(|host| format!("redis://{}", host.trim()))
                .collect(),
        );
    }
    url.contains(',')
        .then(|| url.split(',').map(|node| node.trim().to_owned()).collect())
}

impl RedisCache {
    /// A backend for `url`: `redis://host:port[/db]` for one node; for a
    /// cluster, `redis+cluster://host:port,host:port,…` or several
    /// comma-separated `redis://` URLs (any reachable node is enough, the
    /// others are found from it). Must run inside a tokio runtime.
    pub fn open(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, RedisSetupError> {
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) {
            return Err(RedisSetupError::InvalidPrefix(key_prefix.to_owned()));
        }
        let invalid = |error: redis::RedisError| RedisSetupError::InvalidUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        };
        let client = match cluster_nodes(url) {
            Some(nodes) => Client::Cluster(Box::new(ClusterClientState {
                client: ClusterClientBuilder::new(nodes)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.response_timeout)
                    .build()
                    .map_err(invalid)?,
                connection: OnceCell::new(),
            })),
            None => {
                let client = redis::Client::open(url).map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.response_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(options.connect_timeout);
                Client::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?,
                )
            }
        };
        Ok(Self {
            client,
            tag: format!("{{{key_prefix}}}:"),
            script: Script::new(COMMIT_SCRIPT),
        })
    }

    async fn connection(&self) -> Result<Connection, CacheError> {
        match &self.client {
            Client::Single(manager) => Ok(Connection::Single(manager.clone())),
            Client::Cluster(cluster) => cluster
                .connection
                .get_or_try_init(|| cluster.client.get_async_connection())
                .await
                .map(|connection| Connection::Cluster(connection.clone()))
                .map_err(|error| unavailable(&error)),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, CacheError> {
        let mut connection = self.connection().await?;
        cmd.query_async(&mut connection)
            .await
            .map_err(|error| unavailable(&error))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.tag)
    }

    /// The Redis key of the core's `key` (or index), for tests and tools.
    pub fn redis_key(&self, key: &str) -> String {
        self.key(key)
    }

    /// The value at `key` with its version: one `HMGET`.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let (value, version): (Option<Vec<u8>>, Option<String>) = self
            .query(redis::cmd("HMGET").arg(self.key(key)).arg("v").arg("ver"))
            .await?;
        match (value, version) {
            (Some(value), Some(version)) => {
                let version = version.parse().map_err(|_| {
                    CacheError(format!("redis: key `{key}` has a malformed version"))
                })?;
                Ok(Some(Entry { value, version }))
            }
            _ => Ok(None),
        }
    }

    /// Applies `batch` atomically: one script call.
    pub async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key("seq"))
            .arg(batch.checks.len())
            .arg(batch.deletes.len())
            .arg(batch.puts.len())
            .arg(batch.index_removes.len())
            .arg(batch.index_adds.len());
        for check in &batch.checks {
            invocation.key(self.key(&check.key));
            invocation.arg(check.version.map(|v| v.to_string()).unwrap_or_default());
        }
        for key in &batch.deletes {
            invocation.key(self.key(key));
        }
        for put in &batch.puts {
            invocation.key(self.key(&put.key));
            invocation.arg(put.value.as_slice());
            invocation.arg(put.ttl_ms.map(|ttl| ttl.to_string()).unwrap_or_default());
        }
        for change in batch.index_removes.iter().chain(&batch.index_adds) {
            invocation.key(self.key(&change.index));
            invocation.arg(member(&change.entry)?);
        }
        let mut connection = self.connection().await?;
        let applied: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| unavailable(&error))?;
        Ok(if applied == 1 {
            CommitOutcome::Committed
        } else {
            CommitOutcome::Conflict
        })
    }

    /// Up to `limit` (at most [`MAX_RANGE`]) entries of `index` strictly
    /// after `after`: one `ZRANGE … BYLEX LIMIT`.
    pub async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        let limit = limit.min(MAX_RANGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(entry) => {
                let mut start = b"(".to_vec();
                start.extend_from_slice(&member(entry)?);
                start
            }
            None => b"-".to_vec(),
        };
        let members: Vec<Vec<u8>> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.key(index))
                    .arg(start)
                    .arg("+")
                    .arg("BYLEX")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        members.iter().map(|raw| entry(index, raw)).collect()
    }

    /// `ZCARD` of `index`.
    pub async fn index_len(&self, index: &str) -> Result<u64, CacheError> {
        self.query(redis::cmd("ZCARD").arg(self.key(index))).await
    }

    /// Whether the node holding this prefix's slot answers: an `EXISTS` on
    /// the version counter, routed like every other command of the prefix
    /// (a cluster-wide `PING` could reach another master).
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _exists: i64 = self
            .query(redis::cmd("EXISTS").arg(self.key("seq")))
            .await?;
        Ok(())
    }
}

/// The sorted-set member of an index entry: `sortKey \0 member`.
fn member(entry: &IndexEntry) -> Result<Vec<u8>, CacheError> {
    if entry.sort_key.contains('\0') {
        return Err(CacheError(format!(
            "sort key `{}` holds a NUL byte",
            entry.sort_key.escape_debug()
        )));
    }
    let mut bytes = Vec::with_capacity(entry.sort_key.len() + 1 + entry.member.len());
    bytes.extend_from_slice(entry.sort_key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(entry.member.as_bytes());
    Ok(bytes)
}

fn entry(index: &str, raw: &[u8]) -> Result<IndexEntry, CacheError> {
    let malformed = || CacheError(format!("redis: index `{index}` holds a malformed member"));
    let split = raw
        .iter()
        .position(|byte| *byte == 0)
        .ok_or_else(malformed)?;
    let (sort_key, member) = raw.split_at(split);
    let member = member.get(1..).ok_or_else(malformed)?;
    Ok(IndexEntry {
        sort_key: String::from_utf8(sort_key.to_vec()).map_err(|_| malformed())?,
        member: String::from_utf8(member.to_vec()).map_err(|_| malformed())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_back_into_their_entries() {
        let original = IndexEntry {
            sort_key: "1.00000000000000000042".into(),
            member: "a:b\u{e9}".into(),
        };
        let raw = member(&original).unwrap();
        assert_eq!(entry("i", &raw).unwrap(), original);
        assert!(entry("i", b"no-separator").is_err());
        let nul = IndexEntry {
            sort_key: "a\0b".into(),
            member: "m".into(),
        };
        assert!(member(&nul).is_err());
    }

    #[test]
    fn cluster_urls_are_recognized() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://a:1,b:2"),
            Some(vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()])
        );
        assert_eq!(
            cluster_nodes("redis://a:1, redis://b:2"),
            Some(vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()])
        );
    }
}
