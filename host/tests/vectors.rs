//! The conformance vectors of `tests/vectors/` (format: `tests/README.md`)
//! through the wasmtime component: every case runs twice, natively on the
//! core and through the engine (the component in wasmtime over the memory
//! cache), and the two answers must be identical, messages included, and
//! match the vector's expectation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: a broken fixture must fail loudly"
)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use signoff_core::input::{parse_approve, parse_comment, parse_expire_limit, parse_reject};
use signoff_core::{
    Error, ListQuery, Manager, MemoryCache, PolicyChange, Principal, Rules, Timestamp, preview,
};
use signoff_host::engine::{Engine, EngineOptions, EngineSettings};
use uuid::Uuid;

/// The corpus must never shrink below this many cases.
const MIN_CASES: usize = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_gives_the_native_answer_through_wasmtime() {
    let mut total = 0;
    let mut failures = Vec::new();
    for file in vector_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in document["cases"].as_array().expect("cases") {
            total += 1;
            let case = expand(case);
            let case_name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            if let Err(why) = run_case(&case).await {
                failures.push(format!("{name} › {case_name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} vectors failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(
        total >= MIN_CASES,
        "only {total} vectors ran, expected at least {MIN_CASES}"
    );
}

fn vector_files() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Expands `$repeat` and `$concat` (tests/README.md, "Files").
fn expand(value: &Value) -> Value {
    match value {
        Value::Object(object) if object.contains_key("$repeat") => {
            let text = object["$repeat"].as_str().expect("$repeat takes a string");
            let count = object["count"].as_u64().expect("$repeat needs a count");
            Value::String(text.repeat(usize::try_from(count).unwrap()))
        }
        Value::Object(object) if object.contains_key("$concat") => {
            let parts = object["$concat"].as_array().expect("$concat takes a list");
            Value::String(
                parts
                    .iter()
                    .map(|part| match expand(part) {
                        Value::String(text) => text,
                        other => panic!("$concat parts must be strings, got {other}"),
                    })
                    .collect(),
            )
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, item)| (key.clone(), expand(item)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(expand).collect()),
        scalar => scalar.clone(),
    }
}

/// The subset comparison of tests/README.md: where `actual` differs, if
/// anywhere.
fn mismatch(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    let differ =
        |differs: bool| differs.then(|| format!("at {path}: expected {expected}, got {actual}"));
    match (expected, actual) {
        (Value::String(marker), _) if marker == "$present" => differ(actual.is_null()),
        (Value::Object(wanted), Value::Object(found)) => wanted.iter().find_map(|(key, value)| {
            let inner = format!("{path}.{key}");
            match found.get(key) {
                Some(item) => mismatch(value, item, &inner),
                None if value.is_null() => None,
                None => Some(format!("at {inner}: expected {value}, but it is absent")),
            }
        }),
        (Value::Array(wanted), Value::Array(found)) => {
            if wanted.len() != found.len() {
                return Some(format!(
                    "at {path}: expected {} items, got {}: {actual}",
                    wanted.len(),
                    found.len()
                ));
            }
            wanted
                .iter()
                .zip(found)
                .enumerate()
                .find_map(|(i, (w, f))| mismatch(w, f, &format!("{path}[{i}]")))
        }
        (Value::Number(a), Value::Number(b)) => differ(a.as_f64() != b.as_f64()),
        _ => differ(expected != actual),
    }
}

fn compare(expected: &Value, actual: &Value) -> Result<(), String> {
    mismatch(expected, actual, "$").map_or(Ok(()), Err)
}

/// Native and wasmtime answers must be identical.
fn same(native: &Value, wasm: &Value) -> Result<(), String> {
    if native == wasm {
        Ok(())
    } else {
        Err(format!(
            "wasmtime answered differently:\n    native: {native}\n    wasm:   {wasm}"
        ))
    }
}

fn parse_rules(value: &Value) -> Rules {
    Rules::parse(value).unwrap_or_else(|items| panic!("the case's rules are invalid: {items:?}"))
}

/// Rules that restrict nothing a change is validated against (no
/// `policyTypes`), for `validateChange` cases without rules.
fn permissive_rules() -> Rules {
    parse_rules(&json!({
        "levels": [{ "name": "any", "ttlSeconds": 60, "stages": [] }],
        "defaultLevel": "any"
    }))
}

/// An engine over a fresh memory cache, deciding with `rules`.
async fn engine(rules: Rules, settings: EngineSettings) -> Engine {
    let options = EngineOptions {
        redis_url: None,
        key_prefix: "signoff".into(),
        rules,
    };
    Engine::start_with(options, settings)
        .await
        .expect("the engine starts")
}

async fn run_case(case: &Value) -> Result<(), String> {
    match case["kind"].as_str() {
        Some("validateChange") => {
            let rules = case.get("rules").filter(|r| !r.is_null()).map(parse_rules);
            let native = match PolicyChange::parse(&case["change"], rules.as_ref()) {
                Ok(_) => json!([]),
                Err(items) => serde_json::to_value(items).unwrap(),
            };
            let engine = engine(
                rules.unwrap_or_else(permissive_rules),
                EngineSettings::default(),
            )
            .await;
            let preview = engine
                .preview(&case["change"])
                .await
                .map_err(|e| e.to_string())?;
            let wasm = serde_json::to_value(preview.errors).unwrap();
            same(&native, &wasm)?;
            compare(&case["expect"], &wasm)
        }
        Some("validateRules") => {
            let native = match Rules::parse(&case["rules"]) {
                Ok(_) => json!([]),
                Err(items) => serde_json::to_value(items).unwrap(),
            };
            let engine = engine(permissive_rules(), EngineSettings::default()).await;
            let wasm = match engine
                .validate_rules(&case["rules"])
                .await
                .map_err(|e| e.to_string())?
            {
                Ok(_) => json!([]),
                Err(items) => serde_json::to_value(items).unwrap(),
            };
            same(&native, &wasm)?;
            compare(&case["expect"], &wasm)
        }
        Some("preview") => {
            let rules = parse_rules(&case["rules"]);
            let native = serde_json::to_value(preview(&case["change"], &rules)).unwrap();
            let engine = engine(rules, EngineSettings::default()).await;
            let found = engine
                .preview(&case["change"])
                .await
                .map_err(|e| e.to_string())?;
            let wasm = serde_json::to_value(found).unwrap();
            same(&native, &wasm)?;
            compare(&case["expect"], &wasm)
        }
        Some("scenario") => {
            Scenario::new(case)
                .await
                .run(case["steps"].as_array().unwrap())
                .await
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// The case's ids, handed out in order; running out is recorded.
#[derive(Clone)]
struct Ids {
    queue: Arc<Mutex<VecDeque<Uuid>>>,
    ran_out: Arc<AtomicBool>,
}

impl Ids {
    fn new(case: &Value) -> Self {
        let queue = case["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|id| id.as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            queue: Arc::new(Mutex::new(queue)),
            ran_out: Arc::new(AtomicBool::new(false)),
        }
    }

    fn next(&self) -> Uuid {
        self.queue.lock().unwrap().pop_front().unwrap_or_else(|| {
            self.ran_out.store(true, Ordering::SeqCst);
            Uuid::nil()
        })
    }
}

type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;
type IdSource = Box<dyn Fn() -> Uuid + Send + Sync>;

/// An outcome as both sides are compared: the value, or the error's code,
/// message and details.
type Outcome = Result<Value, Value>;

fn outcome<T: serde::Serialize>(result: Result<T, Error>) -> Outcome {
    result
        .map(|value| serde_json::to_value(value).unwrap())
        .map_err(|error| {
            json!({
                "code": error.code().as_str(),
                "message": error.to_string(),
                "details": error.details(),
            })
        })
}

/// One scenario, run natively and through wasmtime side by side over two
/// fresh memory caches, with one clock and the same ids on both sides.
struct Scenario {
    native: Manager<MemoryCache, Clock, IdSource>,
    native_ids: Ids,
    engine: Engine,
    engine_ids: Ids,
    now: Arc<AtomicI64>,
    native_cursor: Option<String>,
    engine_cursor: Option<String>,
}

impl Scenario {
    async fn new(case: &Value) -> Self {
        let now = Arc::new(AtomicI64::new(0));
        let rules = parse_rules(&case["rules"]);

        let cache_now = now.clone();
        let cache = MemoryCache::with_clock(Arc::new(move || cache_now.load(Ordering::SeqCst)));
        let clock_now = now.clone();
        let clock: Clock =
            Box::new(move || Timestamp::from_millis(clock_now.load(Ordering::SeqCst)));
        let native_ids = Ids::new(case);
        let ids = native_ids.clone();
        let id_source: IdSource = Box::new(move || ids.next());
        let native = Manager::new(cache, clock, id_source, rules.clone());

        let engine_ids = Ids::new(case);
        let ids = engine_ids.clone();
        let engine_now = now.clone();
        let settings = EngineSettings {
            clock: Arc::new(move || Timestamp::from_millis(engine_now.load(Ordering::SeqCst))),
            ids: Arc::new(move || ids.next()),
            ..EngineSettings::default()
        };
        Self {
            native,
            native_ids,
            engine: engine(rules, settings).await,
            engine_ids,
            now,
            native_cursor: None,
            engine_cursor: None,
        }
    }

    async fn run(mut self, steps: &[Value]) -> Result<(), String> {
        for (position, step) in steps.iter().enumerate() {
            let op = step["op"].as_str().unwrap_or("?");
            let label = format!("step {position} ({op})");
            if let Some(at) = step.get("at").and_then(Value::as_str) {
                let time = Timestamp::parse_rfc3339(at)
                    .ok_or_else(|| format!("{label}: bad time `{at}`"))?;
                self.now.store(time.as_millis(), Ordering::SeqCst);
            } else if position == 0 {
                return Err(format!("{label}: the first step needs `at`"));
            }
            let native = self
                .native_step(op, step)
                .map_err(|why| format!("{label}: {why}"))?;
            let wasm = self
                .engine_step(op, step)
                .await
                .map_err(|why| format!("{label}: {why}"))?;
            if self.native_ids.ran_out.load(Ordering::SeqCst)
                || self.engine_ids.ran_out.load(Ordering::SeqCst)
            {
                return Err(format!("{label}: the case's `ids` ran out"));
            }
            let as_value = |outcome: &Outcome| match outcome {
                Ok(value) => json!({ "ok": value }),
                Err(error) => json!({ "error": error }),
            };
            same(&as_value(&native), &as_value(&wasm)).map_err(|why| format!("{label}: {why}"))?;
            check_outcome(&step["expect"], &wasm).map_err(|why| format!("{label}: {why}"))?;
        }
        Ok(())
    }

    fn principal(step: &Value) -> Result<Principal, String> {
        serde_json::from_value(step["principal"].clone()).map_err(|e| format!("bad principal: {e}"))
    }

    /// The step's query, with the cursor `"$prev"` replaced.
    fn query(step: &Value, previous: Option<&String>) -> Result<Value, String> {
        let mut query = match step.get("query") {
            Some(Value::Object(query)) => query.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => return Err(format!("query must be an object, got {other}")),
        };
        if query.get("cursor").and_then(Value::as_str) == Some("$prev") {
            let cursor = previous
                .cloned()
                .ok_or("`$prev` but the previous list step returned no nextCursor")?;
            query.insert("cursor".into(), Value::String(cursor));
        }
        Ok(Value::Object(query))
    }

    fn native_step(&mut self, op: &str, step: &Value) -> Result<Outcome, String> {
        let manager = &self.native;
        let id = step["id"].as_str().unwrap_or_default();
        let body = step.get("body").filter(|b| !b.is_null());
        Ok(match op {
            "create" => {
                let key = step["idempotencyKey"].as_str();
                let created =
                    block_on(manager.create(&step["change"], &Self::principal(step)?, key));
                outcome(created.map(|created| created.request))
            }
            "get" => outcome(block_on(manager.get(id))),
            "approve" => {
                let principal = Self::principal(step)?;
                outcome(
                    parse_approve(body)
                        .and_then(|comment| block_on(manager.approve(id, &principal, comment))),
                )
            }
            "reject" => {
                let principal = Self::principal(step)?;
                outcome(
                    parse_reject(body)
                        .and_then(|reason| block_on(manager.reject(id, &principal, reason))),
                )
            }
            "cancel" => outcome(block_on(manager.cancel(id, &Self::principal(step)?))),
            "comment" => {
                let principal = Self::principal(step)?;
                outcome(
                    parse_comment(body)
                        .and_then(|text| block_on(manager.comment(id, &principal, text))),
                )
            }
            "expireDue" => outcome(
                parse_expire_limit(body).and_then(|limit| block_on(manager.expire_due(limit))),
            ),
            "list" => {
                let query = Self::query(step, self.native_cursor.as_ref())?;
                let page = ListQuery::parse(Some(&query)).and_then(|q| block_on(manager.list(&q)));
                if let Ok(page) = &page {
                    self.native_cursor = page.next_cursor.clone();
                }
                outcome(page)
            }
            "setRules" => {
                self.native.set_rules(parse_rules(&step["rules"]));
                Ok(Value::Null)
            }
            other => return Err(format!("unknown op `{other}`")),
        })
    }

    async fn engine_step(&mut self, op: &str, step: &Value) -> Result<Outcome, String> {
        let engine = &self.engine;
        let id = step["id"].as_str().unwrap_or_default();
        let body = step.get("body").filter(|b| !b.is_null());
        Ok(match op {
            "create" => {
                let key = step["idempotencyKey"].as_str();
                let created = engine
                    .create(&step["change"], &Self::principal(step)?, key)
                    .await;
                outcome(created.map(|created| created.request))
            }
            "get" => outcome(engine.get(id).await),
            "approve" => outcome(engine.approve(id, &Self::principal(step)?, body).await),
            "reject" => outcome(engine.reject(id, &Self::principal(step)?, body).await),
            "cancel" => outcome(engine.cancel(id, &Self::principal(step)?, None).await),
            "comment" => outcome(engine.comment(id, &Self::principal(step)?, body).await),
            "expireDue" => match parse_expire_limit(body) {
                Ok(limit) => outcome(engine.expire_due(limit).await),
                Err(error) => outcome::<()>(Err(error)),
            },
            "list" => {
                let query = Self::query(step, self.engine_cursor.as_ref())?;
                let page = engine.list(&query).await;
                if let Ok(page) = &page {
                    self.engine_cursor = page.next_cursor.clone();
                }
                outcome(page)
            }
            "setRules" => {
                engine
                    .replace_rules(&step["rules"], None)
                    .await
                    .map_err(|error| format!("setRules failed: {error:?}"))?;
                Ok(Value::Null)
            }
            other => return Err(format!("unknown op `{other}`")),
        })
    }
}

/// Runs a future of the native core over the memory cache, which is ready
/// on its first poll (nothing in it waits).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the native core waited on the memory cache"),
    }
}

fn check_outcome(expect: &Value, outcome: &Outcome) -> Result<(), String> {
    match (expect.get("ok"), expect.get("error"), outcome) {
        (Some(wanted), None, Ok(found)) => compare(wanted, found),
        (None, Some(wanted), Err(error)) => {
            let mut found = json!({ "code": error["code"] });
            if !error["details"].is_null() {
                found["details"] = error["details"].clone();
            }
            compare(wanted, &found).map_err(|why| format!("{why} ({})", error["message"]))
        }
        (Some(_), None, Err(error)) => Err(format!("expected success, got error {error}")),
        (None, Some(wanted), Ok(found)) => {
            Err(format!("expected error {wanted}, got success: {found}"))
        }
        _ => Err("`expect` must hold exactly one of `ok` and `error`".into()),
    }
}
