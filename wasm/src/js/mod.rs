//! The JavaScript package (docs/CONTRACT.md section 8): `ApprovalManager`, `MemoryCache`,
//! `validateChange`, `previewChange` and `validateRules`, plus the
//! `SignoffError` class of `glue.js`.
//!
//! Every function here only converts: JS values to the JSON the core parses,
//! the core's answers back to JS, and its errors to `SignoffError`s. Every
//! decision is the core's.

mod cache;
mod types;
mod wire;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use signoff_core::ViolationCode;
use signoff_core::audit::HistoryVerification;
use signoff_core::input::{ActionName, EventsQuery, ListQuery, parse_action, parse_expire_limit};
use signoff_core::{Clock, IdSource, Manager, PolicyChange, Rules, Timestamp, Violation};
use tsify::Ts;
use uuid::Uuid;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use cache::AnyCache;
use signoff_core::{AllowedActions, ApprovalRequest, Preview, Principal, Simulation};
use types::{
    ApproveOptions, CommentOptions, CreateOptions, EventsOptions, ExpireOptions, ListOptions,
    ManagerOptions, RejectOptions, ReplaceRulesOptions, ReviewOptions,
};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID, catch)]
    fn random_uuid() -> Result<String, JsValue>;
}

/// The manager's clock: a JS function returning epoch milliseconds, or
/// `Date.now`. The core's clock cannot fail, so each operation first reads
/// the clock and fails cleanly if it is broken; a read that fails later in the
/// operation reuses the last good reading.
#[derive(Clone)]
struct JsClock(Rc<ClockState>);

struct ClockState {
    source: Option<Function>,
    last: Cell<i64>,
}

impl JsClock {
    fn read(&self) -> Option<i64> {
        let millis = match &self.0.source {
            Some(source) => source.call0(&JsValue::UNDEFINED).ok()?.as_f64()?,
            None => js_sys::Date::now(),
        };
        let millis = wire::epoch_millis(millis)?;
        self.0.last.set(millis);
        Some(millis)
    }

    fn probe(&self) -> Result<(), JsValue> {
        match self.read() {
            Some(_) => Ok(()),
            None => Err(config_error(
                "clock",
                "must return the current time in epoch milliseconds",
            )),
        }
    }
}

impl Clock for JsClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.read().unwrap_or_else(|| self.0.last.get()))
    }
}

/// The manager's id source: a JS function returning UUID strings, or
/// `crypto.randomUUID`, called when the core asks (once per create whose
/// change is valid). When it fails (it throws, or answers anything but a
/// UUID other than the nil one), the create fails with `invalid_request`
/// naming `ids`, and nothing is stored.
#[derive(Clone)]
struct JsIds(Rc<Option<Function>>);

impl JsIds {
    fn generate(&self) -> Option<Uuid> {
        let text = match self.0.as_ref() {
            Some(source) => source.call0(&JsValue::UNDEFINED).ok()?.as_string()?,
            None => random_uuid().ok()?,
        };
        Uuid::parse_str(&text).ok().filter(|id| !id.is_nil())
    }
}

impl IdSource for JsIds {
    fn new_id(&self) -> Result<Uuid, signoff_core::Error> {
        self.generate()
            .ok_or_else(|| config_problem("ids", "must return a new UUID string"))
    }
}

/// A manager option that does not do what the contract asks of it.
fn config_problem(path: &str, message: &str) -> signoff_core::Error {
    signoff_core::Error::invalid(
        format!("the manager's `{path}` {message}"),
        vec![Violation::new(path, ViolationCode::InvalidType, message)],
    )
}

fn config_error(path: &str, message: &str) -> JsValue {
    wire::error(&config_problem(path, message))
}

struct Inner {
    manager: Manager<AnyCache, JsClock, JsIds>,
    clock: JsClock,
    ids: JsIds,
}

/// The approval engine over a cache (docs/CONTRACT.md section 8).
#[wasm_bindgen]
pub struct ApprovalManager {
    /// The manager deciding now. An operation takes the one in force when it
    /// starts; `replaceRules` puts a manager over the same cache with the new
    /// rules in its place, so no borrow is held across an await.
    inner: Rc<RefCell<Rc<Inner>>>,
}

