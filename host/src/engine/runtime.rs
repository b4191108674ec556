//! wasmtime: the component, its imports, and a pool of ready instances.
//!
//! The component is compiled once; [`Runtime::session`] hands each request an
//! instance, instantiated from an `InstancePre` in a pooling allocator whose
//! slots bound how many requests run at once and how much memory each
//! instance may use. An instance is reused: after a call that returned (an
//! answer or an error of the core), it goes back to an idle list and serves a
//! later request, so requests skip instantiation, find the guest's heap
//! already grown and the rules already parsed. An epoch ticker interrupts a
//! guest that runs past its deadline, so a runaway guest cannot hang a
//! request.
//!
//! # Isolation
//!
//! Reuse gives up the fresh instance per request. What stays:
//!
//! - an instance runs one call at a time, and each call's imports reach only
//!   that request's state (cache, clock, ids, rules), attached for the call
//!   and detached when the instance goes back to the pool;
//! - the guest keeps nothing between calls but its caches: the heap its
//!   allocator already holds, and the rules it parsed, keyed by their digest
//!   (a call with other rules in force parses those). No request data is
//!   kept: every answer is computed from the call's arguments and what the
//!   cache import returns, so nothing of one request is visible to the next
//!   through the API. Freed heap memory of an earlier call is not zeroed,
//!   but the guest (safe Rust) never reads memory it has not written;
//! - an instance whose call did not return (a trap, such as running out of
//!   memory or a panic in the guest, the deadline's interruption, or a
//!   request abandoned mid-call) is dropped, never reused: its state may be
//!   inconsistent. Only that request fails;
//! - an instance is retired after [`MAX_CALLS_PER_INSTANCE`] calls, or when
//!   its memory grew past [`RETIRE_ABOVE_BYTES`], so one huge request does
//!   not pin a large heap in the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use signoff_core::{Error, Timestamp};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};

use super::rules::RulesInForce;
use crate::cache::CacheBackend;

/// The bindings of `wasm/wit`, kept private: the rest of the host sees core
/// types only (see `convert`).
pub(super) mod generated {
    wasmtime::component::bindgen!({
        path: "../wasm/wit",
        world: "engine",
        imports: { default: async },
        exports: { default: async },
    });
}

use generated::signoff::engine::{cache, host};

/// The clock the engine decides with.
pub type ClockFn = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The source of new request ids.
pub type IdFn = Arc<dyn Fn() -> Uuid + Send + Sync>;

/// Bounds on the guest and on concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests running in the guest at once (pool slots); more wait.
    pub max_instances: u32,
    /// The most linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// How long one request may run, host calls included, before it is
    /// interrupted and answers `unavailable`.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_instances: 64,
            max_memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
        }
    }
}

/// How much of a slot's memory is reset in place (memset) rather than
/// returned to the kernel between requests, so a new instance does not
/// page-fault on what its predecessor touched.
const KEEP_RESIDENT: usize = 4 << 20;

/// How often the epoch ticks; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How many calls one instance serves before it is retired (dropped instead
/// of going back to the pool).
pub const MAX_CALLS_PER_INSTANCE: u64 = 10_000;

/// An instance whose linear memories grew past this many bytes is retired
/// after its call, so one huge request does not pin its heap in the pool.
/// An ordinary request leaves the guest at about 1.3 MiB.
pub const RETIRE_ABOVE_BYTES: usize = 8 << 20;

/// What one request's imports reach.
pub(super) struct State {
    pub cache: CacheBackend,
    pub layout: signoff_core::keys::Layout,
    pub rules: Arc<RulesInForce>,
    pub clock: ClockFn,
    pub ids: IdFn,
    pub event_retention_ms: u64,
}

/// What the import of an instance sitting in the pool answers; the guest
/// only runs during a call, when a request's [`State`] is attached.
const DETACHED: &str = "no request is attached to this instance";

/// The data of one instance's store: the state of the request it serves (none
/// while it waits in the pool), and how large its memories grew.
pub(super) struct StoreData {
    request: Option<State>,
    memory: MemoryWatch,
}

