//! The cache contract over Redis and Redis Cluster.
//!
//! Layout, for the key prefix `signoff:`:
//!
//! - the core writes every key inside a partition (`p<N>:…`, see
//!   `signoff_core::keys`); its Redis key is `{signoff:p<N>.<salt>}:…` (a
//!   prefix without a trailing `:` gets one), so the partition is the hash
//!   tag: every commit (always inside one partition) maps to one Redis
//!   Cluster slot. The salt puts the P partitions' slots evenly apart (see
//!   [`spread_tags`]), so they spread over the masters. A key outside every partition (the host's rules record) is
//!   `{signoff:}:…`;
//! - a value is a string: its version as 8 bytes big-endian, then the
//!   value's bytes, so `GET` reads one and `MGET` many in one command (the
//!   version check of a commit reads the first 8 bytes: an absent key reads
//!   as empty, which no expected version is);
//! - versions are random 63-bit numbers drawn by the host for each put,
//!   never a counter: a Redis failover that lost acknowledged writes cannot
//!   hand out a version again, so a compare-and-swap never passes against a
//!   state it did not read;
//! - an ordered index is a sorted set whose members all have score 0 and read
//!   `sortKey \0 member`, ranged with `ZRANGE … BYLEX LIMIT` in
//!   O(log N + limit); the core's sort keys never hold a NUL byte, and a
//!   commit that would add one is refused;
//! - `commit` is one Lua script (EVALSHA, loading it on `NOSCRIPT`): it
//!   checks every version, then applies deletes, puts (with a TTL in ms),
//!   index removes and index adds, in one round trip and atomically. Each
//!   commit carries a random id, and the script records it (for a minute) in
//!   the partition with the writes: a commit that a client library re-sends
//!   after a lost reply finds its id and answers `committed` without
//!   applying anything twice;
//! - `get_many` is one `MGET` on a single node, and one `MGET` per partition
//!   (sent together) on a cluster; with a byte budget, a single node runs one
//!   script that stops at the budget.
//!
//! A single node is reached through a [`ConnectionManager`], which
//! reconnects by itself after Redis comes back; a cluster through
//! [`ClusterConnection`], created on first use and retried on the next call
//! when that fails. Every command has a response timeout, so a Redis that is
//! down or stuck makes calls fail with a [`CacheError`] instead of hanging.

use std::collections::BTreeMap;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use signoff_core::cache::budget_prefix;
use signoff_core::keys::split_partition;
use signoff_core::{Batch, CacheError, CommitOutcome, Entry, IndexEntry};
use tokio::sync::OnceCell;

use super::{MAX_RANGE, RedisOptions};

/// How many times one commit is sent when its reply is lost.
const COMMIT_SENDS: u32 = 3;

/// Whether a command may have reached Redis although its answer did not
/// come back (the connection dropped, or the answer timed out).
fn reply_lost(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_timeout()
}

/// How long a commit's id is kept: a re-send later than this is not
/// recognized (client libraries re-send within seconds).
const COMMIT_ID_TTL_MS: u64 = 60_000;

/// The Lua script of `commit` (it reads with `GETRANGE`, which no caller
/// sends, so that `INFO commandstats` tells the round trips apart from the
/// script's own reads). Its `KEYS` are the commit's id key, then the
/// keys of the checks, deletes, puts, index removes and index adds in this
/// order; `ARGV` holds the five counts, then one expected version per check
/// (8 bytes, or `""` for "absent"), a value (version included) and a TTL in
/// ms (`""` for none) per put, and one `sortKey \0 member` per index change,
/// and last the id's TTL.
const COMMIT_SCRIPT: &str = r"
if redis.call('GETRANGE', KEYS[1], 0, 0) ~= '' then return 1 end
local checks, deletes, puts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local removes, adds = tonumber(ARGV[4]), tonumber(ARGV[5])
local k, a = 2, 6
for _ = 1, checks do
  local current = redis.call('GETRANGE', KEYS[k], 0, 7)
  if current ~= ARGV[a] then return 0 end
  k = k + 1
  a = a + 1