impl ApprovalManager {
    fn current(&self) -> Rc<Inner> {
        Rc::clone(&self.inner.borrow())
    }
}

fn optional_function(options: &JsValue, name: &str, out: &mut Vec<Violation>) -> Option<Function> {
    let value = Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
    if value.is_null() || value.is_undefined() {
        return None;
    }
    match value.dyn_into::<Function>() {
        Ok(function) => Some(function),
        Err(_) => {
            out.push(Violation::new(
                name,
                ViolationCode::InvalidType,
                "must be a function",
            ));
            None
        }
    }
}

/// The rules behind a `CompiledRules`, or a rules document parsed now (which
/// throws `invalid_request` with its problems).
fn parse_rules(value: &JsValue) -> Result<Rc<Rules>, JsValue> {
    let slot = Reflect::get(value, &JsValue::from_str(COMPILED_SLOT))
        .ok()
        .and_then(|slot| slot.as_f64());
    if let Some(rules) = slot.and_then(|slot| {
        COMPILED.with(|compiled| compiled.borrow().get(slot as usize).cloned().flatten())
    }) {
        return Ok(rules);
    }
    let document = wire::json(value, "", "rules")?;
    Rules::parse(&document)
        .map(Rc::new)
        .map_err(|details| wire::invalid("the rules are invalid", details))
}

/// The property a [`CompiledRules`] shows its slot of [`COMPILED`] by.
const COMPILED_SLOT: &str = "__signoffSlot";

thread_local! {
    /// The rules of live `CompiledRules`, by slot: a call finds them from the
    /// slot number its JS object shows, without copying or parsing.
    static COMPILED: RefCell<Vec<Option<Rc<Rules>>>> = const { RefCell::new(Vec::new()) };
}

/// A rules document validated once, for the calls that take rules
/// (`previewChange`, `validateChange`, `new ApprovalManager`): an editor that
/// previews on every keystroke parses its rules once instead of every time.
#[wasm_bindgen]
pub struct CompiledRules {
    rules: Rc<Rules>,
    slot: usize,
}

impl Drop for CompiledRules {
    fn drop(&mut self) {
        COMPILED.with(|compiled| {
            if let Some(slot) = compiled.borrow_mut().get_mut(self.slot) {
                *slot = None;
            }
        });
    }
}

#[wasm_bindgen]
impl CompiledRules {
    /// Validates `rules`; throws `invalid_request` listing every problem.
    #[wasm_bindgen(constructor)]
    pub fn new(rules: Ts<Rules>) -> Result<CompiledRules, JsValue> {
        let rules = parse_rules(&rules.js_value())?;
        let slot = COMPILED.with(|compiled| {
            let mut compiled = compiled.borrow_mut();
            compiled.push(Some(rules.clone()));
            compiled.len() - 1
        });
        Ok(CompiledRules { rules, slot })
    }

    /// The digest every request decided by these rules records.
    #[wasm_bindgen(getter)]
    pub fn digest(&self) -> String {
        self.rules.digest()
    }

    /// The rules document, as validated (for `JSON.stringify`).
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "Rules")]
    pub fn to_json(&self) -> Result<JsValue, JsValue> {
        wire::to_js(&*self.rules)
    }

    /// The slot of these rules (internal).
    #[wasm_bindgen(getter, js_name = "__signoffSlot", skip_typescript)]
    pub fn slot(&self) -> u32 {
        u32::try_from(self.slot).unwrap_or(u32::MAX)
    }
}

/// Runs `body` as a Promise; every error is already a `SignoffError`.
fn promise(body: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    future_to_promise(body)
}

/// approve, reject, cancel and comment: the principal, the id and the body
/// (read by `body`) are judged before the stored request, as the
/// specification orders their errors.
fn act(
    inner: Rc<Inner>,
    id: JsValue,
    principal: JsValue,
    name: ActionName,
    body: impl FnOnce() -> Result<Option<serde_json::Value>, JsValue> + 'static,
) -> Promise {
    promise(async move {
        let principal = wire::principal(&principal)?;
        let id = wire::id(&id)?;
        let action = parse_action(name, body()?.as_ref()).map_err(core_error)?;
        inner.clock.probe()?;
        let request = inner
            .manager
            .act(&id, &principal, action)
            .await
            .map_err(core_error)?;
        wire::to_js(&request)
    })
}