/// Counts the bytes of an instance's linear memories as they grow; the pool
/// retires instances past [`RETIRE_ABOVE_BYTES`]. It never refuses a growth:
/// the pooling allocator enforces [`Limits::max_memory_bytes`].
#[derive(Default)]
struct MemoryWatch {
    bytes: usize,
}

impl ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.bytes = self.bytes.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl cache::Host for StoreData {
    async fn get(&mut self, key: String) -> Result<Option<cache::Entry>, String> {
        let state = self.request.as_ref().ok_or(DETACHED)?;
        let entry = state.cache.get(&key).await.map_err(|error| error.0)?;
        Ok(entry.map(|entry| cache::Entry {
            value: entry.value,
            version: entry.version,
        }))
    }

    async fn get_many(
        &mut self,
        keys: Vec<String>,
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<cache::Entry>>, String> {
        let state = self.request.as_ref().ok_or(DETACHED)?;
        let entries = state
            .cache
            .get_many(&keys, max_bytes)
            .await
            .map_err(|error| error.0)?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                entry.map(|entry| cache::Entry {
                    value: entry.value,
                    version: entry.version,
                })
            })
            .collect())
    }

    async fn partitions(&mut self) -> u16 {
        self.request
            .as_ref()
            .map_or(signoff_core::keys::DEFAULT_PARTITIONS, |state| {
                state.layout.partitions()
            })
    }

    async fn commit(&mut self, batch: cache::Batch) -> Result<cache::CommitOutcome, String> {
        let state = self.request.as_ref().ok_or(DETACHED)?;
        let outcome = state
            .cache
            .commit(super::convert::batch(batch))
            .await
            .map_err(|error| error.0)?;
        Ok(match outcome {
            signoff_core::CommitOutcome::Committed => cache::CommitOutcome::Committed,
            signoff_core::CommitOutcome::Conflict => cache::CommitOutcome::Conflict,
        })
    }

    async fn range(
        &mut self,
        index: String,
        after: Option<cache::IndexEntry>,
        limit: u32,
    ) -> Result<Vec<cache::IndexEntry>, String> {
        let state = self.request.as_ref().ok_or(DETACHED)?;
        let after = after.map(super::convert::index_entry);
        let entries = state
            .cache
            .range(&index, after.as_ref(), limit)
            .await
            .map_err(|error| error.0)?;
        Ok(entries
            .into_iter()
            .map(|entry| cache::IndexEntry {
                sort_key: entry.sort_key,
                member: entry.member,
            })
            .collect())
    }
}

impl host::Host for StoreData {
    async fn now_ms(&mut self) -> i64 {
        self.request
            .as_ref()
            .map_or(0, |state| (state.clock)().as_millis())
    }

    async fn event_retention_ms(&mut self) -> u64 {
        self.request.as_ref().map_or(
            signoff_core::events::limits::DEFAULT_RETENTION_MS,
            |state| state.event_retention_ms,
        )
    }

    async fn new_id(&mut self) -> (u64, u64) {
        self.request
            .as_ref()
            .map_or((0, 0), |state| (state.ids)().as_u64_pair())
    }

    async fn rules(&mut self, known_digest: Option<String>) -> host::RulesInForce {
        let Some(state) = self.request.as_ref() else {
            return host::RulesInForce {
                digest: String::new(),
                document: Some(String::new()),
            };
        };
        let known = known_digest.is_some_and(|digest| digest == state.rules.digest);
        host::RulesInForce {
            digest: state.rules.digest.clone(),
            document: (!known).then(|| state.rules.text.to_string()),
        }
    }
}

/// Why the component could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the engine component: {0}")]
pub struct LoadError(String);

impl From<wasmtime::Error> for LoadError {
    fn from(error: wasmtime::Error) -> Self {
        Self(format!("{error:#}"))
    }
}

impl From<anyhow::Error> for LoadError {
    fn from(error: anyhow::Error) -> Self {
        Self(format!("{error:#}"))
    }
}

impl From<std::io::Error> for LoadError {
    fn from(error: std::io::Error) -> Self {
        Self(format!("cannot start the epoch ticker: {error}"))
    }
}