end
for _ = 1, deletes do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
for _ = 1, puts do
  if ARGV[a + 1] ~= '' then
    redis.call('SET', KEYS[k], ARGV[a], 'PX', ARGV[a + 1])
  else
    redis.call('SET', KEYS[k], ARGV[a])
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
redis.call('SET', KEYS[1], '1', 'PX', ARGV[a])
return 1
";

/// The Lua script of `get_many` with a byte budget, on a single node: the
/// values of `KEYS` in order, stopping before the first value that would
/// take the total past `ARGV[1]` bytes (the first key is always answered).
const GET_MANY_SCRIPT: &str = r"
local budget, total, out = tonumber(ARGV[1]), 0, {}
for i = 1, #KEYS do
  local value = redis.call('GETRANGE', KEYS[i], 0, -1)
  if value ~= '' then
    total = total + #value - 8
    if i > 1 and total > budget then break end
    out[i] = value
  else
    out[i] = false
  end
end
return out
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

/// What a Redis deployment promises about keeping what it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Durability {
    /// `maxmemory-policy`: anything but `noeviction` may delete requests.
    pub maxmemory_policy: String,
    /// `appendonly`: `yes` when writes go to the append-only file.
    pub appendonly: String,
    /// `appendfsync`: how often that file is flushed to disk.
    pub appendfsync: String,
}

impl Durability {
    /// Whether Redis may evict keys (and so delete requests) under memory
    /// pressure.
    pub fn may_evict(&self) -> bool {
        self.maxmemory_policy != "noeviction"
    }
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
    prefix: String,
    /// The hash tag of each partition, braces included.
    tags: Vec<String>,
    script: Script,
    get_many_script: Script,
    wait_replicas: u32,
    wait_timeout_ms: u64,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
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
    for (scheme, node_scheme) in [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ] {
        if let Some(hosts) = url.strip_prefix(scheme) {
            return Some(
                hosts
                    .split(',')
                    .map(|host| format!("{node_scheme}{}", host.trim()))
                    .collect(),
            );
        }
    }
    url.contains(',')
        .then(|| url.split(',').map(|node| node.trim().to_owned()).collect())
}