fn core_error(error: signoff_core::Error) -> JsValue {
    wire::error(&error)
}

#[wasm_bindgen]
impl ApprovalManager {
    /// A manager deciding with `options.rules` over `options.cache`. Throws a
    /// `SignoffError` (`invalid_request`) listing every problem of the
    /// options or the rules.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Ts<ManagerOptions>) -> Result<ApprovalManager, JsValue> {
        let options = options.js_value();
        let mut out = Vec::new();
        if !options.is_object() {
            out.push(Violation::new(
                "",
                ViolationCode::InvalidType,
                "must be an object { rules, cache, clock?, ids? }",
            ));
            return Err(wire::invalid("the manager options are invalid", out));
        }
        for key in js_sys::Object::keys(options.unchecked_ref::<js_sys::Object>())
            .iter()
            .filter_map(|key| key.as_string())
        {
            if !["rules", "cache", "clock", "ids"].contains(&key.as_str()) {
                out.push(Violation::new(
                    key.clone(),
                    ViolationCode::UnknownField,
                    format!("unknown field `{key}`"),
                ));
            }
        }
        let cache_value = Reflect::get(&options, &JsValue::from_str("cache")).unwrap_or_default();
        let cache = if cache_value.is_null() || cache_value.is_undefined() {
            out.push(Violation::new(
                "cache",
                ViolationCode::Required,
                "is required",
            ));
            None
        } else {
            AnyCache::from_js(&cache_value)
                .map_err(|problems| out.extend(problems))
                .ok()
        };
        let clock = optional_function(&options, "clock", &mut out);
        let ids = optional_function(&options, "ids", &mut out);
        let rules_value = Reflect::get(&options, &JsValue::from_str("rules")).unwrap_or_default();
        if rules_value.is_null() || rules_value.is_undefined() {
            out.push(Violation::new(
                "rules",
                ViolationCode::Required,
                "is required",
            ));
        }
        let (Some(cache), true) = (cache, out.is_empty()) else {
            return Err(wire::invalid("the manager options are invalid", out));
        };
        let rules = Rules::clone(&*parse_rules(&rules_value)?);
        let clock = JsClock(Rc::new(ClockState {
            source: clock,
            last: Cell::new(0),
        }));
        let ids = JsIds(Rc::new(ids));
        Ok(ApprovalManager {
            inner: Rc::new(RefCell::new(Rc::new(Inner {
                manager: Manager::new(cache, clock.clone(), ids.clone(), rules),
                clock,
                ids,
            }))),
        })
    }

    /// The digest of the rules in force (recorded on every request).
    #[wasm_bindgen(getter, js_name = rulesDigest)]
    pub fn rules_digest(&self) -> String {
        self.current().manager.rules_digest().to_owned()
    }

    /// Validates, rate-limits, decides and stores a change filed by
    /// `principal`. With `idempotencyKey`, a repeat of the same change answers
    /// the first request; another change under the same key is `conflict`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn create(
        &self,
        change: Ts<PolicyChange>,
        principal: Ts<Principal>,
        options: Option<Ts<CreateOptions>>,
    ) -> Promise {
        let inner = self.current();
        let (change, principal) = (change.js_value(), principal.js_value());
        let options = options.map(|options| options.js_value());
        promise(async move {
            let principal = wire::principal(&principal)?;
            let key = wire::create_options(options)?;
            let change = wire::json(&change, "", "change")?;
            inner.clock.probe()?;
            let created = inner
                .manager
                .create(&change, &principal, key.as_deref())
                .await
                .map_err(core_error)?;
            wire::to_js(&created.request)
        })
    }

    /// The request with `id`, brought up to date with the clock; `null` when
    /// unknown.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest | null>")]
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        let inner = self.current();
        promise(async move {
            let id = wire::id(&id)?;
            inner.clock.probe()?;
            match inner.manager.get(&id).await.map_err(core_error)? {
                Some(request) => wire::to_js(&request),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// What `principal` may do now to the request `id`: `{ approve, reject,
    /// cancel, comment }`, each `null` when allowed, else `{ code, reason }`.
    /// Rejects with `not_found` when unknown.
    #[wasm_bindgen(js_name = allowedActions, unchecked_return_type = "Promise<AllowedActions>")]
    pub fn allowed_actions(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
    ) -> Promise {
        let inner = self.current();
        let principal = principal.js_value();
        promise(async move {
            let id = wire::id(&id)?;
            let principal = wire::principal(&principal)?;
            inner.clock.probe()?;
            let allowed = inner
                .manager
                .allowed_actions(&id, &principal)
                .await
                .map_err(core_error)?;
            wire::to_js(&allowed)
        })
    }

    /// What the rules draft `rules` would decide for the requests in this
    /// manager's cache: every pending one, then up to `options.limit`
    /// (1..=10000, default 1000) of the most recently decided ones, as the
    /// server's `POST /v1/rules/simulate` examines them. With
    /// `options.principals`, the warnings name the stages those principals
    /// could never meet. Resolves to `{ valid, errors, warnings, digest,
    /// examined, changed, items }`; stores nothing.
    #[wasm_bindgen(js_name = simulateRules, unchecked_return_type = "Promise<Simulation>")]
    pub fn simulate_rules(
        &self,
        #[wasm_bindgen(unchecked_param_type = "unknown")] rules: JsValue,
        #[wasm_bindgen(
            unchecked_optional_param_type = "{ limit?: number, principals?: Principal[] } | null"
        )]
        options: Option<JsValue>,
    ) -> Promise {
        let inner = self.current();
        promise(async move {
            let options = wire::options(options, "simulateRules options")?;
            let (limit, principals) =
                signoff_core::simulation::manager_options(options.as_ref()).map_err(core_error)?;
            let simulation = match wire::json_or_problems(&rules, "", "rules") {
                Ok(draft) => inner
                    .manager
                    .simulate_rules(&draft, limit, principals.as_deref())
                    .await
                    .map_err(core_error)?,
                Err(errors) => Simulation::invalid(errors),
            };
            wire::to_js(&simulation)
        })
    }

    /// Replaces the rules for `principal` (who needs the `admin` role) when
    /// `options.ifMatch` (a digest, quoted or not, or `*`) is the digest in
    /// force: the one stored in the cache, or this manager's when the cache
    /// holds none. The rules are stored in the cache, so every manager over
    /// it can load them (`storedRules`), and this manager decides with them
    /// from then on. Resolves to `{ digest, rules }` (the normalized
    /// document); rejects with `forbidden`, `precondition_failed` or
    /// `invalid_request`, in that order.
    #[wasm_bindgen(js_name = replaceRules, unchecked_return_type = "Promise<RulesInForce>")]
    pub fn replace_rules(
        &self,
        rules: Ts<Rules>,
        principal: Ts<Principal>,
        options: Option<Ts<ReplaceRulesOptions>>,
    ) -> Promise {
        let inner = self.current();
        let slot = Rc::clone(&self.inner);
        let rules = rules.js_value();
        let principal = principal.js_value();
        let options = options.map(|options| options.js_value());
        promise(async move {
            let principal = wire::principal(&principal)?;
            let if_match =
                wire::if_match(wire::options(options, "replaceRules options")?.as_ref())?;
            let document = wire::json(&rules, "", "rules")?;
            inner.clock.probe()?;
            let replaced = inner
                .manager
                .replace_rules(&document, &principal, if_match.as_ref())
                .await
                .map_err(core_error)?;
            let answer = wire::to_js(&replaced)?;
            let next = Inner {
                manager: Manager::with_digest(
                    inner.manager.cache().clone(),
                    inner.clock.clone(),
                    inner.ids.clone(),
                    replaced.rules,
                    replaced.digest,
                ),
                clock: inner.clock.clone(),
                ids: inner.ids.clone(),
            };
            *slot.borrow_mut() = Rc::new(next);
            Ok(answer)
        })
    }

    /// The rules stored in the cache by `replaceRules` (here or by another
    /// manager over the same cache), or `null` when none were stored:
    /// `{ digest, rules }`, to build a manager that decides with them.
    #[wasm_bindgen(js_name = storedRules, unchecked_return_type = "Promise<RulesInForce | null>")]
    pub fn stored_rules(&self) -> Promise {
        let inner = self.current();
        promise(async move {
            match inner
                .manager
                .stored_rules_in_force()
                .await
                .map_err(core_error)?
            {
                Some(rules) => wire::to_js(&rules),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// One page of requests: `{ items, nextCursor? }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Page>")]
    pub fn list(&self, options: Option<Ts<ListOptions>>) -> Promise {
        let inner = self.current();
        let options = options.map(|options| options.js_value());
        promise(async move {
            let options = wire::options(options, "listing query")?;
            let query = ListQuery::parse(options.as_ref()).map_err(core_error)?;
            inner.clock.probe()?;
            // The page as the core built it, items unparsed: a summary
            // view stays a summary.
            let page = inner.manager.list_raw(&query).await.map_err(core_error)?;
            wire::json_bytes_to_js(&page.to_json())
        })
    }

    /// Counts an approval by `principal`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn approve(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
        options: Option<Ts<ApproveOptions>>,
    ) -> Promise {
        let inner = self.current();
        let principal = principal.js_value();
        let options = options.map(|options| options.js_value());
        act(inner, id, principal, ActionName::Approve, move || {
            wire::options(options, "approval")
        })
    }

    /// Rejects the request; `reason` is required.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn reject(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
        options: Ts<RejectOptions>,
    ) -> Promise {
        let inner = self.current();
        let (principal, options) = (principal.js_value(), options.js_value());
        act(inner, id, principal, ActionName::Reject, move || {
            wire::json(&options, "", "rejection").map(Some)
        })
    }

    /// Cancels the request (its requester only).
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn cancel(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
    ) -> Promise {
        let inner = self.current();
        let principal = principal.js_value();
        act(inner, id, principal, ActionName::Cancel, || Ok(None))
    }

    /// Appends a comment, in any state.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn comment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
        options: Ts<CommentOptions>,
    ) -> Promise {
        let inner = self.current();
        let (principal, options) = (principal.js_value(), options.js_value());
        act(inner, id, principal, ActionName::Comment, move || {
            wire::json(&options, "", "comment").map(Some)
        })
    }

    /// One page of the event log after the event id `after` (from the
    /// oldest kept when absent), oldest first: `{ items, nextCursor? }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<EventPage>")]
    pub fn events(&self, options: Option<Ts<EventsOptions>>) -> Promise {
        let inner = self.current();
        let options = options.map(|options| options.js_value());
        promise(async move {
            let options = wire::options(options, "events query")?;
            let query = EventsQuery::parse(options.as_ref()).map_err(core_error)?;
            inner.clock.probe()?;
            let page = inner
                .manager
                .events(query.after.as_deref(), query.limit, None)
                .await
                .map_err(core_error)?;
            wire::to_js(&page)
        })
    }

    /// Closes the after-the-fact review of an emergency request:
    /// `{ outcome: "ratified" | "flagged", comment? }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn review(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
        options: Ts<ReviewOptions>,
    ) -> Promise {
        let inner = self.current();
        let (principal, options) = (principal.js_value(), options.js_value());
        act(inner, id, principal, ActionName::Review, move || {
            wire::json(&options, "", "review").map(Some)
        })
    }

    /// Replaces the change of a pending request (its requester only),
    /// deciding its level again with the manager's rules.
    #[wasm_bindgen(unchecked_return_type = "Promise<ApprovalRequest>")]
    pub fn amend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        principal: Ts<Principal>,
        change: Ts<PolicyChange>,
    ) -> Promise {
        let inner = self.current();
        let (principal, change) = (principal.js_value(), change.js_value());
        promise(async move {
            let principal = wire::principal(&principal)?;
            let id = wire::id(&id)?;
            let change = wire::json(&change, "", "change")?;
            inner.clock.probe()?;
            let request = inner
                .manager
                .amend(&id, &principal, &change)
                .await
                .map_err(core_error)?;
            wire::to_js(&request)
        })
    }

    /// Expires up to `limit` (default 100) pending requests past their
    /// `expiresAt`.
    #[wasm_bindgen(js_name = expireDue, unchecked_return_type = "Promise<ExpireReport>")]
    pub fn expire_due(&self, options: Option<Ts<ExpireOptions>>) -> Promise {
        let inner = self.current();
        let options = options.map(|options| options.js_value());
        promise(async move {
            let body = wire::options(options, "expiry sweep")?;
            let limit = parse_expire_limit(body.as_ref()).map_err(core_error)?;
            inner.clock.probe()?;
            let report = inner.manager.expire_due(limit).await.map_err(core_error)?;
            wire::to_js(&report)
        })
    }
}

