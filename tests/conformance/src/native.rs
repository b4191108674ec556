//! The native core as an [`Implementation`]: a [`Manager`] over a
//! [`MemoryCache`].

use std::sync::Arc;

use serde_json::{Value, json};
use signoff_core::input::{ActionName, parse_action, parse_expire_limit};
use signoff_core::{
    IfMatch, ListQuery, Manager, MemoryCache, PolicyChange, Principal, Rules, Timestamp, preview,
};
use uuid::Uuid;

use crate::driver::parse_rules;
use crate::implementation::{Clock, IdList, Implementation, Outcome, outcome, to_json};

/// The native core. Its futures never wait: the memory cache answers at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

type ClockFn = Box<dyn Fn() -> Timestamp + Send + Sync>;
type IdFn = Box<dyn Fn() -> Uuid + Send + Sync>;

/// A scenario of the native core: a manager over a fresh memory cache.
pub struct NativeStore {
    manager: Manager<MemoryCache, ClockFn, IdFn>,
}

fn items<T>(parsed: Result<T, impl serde::Serialize>) -> Result<Value, String> {
    match parsed {
        Ok(_) => Ok(json!([])),
        Err(items) => to_json(&items),
    }
}

impl Implementation for Native {
    type Store = NativeStore;

    async fn validate_change(
        &self,
        change: &Value,
        rules: Option<&Rules>,
    ) -> Result<Value, String> {
        items(PolicyChange::parse(change, rules))
    }

    async fn validate_rules(&self, rules: &Value) -> Result<Value, String> {
        items(Rules::parse(rules))
    }

    async fn validate_principal(&self, principal: &Value) -> Result<Value, String> {
        items(Principal::parse(principal, "principal"))
    }

    async fn preview(&self, change: &Value, rules: &Rules) -> Result<Value, String> {
        to_json(&preview(change, rules))
    }

    async fn open(
        &self,
        rules: &Rules,
        clock: &Clock,
        ids: &IdList,
    ) -> Result<NativeStore, String> {
        let cache_clock = clock.clone();
        let cache = MemoryCache::with_clock(Arc::new(move || cache_clock.millis()));
        let scenario_clock = clock.clone();
        let clock_fn: ClockFn = Box::new(move || scenario_clock.now());
        let ids = ids.source();
        let ids: IdFn = Box::new(move || ids.next_id());
        Ok(NativeStore {
            manager: Manager::new(cache, clock_fn, ids, rules.clone()),
        })
    }

    async fn create(
        &self,
        store: &mut NativeStore,
        change: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, String> {
        let created = store
            .manager
            .create(change, principal, idempotency_key)
            .await;
        outcome(created.map(|created| created.request))
    }

    async fn allowed_actions(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String> {
        let found = store.manager.allowed_actions(id, principal).await;
        outcome(found)
    }

    async fn get(&self, store: &mut NativeStore, id: &str) -> Result<Outcome, String> {
        outcome(store.manager.get(id).await)
    }

    async fn list(&self, store: &mut NativeStore, query: &Value) -> Result<Outcome, String> {
        match ListQuery::parse(Some(query)) {
            Ok(query) => outcome(store.manager.list(&query).await),
            Err(error) => outcome::<()>(Err(error)),
        }
    }

    async fn approve(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        act(store, id, principal, ActionName::Approve, body).await
    }

    async fn reject(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        act(store, id, principal, ActionName::Reject, body).await
    }

    async fn cancel(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String> {
        act(store, id, principal, ActionName::Cancel, None).await
    }

    async fn comment(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        act(store, id, principal, ActionName::Comment, body).await
    }

    async fn review(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        act(store, id, principal, ActionName::Review, body).await
    }

    async fn amend(
        &self,
        store: &mut NativeStore,
        id: &str,
        principal: &Principal,
        change: &Value,
    ) -> Result<Outcome, String> {
        outcome(store.manager.amend(id, principal, change).await)
    }

    async fn events(&self, store: &mut NativeStore, query: &Value) -> Result<Outcome, String> {
        let page = match signoff_core::EventsQuery::parse(Some(query)) {
            Ok(query) => {
                store
                    .manager
                    .events(query.after.as_deref(), query.limit, None)
                    .await
            }
            Err(error) => Err(error),
        };
        outcome(page)
    }

    async fn expire_due(
        &self,
        store: &mut NativeStore,
        body: Option<&Value>,
    ) -> Result<Outcome, String> {
        match parse_expire_limit(body) {
            Ok(limit) => outcome(store.manager.expire_due(limit).await),
            Err(error) => outcome::<()>(Err(error)),
        }
    }

    async fn simulate_rules(
        &self,
        store: &mut NativeStore,
        rules: &Value,
        limit: u32,
        principals: Option<&[Principal]>,
    ) -> Result<Outcome, String> {
        let simulation = store.manager.simulate_rules(rules, limit, principals).await;
        outcome(simulation)
    }

    async fn replace_rules(
        &self,
        store: &mut NativeStore,
        rules: &Value,
        principal: &Principal,
        if_match: Option<&str>,
    ) -> Result<Outcome, String> {
        let if_match = if_match.map(|value| IfMatch::parse([value]));
        let replaced = store
            .manager
            .replace_rules(rules, principal, if_match.as_ref())
            .await;
        Ok(match replaced {
            Ok(replaced) => {
                let digest = replaced.digest.clone();
                store.manager.set_rules(replaced.rules);
                Ok(json!({ "digest": digest }))
            }
            Err(error) => outcome::<()>(Err(error))?,
        })
    }

    async fn set_rules(&self, store: &mut NativeStore, rules: &Value) -> Result<(), String> {
        store.manager.set_rules(parse_rules(rules)?);
        Ok(())
    }
}

/// approve, reject, cancel and comment through `Manager::act`, the body judged
/// first as every binding does.
async fn act(
    store: &mut NativeStore,
    id: &str,
    principal: &Principal,
    name: ActionName,
    body: Option<&Value>,
) -> Result<Outcome, String> {
    match parse_action(name, body) {
        Ok(action) => outcome(store.manager.act(id, principal, action).await),
        Err(error) => outcome::<()>(Err(error)),
    }
}
