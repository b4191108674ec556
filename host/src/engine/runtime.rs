//! wasmtime: the component, its imports, and one instance per request.
//!
//! The component is compiled once; [`Runtime::session`] instantiates it from
//! an `InstancePre` for every request, in a pooling allocator whose slots
//! bound how many requests run at once and how much memory each may use. An
//! epoch ticker interrupts a guest that runs past its deadline, so a runaway
//! guest cannot hang a request.

use std::sync::Arc;
use std::time::Duration;

use signoff_core::{Error, Timestamp};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

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

use generated::signoff::engine::{cache, host, types};

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

/// What one instance's imports reach.
pub(super) struct State {
    pub cache: CacheBackend,
    pub rules: Arc<str>,
    pub clock: ClockFn,
    pub ids: IdFn,
}

impl cache::Host for State {
    async fn get(&mut self, key: String) -> Result<Option<cache::Entry>, String> {
        let entry = self.cache.get(&key).await.map_err(|error| error.0)?;
        Ok(entry.map(|entry| cache::Entry {
            value: entry.value,
            version: entry.version,
        }))
    }

    async fn commit(&mut self, batch: cache::Batch) -> Result<cache::CommitOutcome, String> {
        let outcome = self
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
        let after = after.map(super::convert::index_entry);
        let entries = self
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

impl host::Host for State {
    async fn now_ms(&mut self) -> i64 {
        (self.clock)().as_millis()
    }

    async fn new_id(&mut self) -> (u64, u64) {
        (self.ids)().as_u64_pair()
    }

    async fn rules(&mut self) -> String {
        self.rules.to_string()
    }
}

impl types::Host for State {}

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

/// The compiled component and what instantiates it.
pub(super) struct Runtime {
    pre: generated::EnginePre<State>,
    permits: Semaphore,
    deadline_ticks: u64,
    deadline: Duration,
}

/// One instance, alive for one request.
pub(super) struct Session<'a> {
    pub store: Store<State>,
    pub engine: generated::Engine,
    _permit: SemaphorePermit<'a>,
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
        let mut linker = Linker::<State>::new(&engine);
        generated::Engine::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        let pre = generated::EnginePre::new(linker.instantiate_pre(&component)?)?;
        spawn_epoch_ticker(&engine)?;
        let tick_ms = EPOCH_TICK.as_millis().max(1);
        let deadline_ticks = limits.deadline.as_millis().div_ceil(tick_ms).max(1);
        Ok(Self {
            pre,
            permits: Semaphore::new(usize::try_from(slots).unwrap_or(usize::MAX)),
            deadline_ticks: u64::try_from(deadline_ticks).unwrap_or(u64::MAX),
            deadline: limits.deadline,
        })
    }

    /// A fresh instance whose imports reach `state`, once a slot is free.
    pub async fn session(&self, state: State) -> Result<Session<'_>, Error> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the engine is shutting down".to_owned()))?;
        let mut store = Store::new(self.pre.engine(), state);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let engine = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|error| self.failure(&error))?;
        Ok(Session {
            store,
            engine,
            _permit: permit,
        })
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