/// Every problem of `change` (empty when valid), checked against `rules`
/// when given (which then must be valid).
#[wasm_bindgen(js_name = validateChange, unchecked_return_type = "Violation[]")]
pub fn validate_change(
    change: Ts<PolicyChange>,
    #[wasm_bindgen(unchecked_optional_param_type = "Rules | CompiledRules | null")] rules: Option<
        JsValue,
    >,
) -> Result<JsValue, JsValue> {
    let rules = match rules {
        Some(rules) if !rules.is_null() && !rules.is_undefined() => Some(parse_rules(&rules)?),
        _ => None,
    };
    let problems = match wire::json_or_problems(&change.js_value(), "", "change") {
        Ok(change) => PolicyChange::parse(&change, rules.as_deref())
            .err()
            .unwrap_or_default(),
        Err(problems) => problems,
    };
    wire::to_js(&problems)
}

/// Validation and level of `change` under `rules`, storing nothing:
/// `{ valid, errors, level, explanation }`. Throws `invalid_request` when the
/// rules are invalid.
#[wasm_bindgen(js_name = previewChange)]
pub fn preview_change(
    change: Ts<PolicyChange>,
    #[wasm_bindgen(unchecked_param_type = "Rules | CompiledRules")] rules: JsValue,
) -> Result<Ts<Preview>, JsValue> {
    let rules = parse_rules(&rules)?;
    let preview = match wire::json_or_problems(&change.js_value(), "", "change") {
        Ok(change) => signoff_core::preview(&change, &rules),
        Err(errors) => signoff_core::Preview {
            valid: false,
            errors,
            level: None,
            explanation: None,
        },
    };
    wire::to_js(&preview).map(Ts::new_unchecked)
}

