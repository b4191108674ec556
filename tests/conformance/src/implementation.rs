//! The interface a build of signoff implements to run the vectors, and what
//! the driver hands it: the clock and the ids of a scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::{Value, json};
use signoff_core::{Error, Principal, Rules, Timestamp};
use uuid::Uuid;

/// What an operation answered: its value as JSON, or the error it failed
/// with.
pub type Outcome = Result<Value, ErrorBody>;

/// An error answer: its code, message and details. Only `code` and
/// `details` are compared with a vector; runners that compare two builds
/// compare all three.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// The error code, such as `not_eligible`.
    pub code: String,
    /// The message (never compared with a vector).
    pub message: String,
    /// The details, when the error has any.
    pub details: Option<Value>,
}

impl ErrorBody {
    /// The body of a core error.
    pub fn from_error(error: &Error) -> Self {
        Self {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
            details: error.details().filter(|details| !details.is_null()),
        }
    }

    /// `{ code, message, details }`.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message, "details": self.details })
    }
}

/// An answer of the core as an [`Outcome`]; the outer `Err` is a value that
/// does not serialize.
pub fn outcome<T: Serialize>(result: Result<T, Error>) -> Result<Outcome, String> {
    match result {
        Ok(value) => to_json(&value).map(Ok),
        Err(error) => Ok(Err(ErrorBody::from_error(&error))),
    }
}

/// A value as JSON, or why it does not serialize.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| format!("the answer does not serialize: {e}"))
}

/// The clock of a scenario: the time of the current step, set by the driver.
/// Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    millis: Arc<AtomicI64>,
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis())
    }

    /// The current time in epoch milliseconds (for cache TTLs).
    pub fn millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, time: Timestamp) {
        self.millis.store(time.as_millis(), Ordering::SeqCst);
    }
}

/// The `ids` of a scenario. Each [`IdList::source`] hands them out in order,
/// independently of the others; when any source runs out it answers the nil
/// UUID and the driver fails the step.
#[derive(Debug, Clone)]
pub struct IdList {
    ids: Arc<[Uuid]>,
    ran_out: Arc<AtomicBool>,
}

impl IdList {
    pub(crate) fn new(ids: Vec<Uuid>) -> Self {
        Self {
            ids: ids.into(),
            ran_out: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A fresh source of the ids, from the first.
    pub fn source(&self) -> Ids {
        Ids {
            list: self.clone(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn ran_out(&self) -> bool {
        self.ran_out.load(Ordering::SeqCst)
    }
}

/// One source of a scenario's ids (see [`IdList::source`]). Clones share the
/// position.
#[derive(Debug, Clone)]
pub struct Ids {
    list: IdList,
    next: Arc<AtomicUsize>,
}

impl Ids {
    /// The next id, or the nil UUID (recorded as running out).
    pub fn next_id(&self) -> Uuid {
        let position = self.next.fetch_add(1, Ordering::SeqCst);
        self.list.ids.get(position).copied().unwrap_or_else(|| {
            self.list.ran_out.store(true, Ordering::SeqCst);
            Uuid::nil()
        })
    }
}

/// One build of signoff, as the vectors call it. Every method answers the
/// operation's [`Outcome`] or JSON value; its `Err(String)` means the
/// operation could not be run at all (a broken vector or a failing harness)
/// and fails the case.
///
/// A scenario runs over one [`Implementation::Store`]: an approval manager
/// (or engine) over a fresh, empty in-memory cache, reading the driver's
/// [`Clock`] (also for the cache's TTLs) and taking new request ids from an
/// [`IdList`] source.
#[allow(
    async_fn_in_trait,
    reason = "the driver is awaited where it is called; no implementation needs Send futures"
)]
pub trait Implementation {
    /// The state of one scenario.
    type Store;

    /// `validateChange(change, rules?)`: the validation items, `[]` when the
    /// change is valid.
    async fn validate_change(&self, change: &Value, rules: Option<&Rules>)
    -> Result<Value, String>;

    /// `validateRules(rules)`: the validation items, `[]` when valid.
    async fn validate_rules(&self, rules: &Value) -> Result<Value, String>;

    /// `validatePrincipal(principal)`: the validation items of a principal
    /// document, `[]` when valid.
    async fn validate_principal(&self, principal: &Value) -> Result<Value, String>;

    /// `previewChange(change, rules)`: `{ valid, errors, level, explanation }`.
    async fn preview(&self, change: &Value, rules: &Rules) -> Result<Value, String>;

    /// A new scenario deciding with `rules` over a fresh store.
    async fn open(&self, rules: &Rules, clock: &Clock, ids: &IdList)
    -> Result<Self::Store, String>;

    /// `create(change, principal, { idempotencyKey })`: the request.
    async fn create(
        &self,
        store: &mut Self::Store,
        change: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, String>;

    /// `get(id)`: the request or `null`.
    async fn get(&self, store: &mut Self::Store, id: &str) -> Result<Outcome, String>;

    /// `list(query)` (`$prev` already replaced): `{ items, nextCursor }`.
    async fn list(&self, store: &mut Self::Store, query: &Value) -> Result<Outcome, String>;

    /// `approve(id, principal, body)`: the request.
    async fn approve(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String>;

    /// `reject(id, principal, body)`: the request.
    async fn reject(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String>;

    /// `cancel(id, principal)`: the request.
    async fn cancel(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String>;

    /// `comment(id, principal, body)`: the request.
    async fn comment(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String>;

    /// `review(id, principal, body)`: the request.
    async fn review(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<Outcome, String>;

    /// `amend(id, principal, change)`: the request.
    async fn amend(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
        change: &Value,
    ) -> Result<Outcome, String>;

    /// `events(query)`: `{ items, nextCursor? }`.
    async fn events(&self, store: &mut Self::Store, query: &Value) -> Result<Outcome, String>;

    /// `allowedActions(request, principal, now)` for the stored request
    /// `id` at the scenario's time: `{ approve, reject, cancel, comment }`.
    async fn allowed_actions(
        &self,
        store: &mut Self::Store,
        id: &str,
        principal: &Principal,
    ) -> Result<Outcome, String>;

    /// `expireDue(body)`: `{ expired, ids }`.
    async fn expire_due(
        &self,
        store: &mut Self::Store,
        body: Option<&Value>,
    ) -> Result<Outcome, String>;

    /// `simulateRules(rules, requests, { principals })` over the store's
    /// requests: every pending one (in listing order), then up to `limit` of
    /// the most recently decided ones (most recently updated first, ties by
    /// id): `{ valid, errors, warnings, digest, examined, changed, items }`.
    async fn simulate_rules(
        &self,
        store: &mut Self::Store,
        rules: &Value,
        limit: u32,
        principals: Option<&[Principal]>,
    ) -> Result<Outcome, String>;

    /// `replaceRules(rules, principal, { ifMatch })`: `{ digest }` of the
    /// rules now in force, which then decide over the same store.
    async fn replace_rules(
        &self,
        store: &mut Self::Store,
        rules: &Value,
        principal: &Principal,
        if_match: Option<&str>,
    ) -> Result<Outcome, String>;

    /// From now on, decide with the rules document `rules` over the same
    /// store, clock and ids.
    async fn set_rules(&self, store: &mut Self::Store, rules: &Value) -> Result<(), String>;
}
