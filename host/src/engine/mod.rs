//! The engine: every decision the server makes goes through here.
//!
//! Each call runs one operation of the core's manager in the core's
//! WebAssembly component (`wasm/wit/`, built by `host/build.rs` and embedded
//! in the binary) in wasmtime, in an instance taken from a pool of ready
//! instances (see [`runtime`] for the pool and what reuse means for
//! isolation). The component reaches storage through its `cache` import,
//! which this engine serves from a [`CacheBackend`] (Redis or the embedded
//! in-memory cache), and reads the clock, fresh ids and the rules in force
//! through its `host` import. So the server decides with the same compiled
//! core as every other build, and the host holds no decision logic: it
//! converts values ([`convert`]) and keeps the rules document in force,
//! shared through the cache ([`rules`]).
//!
//! Instances are reused across requests: an instance serves one call at a
//! time, the guest keeps nothing between calls but its heap and the rules it
//! parsed (keyed by their digest), and an instance whose call trapped, ran
//! past its deadline or out of memory, or was abandoned, is dropped rather
//! than reused. Nothing of one request is visible to the next through the
//! API.

mod convert;
mod rules;
mod runtime;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use signoff_core::input::ActionName;
use signoff_core::{
    AllowedActions, ApprovalRequest, Batch, Check, CommitOutcome, Created, Error, EventPage,
    ExpireReport, Page, Preview, Principal, Put, Rules, Simulation, Status, StoredRules, Timestamp,
    Violation,
};

pub use self::rules::RULES_KEY;
pub use self::runtime::{
    ClockFn, IdFn, InstanceStats, Limits, LoadError, MAX_CALLS_PER_INSTANCE, RETIRE_ABOVE_BYTES,
};

use self::rules::RulesInForce;
use self::runtime::generated::exports::signoff::engine::manager::Action;
use self::runtime::{Runtime, State};
use crate::cache::{CacheBackend, Durability, RedisOptions};
use signoff_core::keys::Layout;
use signoff_core::rules_store::read_stored;

/// The engine component as built from this repository: the guest's core
/// module for `wasm32-unknown-unknown`, made a component when loaded.
pub const ENGINE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/signoff_engine.wasm"));

/// [`ENGINE_WASM`], shared.
fn embedded_wasm() -> Arc<[u8]> {
    static EMBEDDED: std::sync::OnceLock<Arc<[u8]>> = std::sync::OnceLock::new();
    Arc::clone(EMBEDDED.get_or_init(|| Arc::from(ENGINE_WASM)))
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Redis URL; `None` for the embedded in-memory cache. A cluster is named
    /// by `redis+cluster://host:port,host:port` or by several comma-separated
    /// `redis://` URLs.
    pub redis_url: Option<String>,
    /// Prefix of every cache key (the Redis hash tag `{prefix}`).
    pub key_prefix: String,
    /// The rules in force at start (unless the cache holds newer ones).
    pub rules: Rules,
    /// How the store is laid out and what it must promise.
    pub storage: StorageOptions,
}

/// The layout of the store and the durability it must promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// The number of partitions (1..=1024), fixed for the life of a store:
    /// a store records it, and the engine refuses to start with another.
    pub partitions: u16,
    /// Start even when Redis may evict keys (and so delete requests).
    pub allow_eviction: bool,
    /// Replicas that must hold each commit before it answers (`WAIT`).
    pub redis_wait_replicas: u32,
    /// How long events are kept (their records' time to live).
    pub event_retention: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            partitions: signoff_core::keys::DEFAULT_PARTITIONS,
            allow_eviction: false,
            redis_wait_replicas: 0,
            event_retention: Duration::from_millis(
                signoff_core::events::limits::DEFAULT_RETENTION_MS,
            ),
        }
    }
}