/// The compiled component, what instantiates it, and the idle instances.
pub(super) struct Runtime {
    pre: generated::EnginePre<StoreData>,
    permits: Semaphore,
    deadline_ticks: u64,
    deadline: Duration,
    /// Instances ready for a call. With the instances in use, never more
    /// than the pool's slots: a session takes an idle one before it
    /// instantiates, while it holds one of `permits`.
    idle: Mutex<Vec<Ready>>,
    counts: Counts,
}

/// An instance between calls.
struct Ready {
    store: Store<StoreData>,
    engine: generated::Engine,
    /// Calls it completed.
    calls: u64,
}

#[derive(Default)]
struct Counts {
    instantiated: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
    retired: AtomicU64,
}

/// What the instance pool of a runtime has done since it was made; engines
/// started with the same wasm and limits share one runtime, so they share
/// these counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstanceStats {
    /// Instances made from the compiled component.
    pub instantiated: u64,
    /// Requests served by an instance that served an earlier one.
    pub reused: u64,
    /// Instances dropped because their call did not return: a trap, the
    /// deadline, or a request abandoned mid-call.
    pub discarded: u64,
    /// Instances dropped after a call that returned, for their number of
    /// calls or the size of their memory.
    pub retired: u64,
    /// Instances waiting in the pool now.
    pub idle: usize,
}

/// One instance, serving one request. Dropped, it drops the instance (a
/// call that did not return leaves it unfit for another);
/// [`Session::release`] puts it back in the pool after a call that
/// returned.
pub(super) struct Session<'a> {
    pub store: Store<StoreData>,
    pub engine: generated::Engine,
    calls: u64,
    runtime: &'a Runtime,
    discard: Discard<'a>,
    _permit: SemaphorePermit<'a>,
}

/// Counts an instance dropped without [`Session::release`].
struct Discard<'a> {
    counts: &'a Counts,
    armed: bool,
}

impl Drop for Discard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.counts.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Session<'_> {
    /// Puts the instance back in the pool, or retires it: for use after a
    /// call into the guest that returned, whatever it answered.
    pub fn release(self) {
        let Session {
            mut store,
            engine,
            calls,
            runtime,
            mut discard,
            _permit,
        } = self;
        discard.armed = false;
        store.data_mut().request = None;
        let calls = calls.saturating_add(1);
        if calls >= MAX_CALLS_PER_INSTANCE || store.data().memory.bytes > RETIRE_ABOVE_BYTES {
            runtime.counts.retired.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut idle = runtime.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.push(Ready {
            store,
            engine,
            calls,
        });
    }
}

/// A component as wasmtime takes it: `bytes` as they are when they already
/// are a component, else a core module (the `wasm32-unknown-unknown` build)
/// wrapped by `wit-component` with the WIT embedded in it.
fn componentize(bytes: &[u8]) -> anyhow::Result<std::borrow::Cow<'_, [u8]>> {
    const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    if bytes.get(4..8) == Some(&COMPONENT_LAYER[..]) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let encoded = wit_component::ComponentEncoder::default()
        .module(bytes)?
        .validate(true)
        .encode()?;
    Ok(std::borrow::Cow::Owned(encoded))
}

/// Components compiled in this process, by bytes and limits.
type Compiled = Vec<(Arc<[u8]>, Limits, Arc<Runtime>)>;

static COMPILED: std::sync::Mutex<Compiled> = std::sync::Mutex::new(Vec::new());

impl Runtime {
    /// The runtime for `wasm` under `limits`, compiled once per process:
    /// engines started with the same bytes and limits share the compiled
    /// component, its instance pool and its concurrency bound.
    pub fn shared(wasm: &Arc<[u8]>, limits: Limits) -> Result<Arc<Self>, LoadError> {
        let mut compiled = COMPILED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = compiled.iter().find(|(bytes, compiled_limits, _)| {
            *compiled_limits == limits && (Arc::ptr_eq(bytes, wasm) || **bytes == **wasm)
        });
        if let Some((_, _, runtime)) = found {
            return Ok(Arc::clone(runtime));
        }
        let runtime = Arc::new(Self::new(wasm, limits)?);
        compiled.push((Arc::clone(wasm), limits, Arc::clone(&runtime)));
        Ok(runtime)
    }

