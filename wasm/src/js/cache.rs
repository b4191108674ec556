//! The core's [`Cache`] over a JavaScript object, and the in-memory cache
//! exported to JavaScript.
//!
//! A JS cache is any object with `get(key)`, `commit(batch)` and
//! `range(index, after, limit)` (shapes in `types.rs` and `wasm/README.md`),
//! and optionally `getMany(keys)` (one `{ value, version }` or null per key,
//! in order): a listing page then reads all its values in one call.
//! Each method may answer with a plain value or a Promise (any thenable). A
//! method that throws, rejects, or answers outside the contract fails the
//! operation with `unavailable`; the core retries a `conflict` by itself.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Function, Reflect, Uint8Array};
use signoff_core::{Batch, Cache, CacheError, CommitOutcome, Entry, IndexEntry};
use signoff_core::{Violation, ViolationCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::wire;

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A cache implemented in JavaScript.
#[derive(Clone)]
pub struct JsCache {
    target: JsValue,
    get: Function,
    /// `getMany(keys)`, when the object has one: one call for many keys.
    get_many: Option<Function>,
    commit: Function,
    range: Function,
}

fn method(target: &JsValue, name: &str, out: &mut Vec<Violation>) -> Option<Function> {
    let found = Reflect::get(target, &JsValue::from_str(name)).ok();
    match found.and_then(|value| value.dyn_into::<Function>().ok()) {
        Some(function) => Some(function),
        None => {
            out.push(Violation::new(
                format!("cache.{name}"),
                ViolationCode::InvalidType,
                "must be a function",
            ));
            None
        }
    }
}

/// A readable description of a thrown value.
pub fn describe_thrown(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value
        .as_string()
        .unwrap_or_else(|| String::from("a value that is not an Error"))
}

fn broken(name: &str, contract: &str) -> CacheError {
    CacheError(format!("cache.{name} broke the contract: {contract}"))
}

/// Calls `method` on `target` with `Reflect.apply`, not `method.call(...)`:
/// a Durable Object stub's methods are proxies that would send `call` itself
/// to the object as a remote method.
fn apply(method: &Function, target: &JsValue, arguments: &Array) -> Result<JsValue, JsValue> {
    Reflect::apply(method, target, arguments)
}

/// Awaits `result` if it is a thenable, and turns a throw or a rejection into
/// a [`CacheError`].
async fn settle(name: &str, result: Result<JsValue, JsValue>) -> Result<JsValue, CacheError> {
    let value = result.map_err(|thrown| {
        CacheError(format!("cache.{name} threw: {}", describe_thrown(&thrown)))
    })?;
    // Any object or function with a callable `then` is a thenable (Promises/A+
    // 1.1): a Durable Object's storage answers with thenable functions.
    let thenable = (value.is_object() || value.is_function())
        && Reflect::get(&value, &JsValue::from_str("then")).is_ok_and(|then| then.is_function());
    if !thenable {
        return Ok(value);
    }
    JsFuture::from(js_sys::Promise::resolve(&value))
        .await
        .map_err(|thrown| {
            CacheError(format!(
                "cache.{name} was rejected: {}",
                describe_thrown(&thrown)
            ))
        })
}

fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn version_of(value: &JsValue) -> Option<u64> {
    if let Some(number) = value.as_f64() {
        return (number.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&number))
            .then_some(number as u64);
    }
    if value.is_bigint() {
        return u64::try_from(value.clone()).ok();
    }
    None
}

fn bytes_of(value: &JsValue) -> Option<Vec<u8>> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Some(array.to_vec());
    }
    value
        .dyn_ref::<js_sys::ArrayBuffer>()
        .map(|buffer| Uint8Array::new(buffer).to_vec())
}

fn position_of(value: &JsValue) -> Option<IndexEntry> {
    Some(IndexEntry {
        sort_key: field(value, "sortKey").as_string()?,
        member: field(value, "member").as_string()?,
    })
}

impl JsCache {
    /// Wraps `target`, which must have the three methods.
    pub fn new(target: &JsValue) -> Result<Self, Vec<Violation>> {
        let mut out = Vec::new();
        if !target.is_object() {
            out.push(Violation::new(
                "cache",
                ViolationCode::InvalidType,
                "must be an object with get, commit and range methods",
            ));
            return Err(out);
        }
        let get = method(target, "get", &mut out);
        let commit = method(target, "commit", &mut out);
        let range = method(target, "range", &mut out);
        match (get, commit, range) {
            (Some(get), Some(commit), Some(range)) => Ok(Self {
                target: target.clone(),
                get,
                get_many: Reflect::get(target, &JsValue::from_str("getMany"))
                    .ok()
                    .and_then(|value| value.dyn_into::<Function>().ok()),
                commit,
                range,
            }),
            _ => Err(out),
        }
    }
}

