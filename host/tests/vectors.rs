//! The conformance vectors of `tests/vectors/` (format: `tests/README.md`)
//! through the wasmtime component, driven by the shared runner of
//! `signoff-conformance`: every operation runs twice, natively on the core
//! ([`Native`]) and through the engine (the component in wasmtime over the
//! memory cache), and the two answers must be identical, messages included;
//! the runner then compares the answer with the vector's expectation.

use std::sync::Arc;

use serde_json::{Value, json};
use signoff_conformance::{
    Clock, IdList, Implementation, Native, NativeStore, Outcome, outcome, run_vectors, to_json,
};
use signoff_core::input::ActionName;
use signoff_core::{Principal, Rules};
use signoff_host::engine::{Engine, EngineOptions, EngineSettings, StorageOptions};

/// The corpus must never shrink below this many cases.
const MIN_CASES: usize = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_gives_the_native_answer_through_wasmtime() {
    let report = run_vectors(&Wasmtime)
        .await
        .unwrap_or_else(|why| panic!("{why}"));
    eprintln!("{} vectors ran", report.cases);
    if let Err(why) = report.verdict(MIN_CASES) {
        panic!("{why}");
    }
}

/// The engine, checked against the native core at every answer.
struct Wasmtime;

/// A scenario on both sides: two fresh memory caches, one clock, and the
/// same ids on both sides.
struct Scenario {
    native: NativeStore,
    engine: Engine,
}

/// Native and wasmtime answers must be identical; the answer is the engine's.
fn same<T: PartialEq>(native: T, wasm: T, show: impl Fn(&T) -> Value) -> Result<T, String> {
    if native == wasm {
        Ok(wasm)
    } else {
        Err(format!(
            "wasmtime answered differently:\n    native: {}\n    wasm:   {}",
            show(&native),
            show(&wasm)
        ))
    }
}

fn same_value(native: Value, wasm: Value) -> Result<Value, String> {
    same(native, wasm, Value::clone)
}

fn same_outcome(native: Outcome, wasm: Result<Outcome, String>) -> Result<Outcome, String> {
    same(native, wasm?, |outcome| match outcome {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error.to_json() }),
    })
}

fn parse_rules(value: &Value) -> Result<Rules, String> {
    Rules::parse(value).map_err(|items| format!("the case's rules are invalid: {items:?}"))
}

/// Rules that restrict nothing a change is validated against (no
/// `policyTypes`), for `validateChange` cases without rules.
fn permissive_rules() -> Result<Rules, String> {
    parse_rules(&json!({
        "levels": [{ "name": "any", "ttlSeconds": 60, "stages": [] }],
        "defaultLevel": "any"
    }))
}

/// An engine over a fresh memory cache, deciding with `rules`.
async fn engine(rules: Rules, settings: EngineSettings) -> Result<Engine, String> {
    let options = EngineOptions {
        redis_url: None,
        key_prefix: "signoff".into(),
        rules,
        storage: StorageOptions::default(),
    };
    Engine::start_with(options, settings)
        .await
        .map_err(|e| format!("the engine does not start: {e:#}"))
}

impl Implementation for Wasmtime {
    type Store = Scenario;

    async fn validate_change(
        &self,
        change: &Value,
        rules: Option<&Rules>,
    ) -> Result<Value, String> {
        let native = Native.validate_change(change, rules).await?;
        let rules = match rules {
            Some(rules) => rules.clone(),
            None => permissive_rules()?,
        };
        let engine = engine(rules, EngineSettings::default()).await?;
        let preview = engine.preview(change).await.map_err(|e| e.to_string())?;
        same_value(native, to_json(&preview.errors)?)
    }

    async fn validate_rules(&self, rules: &Value) -> Result<Value, String> {
        let native = Native.validate_rules(rules).await?;
        let engine = engine(permissive_rules()?, EngineSettings::default()).await?;
        let wasm = match engine
            .validate_rules(rules)
            .await
            .map_err(|e| e.to_string())?
        {
            Ok(_) => json!([]),
            Err(items) => to_json(&items)?,
        };
        same_value(native, wasm)
    }

    async fn validate_principal(&self, principal: &Value) -> Result<Value, String> {
        let native = Native.validate_principal(principal).await?;
        let engine = engine(permissive_rules()?, EngineSettings::default()).await?;
        let items = engine
            .validate_principal(principal)
            .await
            .map_err(|e| e.to_string())?;
        same_value(native, to_json(&items)?)
    }

    async fn preview(&self, change: &Value, rules: &Rules) -> Result<Value, String> {
        let native = Native.preview(change, rules).await?;
        let engine = engine(rules.clone(), EngineSettings::default()).await?;
        let found = engine.preview(change).await.map_err(|e| e.to_string())?;
        same_value(native, to_json(&found)?)
    }

