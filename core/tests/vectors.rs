//! Runs every conformance vector of `tests/vectors/*.json` through the native
//! core: a [`Manager`] over a [`MemoryCache`], driven with
//! `futures::executor::block_on`. The format is described in
//! `tests/README.md`; the JS and wasmtime runners read the same files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test crate: a broken fixture must fail loudly (clippy.toml only covers #[test] fns)"
)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use serde_json::{Map, Value, json};
use signoff_core::input::{parse_approve, parse_comment, parse_expire_limit, parse_reject};
use signoff_core::{
    Error, ListQuery, Manager, MemoryCache, PolicyChange, Principal, Rules, Timestamp, preview,
};
use uuid::Uuid;

/// The corpus must never shrink below this many cases.
const MIN_CASES: usize = 80;

#[test]
fn every_vector_passes_on_the_native_core() {
    let mut total = 0;
    let mut failures = Vec::new();
    for file in vector_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let document: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let cases = document["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no `cases` array"));
        assert!(
            document["description"].is_string(),
            "{name} has no `description`"
        );
        for case in cases {
            total += 1;
            let case = expand(case);
            let case_name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            if let Err(why) = run_case(&case) {
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
        "only {total} vectors found in tests/vectors, expected at least {MIN_CASES}"
    );
}

#[test]
fn case_names_are_unique_within_a_file() {
    for file in vector_files() {
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for case in document["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            assert!(
                seen.insert(name),
                "{}: duplicate case `{name}`",
                file.display()
            );
        }
    }
}