/// What `principal` may do to `request` at `now` (epoch milliseconds,
/// default `Date.now()`): `{ approve, reject, cancel, comment }`, each `null`
/// when allowed, else `{ code, reason }` with the error the action would
/// throw. The core decides, exactly as the action itself would.
#[wasm_bindgen(js_name = allowedActions)]
pub fn allowed_actions(
    request: Ts<ApprovalRequest>,
    principal: Ts<Principal>,
    #[wasm_bindgen(unchecked_optional_param_type = "number | null")] now: Option<f64>,
) -> Result<Ts<AllowedActions>, JsValue> {
    let request = wire::json(&request.js_value(), "", "request")?;
    let request: ApprovalRequest = serde_json::from_value(request).map_err(|error| {
        wire::invalid(
            "the request is not a stored request",
            vec![Violation::new(
                "request",
                ViolationCode::InvalidFormat,
                error.to_string(),
            )],
        )
    })?;
    let principal = wire::principal(&principal.js_value())?;
    let now = wire::epoch_millis(now.unwrap_or_else(js_sys::Date::now)).ok_or_else(|| {
        wire::invalid(
            "now is not a time",
            vec![Violation::new(
                "now",
                ViolationCode::OutOfRange,
                "must be epoch milliseconds",
            )],
        )
    })?;
    let now = Timestamp::from_millis(now);
    wire::to_js(&AllowedActions::of(&request, &principal, now)).map(Ts::new_unchecked)
}