impl RedisCache {
    /// A backend for `url`: `redis://host:port[/db]` for one node
    /// (`rediss://` for TLS, checked against the system's trusted
    /// certificates; `redis://:password@host` or `redis://user:password@host`
    /// to authenticate); for a cluster, `redis+cluster://host:port,host:port,…`
    /// (`rediss+cluster://` for TLS) or several comma-separated `redis://`
    /// URLs (any reachable node is enough, the others are found from it).
    /// Must run inside a tokio runtime.
    pub fn open(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, RedisSetupError> {
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) {
            return Err(RedisSetupError::InvalidPrefix(key_prefix.to_owned()));
        }
        // rustls picks its cryptography from the process-wide provider: ring,
        // the one this build carries. A second call is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The URL may hold a password: only its redacted form is shown.
        let invalid = |error: redis::RedisError| RedisSetupError::InvalidUrl {
            url: super::redact_url(url),
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
            prefix: key_prefix.to_owned(),
            tags: spread_tags(key_prefix, options.partitions),
            script: Script::new(COMMIT_SCRIPT),
            get_many_script: Script::new(GET_MANY_SCRIPT),
            wait_replicas: 0,
            wait_timeout_ms: u64::try_from(options.response_timeout.as_millis())
                .unwrap_or(u64::MAX),
        })
    }

    /// Makes every commit wait (`WAIT`) until `replicas` replicas hold it,
    /// for at most the response timeout; a commit that too few replicas
    /// acknowledged in time fails as unavailable (it may still be applied:
    /// its retry is recognized by its commit id).
    pub fn set_wait_replicas(&mut self, replicas: u32) {
        self.wait_replicas = replicas;
    }

    fn is_cluster(&self) -> bool {
        matches!(self.client, Client::Cluster(_))
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

    /// The hash tag of `key`'s partition, braces included.
    fn tag(&self, key: &str) -> String {
        split_partition(key)
            .and_then(|(partition, _)| self.tags.get(usize::from(partition)))
            .cloned()
            .unwrap_or_else(|| format!("{{{}}}", self.prefix))
    }

    fn key(&self, key: &str) -> String {
        let rest = split_partition(key).map_or(key, |(_, rest)| rest);
        format!("{}:{rest}", self.tag(key))
    }

    /// The value at `key` with its version: one `GET`.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(self.key(key))).await?;
        raw.map(|raw| stored_entry(key, raw)).transpose()
    }

    /// The values at `keys` in order (a prefix of them within `max_bytes`,
    /// see [`signoff_core::Cache::get_many`]): one command on a single node,
    /// one `MGET` per partition, sent at once, on a cluster.
    pub async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raws: Vec<Option<Vec<u8>>> = if self.is_cluster() {
            self.mget_by_partition(keys).await?
        } else {
            match max_bytes {
                None => {
                    let mut mget = redis::cmd("MGET");
                    for key in keys {
                        mget.arg(self.key(key));
                    }
                    self.query(&mget).await?
                }
                Some(budget) => {
                    let mut invocation = self.get_many_script.prepare_invoke();
                    for key in keys {
                        invocation.key(self.key(key));
                    }
                    invocation.arg(budget);
                    let mut connection = self.connection().await?;
                    invocation
                        .invoke_async(&mut connection)
                        .await
                        .map_err(|error| unavailable(&error))?
                }
            }
        };
        let taken = budget_prefix(
            raws.iter().map(|raw| {
                raw.as_ref()
                    .map(|raw| u64::try_from(raw.len().saturating_sub(8)).unwrap_or(u64::MAX))
            }),
            max_bytes,
        )
        .min(keys.len());
        raws.into_iter()
            .take(taken)
            .zip(keys)
            .map(|(raw, key)| raw.map(|raw| stored_entry(key, raw)).transpose())
            .collect()
    }

    /// One `MGET` per partition, all in flight at once.
    async fn mget_by_partition(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (position, key) in keys.iter().enumerate() {
            groups.entry(self.tag(key)).or_default().push(position);
        }
        let connection = self.connection().await?;
        let requests = groups.values().map(|positions| {
            let mut mget = redis::cmd("MGET");
            for position in positions {
                if let Some(key) = keys.get(*position) {
                    mget.arg(self.key(key));
                }
            }
            let mut connection = connection.clone();
            async move {
                mget.query_async::<Vec<Option<Vec<u8>>>>(&mut connection)
                    .await
                    .map_err(|error| unavailable(&error))
            }
        });
        let answers = futures::future::try_join_all(requests).await?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (positions, values) in groups.values().zip(answers) {
            for (position, value) in positions.iter().zip(values) {
                if let Some(slot) = out.get_mut(*position) {
                    *slot = value;
                }
            }
        }
        Ok(out)
    }

    /// Applies `batch` atomically: one script call (and a `WAIT` when
    /// replicas must acknowledge). Every key of the batch must lie in one
    /// partition.
    pub async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let mut keys = batch.keys();
        let Some(first) = keys.next() else {
            return Ok(CommitOutcome::Committed);
        };
        let tag = self.tag(first);
        if let Some(stray) = keys.find(|key| self.tag(key) != tag) {
            return Err(CacheError(format!(
                "a commit spans partitions: `{first}` and `{stray}`"
            )));
        }
        let commit_id = uuid::Uuid::new_v4();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{tag}:commit:{commit_id}"))
            .arg(batch.checks.len())
            .arg(batch.deletes.len())
            .arg(batch.puts.len())
            .arg(batch.index_removes.len())
            .arg(batch.index_adds.len());
        for check in &batch.checks {
            invocation.key(self.key(&check.key));
            match check.version {
                Some(version) => invocation.arg(&version.to_be_bytes()[..]),
                None => invocation.arg(""),
            };
        }
        for key in &batch.deletes {
            invocation.key(self.key(key));
        }
        for put in &batch.puts {
            let mut stored = Vec::with_capacity(8 + put.value.len());
            stored.extend_from_slice(&fresh_version().to_be_bytes());
            stored.extend_from_slice(&put.value);
            invocation.key(self.key(&put.key));
            invocation.arg(stored);
            invocation.arg(
                put.ttl_ms
                    .map(|ttl| ttl.max(1).to_string())
                    .unwrap_or_default(),
            );
        }
        for change in batch.index_removes.iter().chain(&batch.index_adds) {
            invocation.key(self.key(&change.index));
            invocation.arg(member(&change.entry)?);
        }
        invocation.arg(COMMIT_ID_TTL_MS);
        let mut connection = self.connection().await?;
        // A reply lost with its connection leaves the commit's fate unknown:
        // send the very same commit again (same id) on a fresh connection.
        // Applied the first time, it answers `committed` and applies nothing.
        let mut attempt = 0;
        let applied: i64 = loop {
            attempt += 1;
            match invocation.invoke_async(&mut connection).await {
                Ok(applied) => break applied,
                Err(error) if attempt < COMMIT_SENDS && reply_lost(&error) => {
                    tracing::warn!(%error, %commit_id, "a commit's reply was lost; sending it again");
                    connection = self.connection().await?;
                }
                Err(error) => return Err(unavailable(&error)),
            }
        };
        if applied != 1 {
            return Ok(CommitOutcome::Conflict);
        }
        if self.wait_replicas > 0 {
            // The pipeline's keyed command routes it to the partition's
            // master, where WAIT counts the replicas that hold its writes.
            let (_, acknowledged): (i64, i64) = redis::pipe()
                .cmd("EXISTS")
                .arg(format!("{tag}:commit:{commit_id}"))
                .cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.wait_timeout_ms)
                .query_async(&mut connection)
                .await
                .map_err(|error| unavailable(&error))?;
            if acknowledged < i64::from(self.wait_replicas) {
                return Err(CacheError(format!(
                    "redis: {acknowledged} of {} replicas acknowledged the commit in time",
                    self.wait_replicas
                )));
            }
        }
        Ok(CommitOutcome::Committed)
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

    /// Whether the node holding the store's first partition answers: an
    /// `EXISTS` routed like every command of that partition.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _exists: i64 = self
            .query(redis::cmd("EXISTS").arg(self.key(signoff_core::keys::PARTITIONS_KEY)))
            .await?;
        Ok(())
    }

    /// What the deployment promises about keeping acknowledged writes (on a
    /// cluster, as the node that answers reports it).
    pub async fn durability(&self) -> Result<Durability, CacheError> {
        let read = |name: &'static str| {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(name);
            (name, cmd)
        };
        let mut out = Vec::new();
        for (name, cmd) in [
            read("maxmemory-policy"),
            read("appendonly"),
            read("appendfsync"),
        ] {
            let pairs: Vec<String> = self.query(&cmd).await?;
            out.push(
                pairs.get(1).cloned().ok_or_else(|| {
                    CacheError(format!("redis: CONFIG GET {name} answered nothing"))
                })?,
            );
        }
        let [maxmemory_policy, appendonly, appendfsync]: [String; 3] = out
            .try_into()
            .map_err(|_| CacheError("redis: CONFIG GET answered badly".to_owned()))?;
        Ok(Durability {
            maxmemory_policy,
            appendonly,
            appendfsync,
        })
    }
}