/// Everything else, with defaults fit for the server.
#[derive(Clone)]
pub struct EngineSettings {
    /// The engine's wasm: a component, or the guest's core module.
    pub wasm: Arc<[u8]>,
    /// Bounds on the guest and on concurrency.
    pub limits: Limits,
    /// How the Redis backend connects.
    pub redis: RedisOptions,
    /// How often the rules are reloaded from the cache.
    pub rules_refresh: Duration,
    /// The clock (the wall clock by default); it also times the memory
    /// cache's TTLs.
    pub clock: ClockFn,
    /// New request ids (random version 4 UUIDs by default).
    pub ids: IdFn,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            wasm: embedded_wasm(),
            limits: Limits::default(),
            redis: RedisOptions::default(),
            rules_refresh: Duration::from_secs(1),
            clock: Arc::new(|| Timestamp::from_millis(chrono::Utc::now().timestamp_millis())),
            ids: Arc::new(uuid::Uuid::new_v4),
        }
    }
}

impl std::fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSettings")
            .field("wasm_bytes", &self.wasm.len())
            .field("limits", &self.limits)
            .field("redis", &self.redis)
            .field("rules_refresh", &self.rules_refresh)
            .finish_non_exhaustive()
    }
}

/// Figures for metrics and alerting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Pending requests.
    pub pending: u64,
    /// Creation time of the oldest pending request.
    pub oldest_pending_created_at: Option<Timestamp>,
    /// Emergency requests whose after-the-fact review is open.
    pub open_reviews: u64,
    /// Of those, the ones past their `dueAt` (counted up to
    /// [`OVERDUE_COUNT_LIMIT`] per partition).
    pub overdue_reviews: u64,
}

/// The most overdue reviews counted in one partition for the metrics: the
/// count reads the oldest entries of the review index, which is bounded
/// work whatever the store holds.
pub const OVERDUE_COUNT_LIMIT: u32 = 1000;

struct Inner {
    runtime: Arc<Runtime>,
    cache: CacheBackend,
    layout: Layout,
    durability: Option<Durability>,
    create_turns: CreateTurns,
    /// The rules in force, and how many times they were set: a reload
    /// adopts what it read only if nobody set the rules since it began, so
    /// it never puts back rules older than a replacement made meanwhile.
    rules: std::sync::RwLock<(Arc<RulesInForce>, u64)>,
    clock: ClockFn,
    ids: IdFn,
    event_retention_ms: u64,
}

/// The engine shared by every HTTP handler.
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

impl Engine {
    /// Starts the engine with the default settings.
    pub async fn start(options: EngineOptions) -> anyhow::Result<Self> {
        Self::start_with(options, EngineSettings::default()).await
    }