    async fn open(&self, rules: &Rules, clock: &Clock, ids: &IdList) -> Result<Scenario, String> {
        let native = Native.open(rules, clock, ids).await?;
        let clock = clock.clone();
        let ids = ids.source();
        let settings = EngineSettings {
            clock: Arc::new(move || clock.now()),
            ids: Arc::new(move || ids.next_id()),
            ..EngineSettings::default()
        };
        Ok(Scenario {
            native,
            engine: engine(rules.clone(), settings).await?,
        })
    }

    async fn create(
        &self,
        store: &mut Scenario,
        change: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, String> {
        let native = Native
            .create(&mut store.native, change, principal, idempotency_key)
            .await?;
        let created = store
            .engine
            .create(change, principal, idempotency_key)
            .await;
        same_outcome(native, outcome(created.map(|created| created.request)))
    }

    async fn get(&self, store: &mut Scenario, id: &str) -> Result<Outcome, String> {
        let native = Native.get(&mut store.native, id).await?;
        same_outcome(native, outcome(store.engine.get(id).await))
    }

    async fn list(&self, store: &mut Scenario, query: &Value) -> Result<Outcome, String> {
        let native = Native.list(&mut store.native, query).await?;
        same_outcome(native, outcome(store.engine.list(query).await))
    }

    async fn approve(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        let native = Native
            .approve(&mut store.native, id, principal, body)
            .await?;
        same_outcome(
            native,
            outcome(store.engine.approve(id, principal, body).await),
        )
    }

    async fn reject(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        let native = Native
            .reject(&mut store.native, id, principal, body)
            .await?;
        same_outcome(
            native,
            outcome(store.engine.reject(id, principal, body).await),
        )
    }

    async fn cancel(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String> {
        let native = Native.cancel(&mut store.native, id, principal).await?;
        same_outcome(
            native,
            outcome(store.engine.cancel(id, principal, None).await),
        )
    }

    async fn comment(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        let native = Native
            .comment(&mut store.native, id, principal, body)
            .await?;
        same_outcome(
            native,
            outcome(store.engine.comment(id, principal, body).await),
        )
    }

    async fn review(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        let native = Native
            .review(&mut store.native, id, principal, body)
            .await?;
        same_outcome(
            native,
            outcome(
                store
                    .engine
                    .act(ActionName::Review, id, principal, body)
                    .await,
            ),
        )
    }

    async fn amend(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
        change: &Value,
    ) -> Result<Outcome, String> {
        let native = Native
            .amend(&mut store.native, id, principal, change)
            .await?;
        same_outcome(
            native,
            outcome(store.engine.amend(id, principal, change).await),
        )
    }

    async fn events(&self, store: &mut Scenario, query: &Value) -> Result<Outcome, String> {
        let native = Native.events(&mut store.native, query).await?;
        let page = match signoff_core::EventsQuery::parse(Some(query)) {
            Ok(query) => {
                store
                    .engine
                    .events(query.after.as_deref(), query.limit, None)
                    .await
            }
            Err(error) => Err(error),
        };
        same_outcome(native, outcome(page))
    }

    async fn allowed_actions(
        &self,
        store: &mut Scenario,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String> {
        let native = Native
            .allowed_actions(&mut store.native, id, principal)
            .await?;
        same_outcome(
            native,
            outcome(store.engine.allowed_actions(id, principal).await),
        )
    }

    async fn replace_rules(
        &self,
        store: &mut Scenario,
        rules: &Value,
        principal: &Principal,
        if_match: Option<&str>,
    ) -> Result<Outcome, String> {
        let native = Native
            .replace_rules(&mut store.native, rules, principal, if_match)
            .await?;
        let if_match = if_match.map(|value| vec![value.to_owned()]);
        let wasm = store
            .engine
            .replace_rules(rules, principal, if_match.as_deref())
            .await
            .map(|digest| json!({ "digest": digest }));
        same_outcome(native, outcome(wasm))
    }

    async fn simulate_rules(
        &self,
        store: &mut Scenario,
        rules: &Value,
        limit: u32,
        principals: Option<&[Principal]>,
    ) -> Result<Outcome, String> {
        let native = Native
            .simulate_rules(&mut store.native, rules, limit, principals)
            .await?;
        let wasm = store.engine.simulate_rules(rules, limit, principals).await;
        same_outcome(native, outcome(wasm))
    }

    async fn expire_due(
        &self,
        store: &mut Scenario,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        let native = Native.expire_due(&mut store.native, body).await?;
        let wasm = match signoff_core::input::parse_expire_limit(body) {
            Ok(limit) => outcome(store.engine.expire_due(limit).await),
            Err(error) => outcome::<()>(Err(error)),
        };
        same_outcome(native, wasm)
    }

    async fn set_rules(&self, store: &mut Scenario, rules: &Value) -> Result<(), String> {
        Native.set_rules(&mut store.native, rules).await?;
        store
            .engine
            .replace_rules(rules, &Principal::new("conformance", &["admin"]), None)
            .await
            .map(|_| ())
            .map_err(|error| format!("setRules failed: {error:?}"))
    }
}