/// The CRC16 (XMODEM) of Redis Cluster's key slots, a byte at a time.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

/// The slots of Redis Cluster.
const SLOTS: u32 = 16_384;

/// The hash tag of each of `partitions` partitions: `{prefix:p<N>.<salt>}`,
/// the smallest salt that puts partition N in the N-th of `partitions`
/// equal runs of slots. Hashing `p<N>` alone can put most partitions on one
/// master (for the prefix `signoff:`, 10 of 16 on the first of three); evenly
/// spaced slots spread them over masters that split the slots evenly, as
/// `redis-cli --cluster create` does. The same for every host of a store.
fn spread_tags(prefix: &str, partitions: u16) -> Vec<String> {
    let separator = if prefix.ends_with(':') { "" } else { ":" };
    let count = u32::from(partitions.max(1));
    (0..count)
        .map(|partition| {
            let low = partition * SLOTS / count;
            let high = (partition + 1) * SLOTS / count;
            let mut salt: u32 = 0;
            loop {
                let tag = format!("{prefix}{separator}p{partition}.{salt}");
                let slot = u32::from(crc16(tag.as_bytes())) % SLOTS;
                if (low..high).contains(&slot) || salt == u32::MAX {
                    return format!("{{{tag}}}");
                }
                salt += 1;
            }
        })
        .collect()
}