    /// Starts the engine: loads the component (compiled once per process
    /// for the same bytes and limits), opens the cache (an
    /// unreachable Redis is not an error here: calls answer `unavailable`
    /// until it answers, see [`Engine::ready`]) and publishes
    /// `options.rules` there when it holds none.
    ///
    /// When the cache already holds *other* rules (replaced since, say, by
    /// `PUT /v1/rules`), the start fails and names both digests: silently
    /// keeping either would undo a decision somebody made. Start with the
    /// rules in force (`GET /v1/rules` exports them). A cache that cannot be
    /// read at start is not checked: the first reload that reads it adopts
    /// what it holds, with a warning.
    pub async fn start_with(
        options: EngineOptions,
        settings: EngineSettings,
    ) -> anyhow::Result<Self> {
        let runtime = Runtime::shared(&settings.wasm, settings.limits)?;
        let layout = Layout::new(u32::from(options.storage.partitions))?;
        let cache = match options.redis_url.as_deref() {
            Some(url) => {
                let redis = RedisOptions {
                    wait_replicas: options.storage.redis_wait_replicas,
                    partitions: layout.partitions(),
                    ..settings.redis
                };
                CacheBackend::redis(url, &options.key_prefix, redis)?
            }
            None => {
                let clock = settings.clock.clone();
                CacheBackend::memory_with_clock(Arc::new(move || clock().as_millis()))
            }
        };
        let durability = check_durability(&cache, options.storage.allow_eviction).await?;
        if let Err(error) = record_partitions(&cache, layout).await {
            match error {
                PartitionsError::Mismatch(_) => return Err(error.into()),
                PartitionsError::Unavailable(reason) => {
                    tracing::warn!(%reason, "cannot check the store's partitions yet");
                }
            }
        }
        if matches!(cache, CacheBackend::Memory(_)) {
            spawn_memory_purger(cache.clone(), MEMORY_PURGE_PERIOD);
        }
        let placeholder = Arc::new(RulesInForce {
            document: Value::Null,
            text: Arc::from(""),
            digest: String::new(),
        });
        let inner = Arc::new(Inner {
            runtime,
            cache,
            layout,
            durability,
            create_turns: CreateTurns::new(),
            rules: std::sync::RwLock::new((placeholder, 0)),
            clock: settings.clock,
            ids: settings.ids,
            event_retention_ms: u64::try_from(options.storage.event_retention.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        });
        let initial = serde_json::to_string(&options.rules)?;
        let initial = inner
            .validate_rules(&initial)
            .await?
            .map_err(|violations| {
                anyhow::anyhow!("the initial rules are invalid: {violations:?}")
            })?;
        inner.set_rules(initial);
        inner.check_stored_rules().await?;
        if matches!(inner.cache, CacheBackend::Redis(_)) {
            spawn_rules_refresher(Arc::downgrade(&inner), settings.rules_refresh);
        }
        Ok(Self { inner })
    }

    /// Validates a rules document in the engine without putting it in
    /// force: its digest, or every problem.
    pub async fn validate_rules(
        &self,
        document: &Value,
    ) -> Result<Result<String, Vec<Violation>>, Error> {
        let validated = self.inner.validate_rules(&json_text(document)).await?;
        Ok(validated.map(|rules| rules.digest))
    }

    /// The cache behind the engine.
    pub fn cache(&self) -> &CacheBackend {
        &self.inner.cache
    }

    /// The layout of the store (its partitions).
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// What the Redis deployment promised at start-up (`None`: the
    /// in-memory cache, or Redis could not be asked then).
    pub fn durability(&self) -> Option<&Durability> {
        self.inner.durability.as_ref()
    }

    /// The rules document in force and its digest.
    pub async fn rules(&self) -> (Value, String) {
        let rules = self.inner.rules_in_force();
        (rules.document.clone(), rules.digest.clone())
    }

    /// Replaces the rules for `principal` (`admin` only) when `if_match`
    /// (when given) holds for the digest in force, and puts them in force;
    /// returns the new digest. The core decides, in the engine, against the
    /// digest stored in the cache, so the precondition holds across servers.
    pub async fn replace_rules(
        &self,
        document: &Value,
        principal: &Principal,
        if_match: Option<&[String]>,
    ) -> Result<String, Error> {
        let document = json_text(document);
        let principal = convert::to_json(principal)?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_replace_rules(&mut session.store, &document, &principal, if_match)
            .await;
        let info = self.inner.answer(session, answer)?;
        let rules = RulesInForce::from_info(info.digest, info.document)?;
        let digest = rules.digest.clone();
        self.inner.set_rules(rules);
        Ok(digest)
    }

    /// Validates a change and determines its level; stores nothing.
    pub async fn preview(&self, change: &Value) -> Result<Preview, Error> {
        let change = json_text(change);
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_preview(&mut session.store, &change)
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// Files a change for `principal`.
    pub async fn create(
        &self,
        change: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Created, Error> {
        let change = json_text(change);
        // One requester's creates all update its rate-limit bucket: taken
        // in turns on this server, they do not fight over its version.
        let _turn = match self.inner.rules_limit_rate() {
            true => Some(self.inner.create_turns.take(&principal.id).await),
            false => None,
        };
        let principal = convert::to_json(principal)?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_create(&mut session.store, &change, &principal, idempotency_key)
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// The request with `id`, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, Error> {
        self.get_as(id, None).await
    }

    /// The request with `id` as `viewer` may see it: `None` when unknown,
    /// or when the rules' `visibility` hides it from the viewer.
    pub async fn get_as(
        &self,
        id: &str,
        viewer: Option<&Principal>,
    ) -> Result<Option<ApprovalRequest>, Error> {
        let viewer = viewer.map(convert::to_json).transpose()?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_get(&mut session.store, id, viewer.as_ref())
            .await;
        self.inner
            .answer(session, answer)?
            .map(|request| convert::answer(&request))
            .transpose()
    }

    /// One page of requests as the JSON body `{ items, nextCursor? }`,
    /// ready to be sent: the items are the stored bytes, passed through;
    /// `query` is `{ status?, policyType?, limit?, cursor?, view? }` (`limit`
    /// may be a decimal string, as query strings carry it).
    pub async fn list_json(&self, query: &Value) -> Result<Vec<u8>, Error> {
        let query = json_text(query);
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_list(&mut session.store, &query)
            .await;
        self.inner.answer(session, answer)
    }

    /// One page of requests, typed (full items: `view` must be absent or
    /// `full`); see [`Engine::list_json`].
    pub async fn list(&self, query: &Value) -> Result<Page, Error> {
        let body = self.list_json(query).await?;
        serde_json::from_slice(&body)
            .map_err(|error| Error::Internal(format!("the engine answered a bad page: {error}")))
    }

    /// Approves with the body `{ comment? }` (absent body allowed).
    pub async fn approve(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(ActionName::Approve, id, principal, body).await
    }

    /// Rejects with the body `{ reason }`.
    pub async fn reject(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(ActionName::Reject, id, principal, body).await
    }

    /// Cancels (requester only); the body must be absent or `{}`.
    pub async fn cancel(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(ActionName::Cancel, id, principal, body).await
    }

    /// Comments with the body `{ text }`.
    pub async fn comment(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(ActionName::Comment, id, principal, body).await
    }

    /// Replaces the change of the pending request `id` (its requester only),
    /// deciding its level again under the rules in force.
    pub async fn amend(
        &self,
        id: &str,
        principal: &Principal,
        change: &Value,
    ) -> Result<ApprovalRequest, Error> {
        let change = json_text(change);
        let principal = convert::to_json(principal)?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_amend(&mut session.store, id, &principal, &change)
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// Applies the action `name` with its body; the guest judges the body
    /// before the stored request.
    pub async fn act(
        &self,
        name: ActionName,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        let principal = convert::to_json(principal)?;
        let body = body.map(json_text);
        let action = match name {
            ActionName::Approve => Action::Approve,
            ActionName::Reject => Action::Reject,
            ActionName::Cancel => Action::Cancel,
            ActionName::Comment => Action::Comment,
            ActionName::Review => Action::Review,
        };
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_act(&mut session.store, action, id, &principal, body.as_ref())
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// One page of events after the event id `after`, at most `limit`, read
    /// on behalf of `viewer`.
    pub async fn events(
        &self,
        after: Option<&str>,
        limit: u32,
        viewer: Option<&Principal>,
    ) -> Result<EventPage, Error> {
        let viewer = viewer.map(convert::to_json).transpose()?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_events(&mut session.store, after, limit, viewer.as_ref())
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// The id of the newest event.
    pub async fn latest_event(&self) -> Result<Option<String>, Error> {
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_latest_event(&mut session.store)
            .await;
        self.inner.answer(session, answer)
    }

    /// What `principal` may do now to the request `id` (`not_found` when
    /// unknown).
    pub async fn allowed_actions(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Result<AllowedActions, Error> {
        let principal = convert::to_json(principal)?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_allowed_actions(&mut session.store, id, &principal)
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// What the rules `draft` would decide for every pending request and up
    /// to `limit` of the most recently decided ones, with warnings judged
    /// against `principals` (none without them). Stores nothing.
    pub async fn simulate_rules(
        &self,
        draft: &Value,
        limit: u32,
        principals: Option<&[Principal]>,
    ) -> Result<Simulation, Error> {
        let draft = json_text(draft);
        let principals = convert::to_json(&principals)?;
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_simulate_rules(&mut session.store, &draft, limit, &principals)
            .await;
        convert::answer(&self.inner.answer(session, answer)?)
    }

    /// The validation items of a principal document (empty when valid), as
    /// the engine judges every principal it is given.
    pub async fn validate_principal(&self, principal: &Value) -> Result<Vec<Violation>, Error> {
        let principal = json_text(principal);
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_validate_principal(&mut session.store, &principal)
            .await;
        convert::answer(&self.inner.answer(session, answer.map(Ok::<_, String>))?)
    }

    /// Expires up to `limit` due requests.
    pub async fn expire_due(&self, limit: u32) -> Result<ExpireReport, Error> {
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_expire_due(&mut session.store, limit)
            .await;
        let report: ExpireReport = convert::answer(&self.inner.answer(session, answer)?)?;
        if report.undecodable > 0 {
            tracing::error!(
                undecodable = report.undecodable,
                "the sweep stepped over stored requests it cannot decode"
            );
        }
        if report.stale_removed > 0 {
            tracing::info!(
                removed = report.stale_removed,
                "the sweep removed stale due-index entries"
            );
        }
        if report.events_trimmed > 0 {
            tracing::debug!(
                trimmed = report.events_trimmed,
                "the sweep removed index entries of events past their retention"
            );
        }
        Ok(report)
    }

    /// Pending count, oldest pending age, and the open and overdue reviews
    /// of emergencies.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let (layout, cache) = (&self.inner.layout, &self.inner.cache);
        let horizon = signoff_core::listing::review_sort_key((self.inner.clock)());
        let (mut pending, mut open_reviews, mut overdue_reviews) = (0, 0, 0);
        for partition in layout.all() {
            pending += cache
                .index_len(&layout.status_index(partition, Status::Pending))
                .await?;
            let reviews = layout.review_index(partition);
            open_reviews += cache.index_len(&reviews).await?;
            let oldest = cache.range(&reviews, None, OVERDUE_COUNT_LIMIT).await?;
            overdue_reviews += oldest
                .iter()
                .take_while(|entry| entry.sort_key <= horizon)
                .count() as u64;
        }
        let mut session = self.inner.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_oldest_pending(&mut session.store)
            .await;
        Ok(Stats {
            pending,
            oldest_pending_created_at: self
                .inner
                .answer(session, answer)?
                .map(Timestamp::from_millis),
            open_reviews,
            overdue_reviews,
        })
    }

    /// Instantiates the component and drops the instance without calling
    /// it, bypassing the pool (an idle instance, if any, is retired to make
    /// room): what a request pays before its call when no idle instance is
    /// ready (for benchmarks, and to check that a slot can be had).
    pub async fn instantiate(&self) -> Result<(), Error> {
        self.inner.runtime.instantiate_and_drop().await
    }

    /// What the pool of instances has done (shared by the engines started
    /// with the same wasm and limits in this process): for metrics, and for
    /// tests that check reuse.
    pub fn instance_stats(&self) -> InstanceStats {
        self.inner.runtime.stats()
    }

    /// Whether the cache answers.
    pub async fn ready(&self) -> bool {
        self.inner.cache.ping().await.is_ok()
    }
}

impl Inner {
    /// Whether the rules in force limit how often a requester creates.
    fn rules_limit_rate(&self) -> bool {
        self.rules_in_force()
            .document
            .get("rateLimit")
            .is_some_and(|limit| !limit.is_null())
    }

    fn rules_in_force(&self) -> Arc<RulesInForce> {
        self.rules_and_generation().0
    }

    fn rules_and_generation(&self) -> (Arc<RulesInForce>, u64) {
        let slot = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (Arc::clone(&slot.0), slot.1)
    }

    fn set_rules(&self, rules: RulesInForce) {
        let mut slot = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.0 = Arc::new(rules);
        slot.1 += 1;
    }

    /// Sets `rules` unless the rules were set since `generation` was read;
    /// answers whether it did.
    fn set_rules_if_unchanged(&self, generation: u64, rules: RulesInForce) -> bool {
        let mut slot = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.1 != generation {
            return false;
        }
        slot.0 = Arc::new(rules);
        slot.1 += 1;
        true
    }

    /// At start: publishes our rules when the cache holds none, and refuses
    /// to start when it holds others (see [`Engine::start_with`]).
    async fn check_stored_rules(&self) -> anyhow::Result<()> {
        let record = match read_stored(&self.cache).await {
            Ok(Some(record)) => record.rules,
            Ok(None) => {
                if let Err(error) = self.sync_rules().await {
                    tracing::warn!(%error, "cannot publish the rules to the cache yet");
                }
                return Ok(());
            }
            Err(error) if error.code() == signoff_core::ErrorCode::Unavailable => {
                tracing::warn!(%error, "cannot read the rules from the cache yet");
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(%error, "the rules stored in the cache do not decode; keeping ours");
                return Ok(());
            }
        };
        let ours = self.rules_in_force().digest.clone();
        if record.digest != ours {
            anyhow::bail!(
                "the store already holds other rules (digest {stored}) than the rules given at \
                 start (digest {ours}); refusing to start rather than drop either: start with \
                 the rules in force (GET /v1/rules returns them), or put new rules in force \
                 with PUT /v1/rules",
                stored = record.digest
            );
        }
        Ok(())
    }

    async fn session(&self) -> Result<runtime::Session<'_>, Error> {
        let state = State {
            cache: self.cache.clone(),
            layout: self.layout,
            rules: self.rules_in_force(),
            clock: Arc::clone(&self.clock),
            ids: Arc::clone(&self.ids),
            event_retention_ms: self.event_retention_ms,
        };
        self.runtime.session(state).await
    }

    /// The answer of a call in `session`'s instance, which goes back to the
    /// pool when the call returned and is dropped when it did not.
    fn answer<T>(
        &self,
        session: runtime::Session<'_>,
        answer: wasmtime::Result<Result<T, String>>,
    ) -> Result<T, Error> {
        match answer {
            Ok(Ok(value)) => {
                session.release();
                Ok(value)
            }
            Ok(Err(error)) => {
                session.release();
                Err(convert::error(&error))
            }
            Err(error) => {
                drop(session);
                Err(self.runtime.failure(&error))
            }
        }
    }

    /// Validates a rules document in the guest.
    async fn validate_rules(
        &self,
        document: &str,
    ) -> Result<Result<RulesInForce, Vec<Violation>>, Error> {
        let mut session = self.session().await?;
        let answer = session
            .engine
            .signoff_engine_manager()
            .call_validate_rules(&mut session.store, &document.to_owned())
            .await;
        let answer = match answer {
            Ok(answer) => {
                session.release();
                answer
            }
            Err(error) => {
                drop(session);
                return Err(self.runtime.failure(&error));
            }
        };
        Ok(match answer {
            Ok(info) => Ok(RulesInForce::from_info(info.digest, info.document)?),
            Err(violations) => Err(convert::answer(&violations)?),
        })
    }

    /// Adopts the rules the cache holds when they differ from ours, or
    /// publishes ours when it holds none.
    async fn sync_rules(&self) -> Result<(), Error> {
        // Read before the cache: a replacement made from here on is newer
        // than what this reload reads, and wins.
        let (ours, generation) = self.rules_and_generation();
        let stored = match read_stored(&self.cache).await {
            Err(error) if error.code() != signoff_core::ErrorCode::Unavailable => {
                tracing::warn!(%error, "the rules stored in the cache do not decode; keeping ours");
                return Ok(());
            }
            stored => stored?,
        };
        match stored.map(|record| record.rules) {
            Some(record) => {
                if record.digest == ours.digest {
                    return Ok(());
                }
                match self.validate_rules(&json_text(&record.document)).await? {
                    Ok(rules) => {
                        let digest = rules.digest.clone();
                        if self.set_rules_if_unchanged(generation, rules) {
                            tracing::info!(%digest, "adopted the rules from the cache");
                        }
                    }
                    Err(violations) => tracing::warn!(
                        problems = violations.len(),
                        "the rules stored in the cache are invalid; keeping ours"
                    ),
                }
            }
            None => {
                let rules = self.rules_in_force();
                let record = StoredRules {
                    digest: rules.digest.clone(),
                    document: rules.document.clone(),
                };
                let value = serde_json::to_vec(&record)
                    .map_err(|error| Error::Internal(error.to_string()))?;
                let batch = Batch {
                    checks: vec![Check {
                        key: RULES_KEY.to_owned(),
                        version: None,
                    }],
                    puts: vec![Put {
                        key: RULES_KEY.to_owned(),
                        value,
                        ttl_ms: None,
                    }],
                    ..Batch::default()
                };
                // A conflict means another server published first; the next
                // sync adopts its rules.
                self.cache.commit(batch).await?;
            }
        }
        Ok(())
    }
}

/// Reloads the rules every `period` until the engine is dropped.
fn spawn_rules_refresher(inner: Weak<Inner>, period: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                break;
            };
            if let Err(error) = inner.sync_rules().await {
                tracing::debug!(%error, "cannot reload the rules from the cache");
            }
        }
    });
}

/// How often the in-memory cache drops expired values.
const MEMORY_PURGE_PERIOD: Duration = Duration::from_secs(10);

/// Drops the memory cache's expired values every `period`, until the last
/// handle to the cache is gone.
fn spawn_memory_purger(cache: CacheBackend, period: Duration) {
    let CacheBackend::Memory(memory) = cache else {
        return;
    };
    let weak = memory.downgrade();
    drop(memory);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(memory) = weak.upgrade() else {
                break;
            };
            let purged = memory.purge_expired();
            if purged > 0 {
                tracing::debug!(purged, "dropped expired values from the memory cache");
            }
        }
    });
}