/// An answered `{ value, version }` or null as an entry.
fn entry_of(name: &str, answer: &JsValue) -> Result<Option<Entry>, CacheError> {
    if answer.is_null() || answer.is_undefined() {
        return Ok(None);
    }
    let contract = "it must answer { value: Uint8Array, version: number } or null";
    if !answer.is_object() {
        return Err(broken(name, contract));
    }
    let value = bytes_of(&field(answer, "value")).ok_or_else(|| broken(name, contract))?;
    let version = version_of(&field(answer, "version")).ok_or_else(|| broken(name, contract))?;
    Ok(Some(Entry { value, version }))
}

/// The byte length of an answered value, without copying it.
fn answered_size(answer: &JsValue) -> Option<u64> {
    if answer.is_null() || answer.is_undefined() {
        return None;
    }
    let value = field(answer, "value");
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Some(u64::from(array.length()));
    }
    value
        .dyn_ref::<js_sys::ArrayBuffer>()
        .map(|buffer| u64::from(buffer.byte_length()))
}

impl Cache for JsCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let answer = settle(
            "get",
            apply(
                &self.get,
                &self.target,
                &Array::of1(&JsValue::from_str(key)),
            ),
        )
        .await?;
        entry_of("get", &answer)
    }

    /// One `getMany(keys)` call when the object has the method, else one
    /// `get` per key. Values past `max_bytes` are not copied into the module.
    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        let Some(get_many) = &self.get_many else {
            let mut out = Vec::with_capacity(keys.len());
            let mut sizes = Vec::with_capacity(keys.len());
            for key in keys {
                let entry = self.get(key).await?;
                sizes.push(
                    entry
                        .as_ref()
                        .map(|entry| u64::try_from(entry.value.len()).unwrap_or(u64::MAX)),
                );
                out.push(entry);
                if signoff_core::cache::budget_prefix(sizes.iter().copied(), max_bytes) < out.len()
                {
                    out.pop();
                    break;
                }
            }
            return Ok(out);
        };
        let argument = array(keys.iter().map(|key| JsValue::from_str(key)));
        let answer = settle(
            "getMany",
            apply(get_many, &self.target, &Array::of1(&argument)),
        )
        .await?;
        let contract = "it must answer an array with one { value, version } or null per key";
        let answers = answer
            .dyn_into::<Array>()
            .map_err(|_| broken("getMany", contract))?;
        if answers.length() as usize != keys.len() {
            return Err(broken("getMany", contract));
        }
        let taken = signoff_core::cache::budget_prefix(
            answers.iter().map(|answer| answered_size(&answer)),
            max_bytes,
        );
        answers
            .iter()
            .take(taken)
            .map(|answer| entry_of("getMany", &answer))
            .collect()
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        let argument = batch_to_js(&batch);
        let answer = settle(
            "commit",
            apply(&self.commit, &self.target, &Array::of1(&argument)),
        )
        .await?;
        match (answer.as_bool(), answer.as_string().as_deref()) {
            (Some(true), _) | (_, Some("committed")) => Ok(CommitOutcome::Committed),
            (Some(false), _) | (_, Some("conflict")) => Ok(CommitOutcome::Conflict),
            _ => Err(broken(
                "commit",
                "it must answer true or \"committed\", false or \"conflict\"",
            )),
        }
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        let after_js = match after {
            Some(entry) => position_to_js(&entry.sort_key, &entry.member),
            None => JsValue::NULL,
        };
        let answer = settle(
            "range",
            apply(
                &self.range,
                &self.target,
                &Array::of3(&JsValue::from_str(index), &after_js, &JsValue::from(limit)),
            ),
        )
        .await?;
        let contract = "it must answer an array of { sortKey, member } strings";
        let items = answer
            .dyn_into::<Array>()
            .map_err(|_| broken("range", contract))?;
        if items.length() > limit {
            return Err(broken(
                "range",
                &format!(
                    "it answered {} entries for a limit of {limit}",
                    items.length()
                ),
            ));
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(items.length() as usize);
        for item in items.iter() {
            let entry = position_of(&item).ok_or_else(|| broken("range", contract))?;
            let previous = entries.last().or(after);
            if previous.is_some_and(|previous| *previous >= entry) {
                return Err(broken(
                    "range",
                    "entries must come in (sortKey, member) order, strictly after `after`",
                ));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// A plain object with `fields`.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in fields {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

fn position_to_js(sort_key: &str, member: &str) -> JsValue {
    object(&[
        ("sortKey", JsValue::from_str(sort_key)),
        ("member", JsValue::from_str(member)),
    ])
}

fn array(items: impl Iterator<Item = JsValue>) -> JsValue {
    items.collect::<Array>().into()
}

fn index_changes(changes: &[signoff_core::IndexChange]) -> JsValue {
    array(changes.iter().map(|change| {
        object(&[
            ("index", JsValue::from_str(&change.index)),
            ("sortKey", JsValue::from_str(&change.entry.sort_key)),
            ("member", JsValue::from_str(&change.entry.member)),
        ])
    }))
}

/// The batch as the core's `Batch` declares it (TypeScript `CacheBatch`).
fn batch_to_js(batch: &Batch) -> JsValue {
    let checks = array(batch.checks.iter().map(|check| {
        let version = check
            .version
            .map_or(JsValue::NULL, |version| JsValue::from_f64(version as f64));
        object(&[("key", JsValue::from_str(&check.key)), ("version", version)])
    }));
    let puts = array(batch.puts.iter().map(|put| {
        let mut fields = vec![
            ("key", JsValue::from_str(&put.key)),
            ("value", Uint8Array::from(put.value.as_slice()).into()),
        ];
        if let Some(ttl) = put.ttl_ms {
            fields.push(("ttlMs", JsValue::from_f64(ttl as f64)));
        }
        object(&fields)
    }));
    let deletes = array(batch.deletes.iter().map(|key| JsValue::from_str(key)));
    object(&[
        ("checks", checks),
        ("puts", puts),
        ("deletes", deletes),
        ("indexAdds", index_changes(&batch.index_adds)),
        ("indexRemoves", index_changes(&batch.index_removes)),
    ])
}

/// The cache of a manager: the built-in memory cache, or a JS object.
#[derive(Clone)]
pub struct AnyCache {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// A [`MemoryCache`] made in JavaScript, used without crossing the
    /// boundary, with its clock kept alive for as long as the manager lives.
    Memory {
        /// The store.
        cache: signoff_core::MemoryCache,
        /// Held, never read: the slot of the cache's clock.
        _clock: Option<Rc<ClockSlot>>,
    },
    /// Any object with `get`, `commit` and `range`.
    Js(JsCache),
}

impl AnyCache {
    /// The cache behind `value`.
    pub fn from_js(value: &JsValue) -> Result<Self, Vec<Violation>> {
        // Only an object that wasm-bindgen made (its pointer is a number) may
        // be a MemoryCache: a proxy such as a Durable Object stub answers a
        // remote method for every property, and calling one would send it.
        let made_here = Reflect::get(value, &JsValue::from_str("__wbg_ptr"))
            .is_ok_and(|pointer| pointer.as_f64().is_some());
        let handle = Reflect::get(value, &JsValue::from_str(HANDLE_METHOD))
            .ok()
            .filter(|_| made_here)
            .and_then(|method| method.dyn_into::<Function>().ok())
            .and_then(|method| apply(&method, value, &Array::new()).ok())
            .and_then(|handle| {
                <MemoryCacheHandle as wasm_bindgen::convert::TryFromJsValue>::try_from_js_value(
                    handle,
                )
                .ok()
            });
        let backend = match handle {
            Some(handle) => Backend::Memory {
                cache: handle.inner,
                _clock: handle.clock,
            },
            None => Backend::Js(JsCache::new(value)?),
        };
        Ok(Self { backend })
    }
}

impl Cache for AnyCache {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        match &self.backend {
            Backend::Memory { cache, .. } => cache.get(key).await,
            Backend::Js(cache) => cache.get(key).await,
        }
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        match &self.backend {
            Backend::Memory { cache, .. } => cache.get_many(keys, max_bytes).await,
            Backend::Js(cache) => cache.get_many(keys, max_bytes).await,
        }
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        match &self.backend {
            Backend::Memory { cache, .. } => cache.commit(batch).await,
            Backend::Js(cache) => cache.commit(batch).await,
        }
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        match &self.backend {
            Backend::Memory { cache, .. } => cache.range(index, after, limit).await,
            Backend::Js(cache) => cache.range(index, after, limit).await,
        }
    }
}

/// The method a [`MemoryCache`] hands its store out by.
const HANDLE_METHOD: &str = "__signoffMemoryCache";

/// A throwaway JS object carrying a memory cache's store to a manager.
#[wasm_bindgen(skip_typescript)]
pub struct MemoryCacheHandle {
    inner: signoff_core::MemoryCache,
    clock: Option<Rc<ClockSlot>>,
}

thread_local! {
    /// The JS clocks of memory caches, by slot; a closure over a slot number
    /// is `Send + Sync` where one over a JS function could not be.
    static CLOCKS: RefCell<Vec<Option<Function>>> = const { RefCell::new(Vec::new()) };
}

/// A slot of [`CLOCKS`], emptied when the cache and every manager using it
/// are freed.
struct ClockSlot(usize);

impl Drop for ClockSlot {
    fn drop(&mut self) {
        CLOCKS.with(|clocks| {
            if let Some(slot) = clocks.borrow_mut().get_mut(self.0) {
                *slot = None;
            }
        });
    }
}

fn epoch_millis(clock: Option<&Function>) -> Option<i64> {
    let value = match clock {
        Some(clock) => clock.call0(&JsValue::UNDEFINED).ok()?.as_f64()?,
        None => js_sys::Date::now(),
    };
    super::wire::epoch_millis(value)
}

/// An in-memory cache for JavaScript: the core's `MemoryCache`, with TTLs
/// measured on `clock` (default `Date.now`).
#[wasm_bindgen]
pub struct MemoryCache {
    inner: signoff_core::MemoryCache,
    clock: Option<Rc<ClockSlot>>,
}

#[wasm_bindgen]
impl MemoryCache {
    /// A new, empty cache. `options.clock` returns epoch milliseconds and
    /// measures TTLs (idempotency keys, rate-limit buckets); give it the
    /// manager's clock when that clock is not `Date.now`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: Option<tsify::Ts<super::types::MemoryCacheOptions>>,
    ) -> Result<MemoryCache, JsValue> {
        let clock = match options.map(|options| options.js_value()) {
            None => None,
            Some(options) if options.is_null() || options.is_undefined() => None,
            Some(options) => memory_cache_clock(&options)?,
        };
        let (slot, reader): (Option<Rc<ClockSlot>>, signoff_core::memory::MillisClock) = match clock
        {
            None => (None, Arc::new(|| epoch_millis(None).unwrap_or_default())),
            Some(clock) => {
                let slot = CLOCKS.with(|clocks| {
                    let mut clocks = clocks.borrow_mut();
                    clocks.push(Some(clock));
                    clocks.len() - 1
                });
                let reader = move || {
                    CLOCKS
                        .with(|clocks| epoch_millis(clocks.borrow().get(slot)?.as_ref()))
                        .or_else(|| epoch_millis(None))
                        .unwrap_or_default()
                };
                (Some(Rc::new(ClockSlot(slot))), Arc::new(reader))
            }
        };
        Ok(MemoryCache {
            inner: signoff_core::MemoryCache::with_clock(reader),
            clock: slot,
        })
    }

    /// The number of live values stored.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.inner.len()).unwrap_or(u32::MAX)
    }

    /// Hands the store to a manager (internal).
    #[wasm_bindgen(js_name = "__signoffMemoryCache", skip_typescript)]
    pub fn handle(&self) -> MemoryCacheHandle {
        MemoryCacheHandle {
            inner: self.inner.clone(),
            clock: self.clock.clone(),
        }
    }
}

fn memory_cache_clock(options: &JsValue) -> Result<Option<Function>, JsValue> {
    let mut out = Vec::new();
    let clock = if options.is_object() {
        let keys = js_sys::Object::keys(options.unchecked_ref::<js_sys::Object>());
        for key in keys.iter().filter_map(|key| key.as_string()) {
            if key != "clock" {
                out.push(Violation::new(
                    key.clone(),
                    ViolationCode::UnknownField,
                    format!("unknown field `{key}`"),
                ));
            }
        }
        let clock = field(options, "clock");
        match clock.dyn_into::<Function>() {
            Ok(clock) => Some(clock),
            Err(other) if other.is_null() || other.is_undefined() => None,
            Err(_) => {
                out.push(Violation::new(
                    "clock",
                    ViolationCode::InvalidType,
                    "must be a function returning epoch milliseconds",
                ));
                None
            }
        }
    } else {
        out.push(Violation::new(
            "",
            ViolationCode::InvalidType,
            "must be an object",
        ));
        None
    };
    if out.is_empty() {
        Ok(clock)
    } else {
        Err(wire::invalid("the memory cache options are invalid", out))
    }
}