/// A random version in 1..2^63: unique for a key with overwhelming
/// likelihood, and never handed out again by a Redis that lost writes.
fn fresh_version() -> u64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    (high >> 1).max(1)
}

/// A stored string as an entry: 8 bytes of version, then the value.
fn stored_entry(key: &str, raw: Vec<u8>) -> Result<Entry, CacheError> {
    let version = raw
        .get(..8)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| CacheError(format!("redis: key `{key}` holds no version")))?;
    let mut value = raw;
    value.drain(..8);
    Ok(Entry { value, version })
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

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let error = RedisCache::open(
            "redis://:hunter2-secret@127.0.0.1:notaport",
            "p",
            RedisOptions::default(),
        )
        .expect_err("an invalid url");
        let text = error.to_string();
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(text.contains("***"), "{text}");
        // Refused or not, nothing it shows holds the password.
        let shown = match RedisCache::open(
            "rediss+cluster://:pw-secret@a:x,b:y",
            "p",
            RedisOptions::default(),
        ) {
            Err(error) => error.to_string(),
            Ok(cache) => format!("{cache:?}"),
        };
        assert!(!shown.contains("pw-secret"), "{shown}");
    }

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
    fn partition_tags_fall_in_evenly_spaced_slots() {
        // The slot of a known key, as `CLUSTER KEYSLOT` gives it.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        for partitions in [1_u16, 3, 16, 1024] {
            let tags = spread_tags("signoff:", partitions);
            assert_eq!(tags.len(), usize::from(partitions));
            for (partition, tag) in tags.iter().enumerate() {
                let inner = tag.trim_start_matches('{').trim_end_matches('}');
                assert!(
                    inner.starts_with(&format!("signoff:p{partition}.")),
                    "{tag}"
                );
                let slot = u32::from(crc16(inner.as_bytes())) % SLOTS;
                let partition = u32::try_from(partition).unwrap();
                let count = u32::from(partitions);
                assert!(slot >= partition * SLOTS / count, "{tag}");
                assert!(slot < (partition + 1) * SLOTS / count, "{tag}");
            }
        }
        assert!(spread_tags("name", 2)[1].starts_with("{name:p1."));
    }

    #[test]
    fn cluster_urls_are_recognized() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://a:1,b:2"),
            Some(vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()])
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://a:1,b:2"),
            Some(vec!["rediss://a:1".to_owned(), "rediss://b:2".to_owned()])
        );
        assert_eq!(
            cluster_nodes("redis://a:1, redis://b:2"),
            Some(vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()])
        );
    }
}