/// What the rules draft `rules` would decide for `requests` (stored requests,
/// as `get` and `list` give them), examined in the order given: `{ valid,
/// errors, warnings, digest, examined, changed, items }`, where `items` are
/// the requests whose level would change. With `options.principals`, the
/// warnings name the stages those principals could never meet. An invalid
/// draft is an answer (`valid: false` and its problems), not an error;
/// nothing is stored (docs/CONTRACT.md section 13).
#[wasm_bindgen(js_name = simulateRules)]
pub fn simulate_rules(
    #[wasm_bindgen(unchecked_param_type = "unknown")] rules: JsValue,
    #[wasm_bindgen(unchecked_param_type = "ApprovalRequest[]")] requests: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "{ principals?: Principal[] } | null")]
    options: Option<JsValue>,
) -> Result<Ts<Simulation>, JsValue> {
    let requests = wire::json(&requests, "requests", "requests")?;
    let requests: Vec<ApprovalRequest> = serde_json::from_value(requests).map_err(|error| {
        wire::invalid(
            "the requests are not stored requests",
            vec![Violation::new(
                "requests",
                ViolationCode::InvalidFormat,
                error.to_string(),
            )],
        )
    })?;
    let options = wire::options(options, "simulateRules options")?;
    let principals =
        signoff_core::simulation::principals_option(options.as_ref()).map_err(core_error)?;
    let simulation = match wire::json_or_problems(&rules, "", "rules") {
        Ok(draft) => signoff_core::simulate_rules(&draft, &requests, principals.as_deref()),
        Err(errors) => Simulation::invalid(errors),
    };
    wire::to_js(&simulation).map(Ts::new_unchecked)
}