/// Why the store's recorded partitions do not allow a start.
#[derive(Debug, thiserror::Error)]
enum PartitionsError {
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Records the number of partitions in a new store, or checks that the
/// store was made with the same number.
async fn record_partitions(cache: &CacheBackend, layout: Layout) -> Result<(), PartitionsError> {
    let unavailable = |error: signoff_core::CacheError| PartitionsError::Unavailable(error.0);
    let key = signoff_core::keys::PARTITIONS_KEY;
    let wanted = layout.partitions();
    loop {
        match cache.get(key).await.map_err(unavailable)? {
            Some(entry) => {
                let recorded = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|text| text.parse::<u16>().ok());
                return match recorded {
                    Some(recorded) if recorded == wanted => Ok(()),
                    Some(recorded) => Err(PartitionsError::Mismatch(format!(
                        "the store was made with {recorded} partitions, not {wanted}: \
                         the number of partitions is fixed for the life of a store"
                    ))),
                    None => Err(PartitionsError::Mismatch(format!(
                        "the store's record of its partitions (`{key}`) is unreadable"
                    ))),
                };
            }
            None => {
                let batch = Batch {
                    checks: vec![Check {
                        key: key.to_owned(),
                        version: None,
                    }],
                    puts: vec![Put {
                        key: key.to_owned(),
                        value: wanted.to_string().into_bytes(),
                        ttl_ms: None,
                    }],
                    ..Batch::default()
                };
                // A conflict: another server recorded it first; read it.
                if cache.commit(batch).await.map_err(unavailable)? == CommitOutcome::Committed {
                    return Ok(());
                }
            }
        }
    }
}