    /// Compiles `wasm` (a component, or the guest's core module) under `limits`.
    pub fn new(wasm: &[u8], limits: Limits) -> Result<Self, LoadError> {
        let slots = limits.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A wit-component component holds a few core instances and tables
        // (the guest, its adapter shims) and one memory.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_tables(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_stacks(slots)
            .max_memory_size(limits.max_memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;
        let component = Component::new(&engine, componentize(wasm)?)?;
        let mut linker = Linker::<StoreData>::new(&engine);
        generated::Engine::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |data| {
            data
        })?;
        let pre = generated::EnginePre::new(linker.instantiate_pre(&component)?)?;
        spawn_epoch_ticker(&engine)?;
        let tick_ms = EPOCH_TICK.as_millis().max(1);
        let deadline_ticks = limits.deadline.as_millis().div_ceil(tick_ms).max(1);
        Ok(Self {
            pre,
            permits: Semaphore::new(usize::try_from(slots).unwrap_or(usize::MAX)),
            deadline_ticks: u64::try_from(deadline_ticks).unwrap_or(u64::MAX),
            deadline: limits.deadline,
            idle: Mutex::new(Vec::new()),
            counts: Counts::default(),
        })
    }

    /// An instance whose imports reach `state`, once a slot is free: an
    /// idle one from the pool, else a new one.
    pub async fn session(&self, state: State) -> Result<Session<'_>, Error> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the engine is shutting down".to_owned()))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut ready = match idle {
            Some(ready) => {
                self.counts.reused.fetch_add(1, Ordering::Relaxed);
                ready
            }
            None => self.instantiate().await?,
        };
        ready.store.data_mut().request = Some(state);
        // The deadline counts from now, for this call alone.
        ready.store.set_epoch_deadline(self.deadline_ticks);
        Ok(Session {
            store: ready.store,
            engine: ready.engine,
            calls: ready.calls,
            runtime: self,
            discard: Discard {
                counts: &self.counts,
                armed: true,
            },
            _permit: permit,
        })
    }

    /// Makes a new instance and drops it uncalled, once a slot is free: what
    /// instantiation costs. An idle instance, if any, is retired first, so
    /// the new one always finds a slot of the allocator free.
    pub async fn instantiate_and_drop(&self) -> Result<(), Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the engine is shutting down".to_owned()))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(idle) = idle {
            drop(idle);
            self.counts.retired.fetch_add(1, Ordering::Relaxed);
        }
        self.instantiate().await.map(drop)
    }

    /// A new instance, with no request attached.
    async fn instantiate(&self) -> Result<Ready, Error> {
        let data = StoreData {
            request: None,
            memory: MemoryWatch::default(),
        };
        let mut store = Store::new(self.pre.engine(), data);
        store.limiter(|data| &mut data.memory);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let engine = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|error| self.failure(&error))?;
        self.counts.instantiated.fetch_add(1, Ordering::Relaxed);
        Ok(Ready {
            store,
            engine,
            calls: 0,
        })
    }

    /// What the pool has done.
    pub fn stats(&self) -> InstanceStats {
        let counts = &self.counts;
        InstanceStats {
            instantiated: counts.instantiated.load(Ordering::Relaxed),
            reused: counts.reused.load(Ordering::Relaxed),
            discarded: counts.discarded.load(Ordering::Relaxed),
            retired: counts.retired.load(Ordering::Relaxed),
            idle: self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
        }
    }

    /// The core's error for a failed call into the guest: `unavailable` when
    /// the deadline interrupted it, else `internal` (details logged only).
    pub fn failure(&self, error: &wasmtime::Error) -> Error {
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            tracing::warn!(deadline = ?self.deadline, "a request ran past its deadline");
            return Error::Unavailable(format!(
                "the request did not finish within {} ms",
                self.deadline.as_millis()
            ));
        }
        tracing::error!(error = format!("{error:?}"), "the engine component failed");
        Error::Internal("the decision engine failed".to_owned())
    }
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] from a plain thread (so
/// ticks go on while a guest keeps a runtime thread busy), until the engine
/// is dropped.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("signoff-epoch".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}