#[test]
fn the_subset_comparison_means_what_the_readme_says() {
    let actual = json!({ "a": 1, "b": [1, { "c": 2, "d": 3 }], "e": null, "s": "x" });
    assert_eq!(mismatch(&json!({ "a": 1 }), &actual, "$"), None);
    assert_eq!(
        mismatch(&json!({ "b": [1, { "c": 2 }] }), &actual, "$"),
        None
    );
    assert_eq!(
        mismatch(&json!({ "e": null, "zz": null }), &actual, "$"),
        None
    );
    assert_eq!(mismatch(&json!({ "s": "$present" }), &actual, "$"), None);
    assert!(mismatch(&json!({ "b": [1] }), &actual, "$").is_some());
    assert!(mismatch(&json!({ "a": 2 }), &actual, "$").is_some());
    assert!(mismatch(&json!({ "zz": "$present" }), &actual, "$").is_some());
    assert!(mismatch(&json!({ "a": null }), &actual, "$").is_some());
    assert_eq!(
        expand(&json!({ "t": { "$concat": [" ", { "$repeat": "ab", "count": 2 }] } })),
        json!({ "t": " abab" })
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

// ---------------------------------------------------------------------------
// Generators and the subset comparison
// ---------------------------------------------------------------------------

/// Replaces `{ "$repeat": s, "count": n }` by `s` repeated `n` times and
/// `{ "$concat": [parts] }` by the concatenation of its (expanded) parts.
fn expand(value: &Value) -> Value {
    match value {
        Value::Object(object) if object.contains_key("$repeat") => {
            let text = object["$repeat"].as_str().expect("$repeat takes a string");
            let count = object["count"].as_u64().expect("$repeat needs a count");
            Value::String(text.repeat(usize::try_from(count).unwrap()))
        }
        Value::Object(object) if object.contains_key("$concat") => {
            let parts = object["$concat"].as_array().expect("$concat takes a list");
            let joined: String = parts
                .iter()
                .map(|part| match expand(part) {
                    Value::String(text) => text,
                    other => panic!("$concat parts must be strings, got {other}"),
                })
                .collect();
            Value::String(joined)
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

/// Where `actual` differs from the expectation, or `None` when it matches:
/// objects match when every expected key matches (an expected `null` also
/// matches an absent key), arrays element-wise with equal lengths, the string
/// `"$present"` anything but `null`, and scalars by equality (numbers by value).
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

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

fn run_case(case: &Value) -> Result<(), String> {
    match case["kind"].as_str() {
        Some("validateChange") => {
            let rules = case.get("rules").filter(|r| !r.is_null()).map(parse_rules);
            let found = match PolicyChange::parse(&case["change"], rules.as_ref()) {
                Ok(_) => Value::Array(Vec::new()),
                Err(items) => serde_json::to_value(items).unwrap(),
            };
            compare(&case["expect"], &found)
        }
        Some("validateRules") => {
            let found = match Rules::parse(&case["rules"]) {
                Ok(_) => Value::Array(Vec::new()),
                Err(items) => serde_json::to_value(items).unwrap(),
            };
            compare(&case["expect"], &found)
        }
        Some("preview") => {
            let found = preview(&case["change"], &parse_rules(&case["rules"]));
            compare(&case["expect"], &serde_json::to_value(found).unwrap())
        }
        Some("scenario") => Scenario::new(case).run(case["steps"].as_array().unwrap()),
        other => Err(format!("unknown kind {other:?}")),
    }
}

fn parse_rules(value: &Value) -> Rules {
    Rules::parse(value).unwrap_or_else(|items| panic!("the case's rules are invalid: {items:?}"))
}

fn compare(expected: &Value, actual: &Value) -> Result<(), String> {
    match mismatch(expected, actual, "$") {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

type Clock = Box<dyn Fn() -> Timestamp>;
type Ids = Box<dyn Fn() -> Uuid>;

/// One scenario: a manager over a fresh cache, a settable clock and the
/// case's list of ids.
struct Scenario {
    manager: Manager<MemoryCache, Clock, Ids>,
    now: Arc<AtomicI64>,
    ids_ran_out: Arc<AtomicBool>,
    previous_cursor: Option<String>,
}

impl Scenario {
    fn new(case: &Value) -> Self {
        let now = Arc::new(AtomicI64::new(0));
        let cache_now = now.clone();
        let cache = MemoryCache::with_clock(Arc::new(move || cache_now.load(Ordering::SeqCst)));
        let clock_now = now.clone();
        let clock: Clock =
            Box::new(move || Timestamp::from_millis(clock_now.load(Ordering::SeqCst)));
        let queue: VecDeque<Uuid> = case["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|id| id.as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let queue = Mutex::new(queue);
        let ids_ran_out = Arc::new(AtomicBool::new(false));
        let ran_out = ids_ran_out.clone();
        let ids: Ids = Box::new(move || {
            queue.lock().unwrap().pop_front().unwrap_or_else(|| {
                ran_out.store(true, Ordering::SeqCst);
                Uuid::nil()
            })
        });
        Self {
            manager: Manager::new(cache, clock, ids, parse_rules(&case["rules"])),
            now,
            ids_ran_out,
            previous_cursor: None,
        }
    }

    fn run(mut self, steps: &[Value]) -> Result<(), String> {
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
            let outcome = self
                .step(op, step)
                .map_err(|why| format!("{label}: {why}"))?;
            if self.ids_ran_out.load(Ordering::SeqCst) {
                return Err(format!("{label}: the case's `ids` ran out"));
            }
            check_outcome(&step["expect"], &outcome).map_err(|why| format!("{label}: {why}"))?;
        }
        Ok(())
    }

    /// Runs one step. The outer `Err` is a broken vector; the inner result is
    /// what the core answered.
    fn step(&mut self, op: &str, step: &Value) -> Result<Result<Value, Error>, String> {
        let manager = &self.manager;
        let id = step["id"].as_str().unwrap_or_default();
        let body = step.get("body").filter(|b| !b.is_null());
        let principal = || -> Result<Principal, String> {
            serde_json::from_value(step["principal"].clone())
                .map_err(|e| format!("bad principal: {e}"))
        };
        Ok(match op {
            "create" => {
                let key = step["idempotencyKey"].as_str();
                let created = block_on(manager.create(&step["change"], &principal()?, key));
                to_json(created.map(|created| created.request))
            }
            "get" => to_json(block_on(manager.get(id))),
            "approve" => {
                let principal = principal()?;
                to_json(
                    parse_approve(body)
                        .and_then(|comment| block_on(manager.approve(id, &principal, comment))),
                )
            }
            "reject" => {
                let principal = principal()?;
                to_json(
                    parse_reject(body)
                        .and_then(|reason| block_on(manager.reject(id, &principal, reason))),
                )
            }
            "cancel" => to_json(block_on(manager.cancel(id, &principal()?))),
            "comment" => {
                let principal = principal()?;
                to_json(
                    parse_comment(body)
                        .and_then(|text| block_on(manager.comment(id, &principal, text))),
                )
            }
            "expireDue" => to_json(
                parse_expire_limit(body).and_then(|limit| block_on(manager.expire_due(limit))),
            ),
            "list" => {
                let query = self.query(step)?;
                let page = ListQuery::parse(Some(&query)).and_then(|q| block_on(manager.list(&q)));
                if let Ok(page) = &page {
                    self.previous_cursor = page.next_cursor.clone();
                }
                to_json(page)
            }
            "setRules" => {
                self.manager.set_rules(parse_rules(&step["rules"]));
                Ok(Value::Null)
            }
            other => return Err(format!("unknown op `{other}`")),
        })
    }

    /// The step's query, with the cursor `"$prev"` replaced by the
    /// `nextCursor` of the previous list step.
    fn query(&self, step: &Value) -> Result<Value, String> {
        let mut query = match step.get("query") {
            Some(Value::Object(query)) => query.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => return Err(format!("query must be an object, got {other}")),
        };
        if query.get("cursor").and_then(Value::as_str) == Some("$prev") {
            let cursor = self
                .previous_cursor
                .clone()
                .ok_or("`$prev` but the previous list step returned no nextCursor")?;
            query.insert("cursor".into(), Value::String(cursor));
        }
        Ok(Value::Object(query))
    }
}

fn to_json<T: serde::Serialize>(value: Result<T, Error>) -> Result<Value, Error> {
    value.map(|value| serde_json::to_value(value).unwrap())
}

fn check_outcome(expect: &Value, outcome: &Result<Value, Error>) -> Result<(), String> {
    match (expect.get("ok"), expect.get("error"), outcome) {
        (Some(wanted), None, Ok(found)) => compare(wanted, found),
        (None, Some(wanted), Err(error)) => {
            let mut found = json!({ "code": error.code().as_str() });
            if let Some(details) = error.details() {
                found["details"] = details;
            }
            compare(wanted, &found).map_err(|why| format!("{why} ({error})"))
        }
        (Some(_), None, Err(error)) => Err(format!(
            "expected success, got error `{}`: {error} {}",
            error.code(),
            error.details().unwrap_or(Value::Null)
        )),
        (None, Some(wanted), Ok(found)) => {
            Err(format!("expected error {wanted}, got success: {found}"))
        }
        _ => Err("`expect` must hold exactly one of `ok` and `error`".into()),
    }
}