/// Asks Redis what it promises, logs it, and refuses a Redis that may evict
/// keys unless `allow_eviction`. A Redis that does not answer yet is logged
/// and allowed (calls answer `unavailable` until it does).
async fn check_durability(
    cache: &CacheBackend,
    allow_eviction: bool,
) -> anyhow::Result<Option<Durability>> {
    let durability = match cache.durability().await {
        Ok(Some(durability)) => durability,
        Ok(None) => return Ok(None),
        Err(error) => {
            tracing::warn!(%error, "cannot read the durability settings of Redis");
            return Ok(None);
        }
    };
    tracing::info!(
        maxmemory_policy = %durability.maxmemory_policy,
        appendonly = %durability.appendonly,
        appendfsync = %durability.appendfsync,
        "redis durability"
    );
    if durability.may_evict() {
        if !allow_eviction {
            anyhow::bail!(
                "redis has maxmemory-policy `{}`: it may evict keys and so delete requests; \
                 set it to `noeviction`, or start with --allow-eviction",
                durability.maxmemory_policy
            );
        }
        tracing::warn!(
            maxmemory_policy = %durability.maxmemory_policy,
            "redis may evict keys (allowed by --allow-eviction)"
        );
    }
    Ok(Some(durability))
}

/// Turns for the creates of one requester on this server.
///
/// Every create of a requester takes a token from its one rate-limit bucket
/// with a compare-and-swap; concurrent creates of one requester (a CI bot
/// filing in parallel) would make all but one retry, round after round.
/// Taking turns makes each create's commit go in at its first attempt on
/// this server; requesters spread over a fixed set of locks, so the table
/// stays small, and two requesters that share a lock only wait for each
/// other's short commit.
struct CreateTurns {
    locks: Vec<tokio::sync::Mutex<()>>,
}

/// The number of locks of [`CreateTurns`].
const CREATE_TURN_LOCKS: usize = 256;

impl CreateTurns {
    fn new() -> Self {
        Self {
            locks: (0..CREATE_TURN_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    async fn take(&self, principal: &str) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        principal.hash(&mut hasher);
        let slot = usize::try_from(hasher.finish() % CREATE_TURN_LOCKS as u64).unwrap_or(0);
        match self.locks.get(slot) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}