/// Whether `principal` may replace the rules: `null`, or the `{ code,
/// reason }` that `replaceRules` would reject with.
#[wasm_bindgen(js_name = mayReplaceRules, unchecked_return_type = "Refusal | null")]
pub fn may_replace_rules(principal: Ts<Principal>) -> Result<JsValue, JsValue> {
    let principal = wire::principal(&principal.js_value())?;
    match signoff_core::rules_store::ensure_may_replace(&principal) {
        Ok(()) => Ok(JsValue::NULL),
        Err(error) => wire::to_js(&signoff_core::Refusal {
            code: error.code(),
            reason: error.to_string(),
        }),
    }
}

/// Every problem of a principal `{ id, roles }` (empty when valid): the
/// checks every method applies to the principal it is given.
#[wasm_bindgen(js_name = validatePrincipal, unchecked_return_type = "Violation[]")]
pub fn validate_principal(principal: Ts<Principal>) -> Result<JsValue, JsValue> {
    let problems = match wire::json_or_problems(&principal.js_value(), "principal", "principal") {
        Ok(document) => Principal::parse(&document, "principal")
            .err()
            .unwrap_or_default(),
        Err(problems) => problems,
    };
    wire::to_js(&problems)
}

/// Checks the audit chain of a request's history (a request as `get` and
/// `list` give it, or as exported, unknown fields included): `{ verified,
/// held, broken? }`, where `broken` is the first entry that does not hold,
/// `{ index, reason }`. The core judges, as `signoff audit verify` does.
#[wasm_bindgen(js_name = verifyHistory)]
pub fn verify_history(
    #[wasm_bindgen(unchecked_param_type = "ApprovalRequest | unknown")] request: JsValue,
) -> Result<Ts<HistoryVerification>, JsValue> {
    let request = wire::json(&request, "", "request")?;
    wire::to_js(&HistoryVerification::of(&request)).map(Ts::new_unchecked)
}

/// Every problem of a rules document (empty when valid). With
/// `options.principals`, a valid document's warnings follow: the stages
/// those principals could never meet, `{ path, code: "unsatisfiable",
/// message }`. A warning never makes the document invalid; tell them apart
/// by `code` (docs/CONTRACT.md section 10).
#[wasm_bindgen(
    js_name = validateRules,
    unchecked_return_type = "Array<Violation | RulesWarning>"
)]
pub fn validate_rules(
    rules: Ts<Rules>,
    #[wasm_bindgen(unchecked_optional_param_type = "{ principals?: Principal[] } | null")]
    options: Option<JsValue>,
) -> Result<JsValue, JsValue> {
    let options = wire::options(options, "validateRules options")?;
    let principals =
        signoff_core::simulation::principals_option(options.as_ref()).map_err(core_error)?;
    let findings = match wire::json_or_problems(&rules.js_value(), "", "rules") {
        Ok(document) => {
            signoff_core::simulation::RulesFindings::of(&document, principals.as_deref())
        }
        Err(problems) => signoff_core::simulation::RulesFindings::problems(problems),
    };
    wire::to_js(&findings)
}
