//! The WebAssembly component the native host runs (WIT in `wasm/wit/`).
//!
//! Each export runs one operation of a core [`Manager`] over the host's
//! imports: the cache, the clock, the ids and the rules all come from the
//! host ([`imports`]). The host reuses an instance for many calls (one at a
//! time), so the managers are kept between calls: the one that decides from
//! the rules is rebuilt only when the host reports rules with another
//! digest, and they hold nothing else (all other state lives behind the
//! imports). Values cross the boundary as JSON text written and read by the
//! core's own types, errors as the core's `Error` in JSON. The core's futures
//! never pend here (the imports are synchronous for the guest), so
//! [`imports::block_on`] polls them once.

mod imports;

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;
use signoff_core::input::{ActionName, parse_action};
use signoff_core::{Error, IfMatch, ListQuery, Manager, Principal, Rules, Violation};

use bindings::exports::signoff::engine::manager::{Action, Guest, RulesInfo};
use imports::{HostCache, HostClock, HostIds, block_on, host_layout};

#[allow(
    unsafe_code,
    reason = "the canonical ABI glue that wit-bindgen generates is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "engine",
    });
}

/// The type that exports the `manager` interface.
struct SignoffEngine;

#[allow(
    unsafe_code,
    reason = "the exported canonical ABI functions that wit-bindgen generates are unsafe"
)]
mod export {
    use super::SignoffEngine;
    super::bindings::export!(SignoffEngine with_types_in super::bindings);
}

type HostManager = Manager<HostCache, HostClock, HostIds>;

/// Which rules an operation needs.
#[derive(Clone, Copy)]
enum Needs {
    /// The rules in force: creating, amending and previewing decide from
    /// them, and reading or acting on behalf of a principal needs their
    /// `visibility`. (An instance keeps the parsed rules by digest, so this
    /// costs a digest comparison unless the rules changed.)
    Rules,
    /// None: the operations that work from what the stored request recorded
    /// when it was decided (its stages) and read on behalf of nobody in
    /// particular skip reading and validating the rules document. The
    /// conformance vectors check these answers against a native manager
    /// that holds the real rules.
    Nothing,
}

thread_local! {
    /// The manager over the rules this instance last read, with their
    /// digest: the host sends a document only when its digest differs, so a
    /// reused instance deserializes each version of the rules once.
    static DECIDING: RefCell<Option<Rc<HostManager>>> = const { RefCell::new(None) };
    /// The manager of the operations that need no rules, made once.
    static RULELESS: RefCell<Option<Rc<HostManager>>> = const { RefCell::new(None) };
}

/// The manager over the rules in force, parsed only when their digest is not
/// the one this instance holds.
fn deciding_manager() -> Result<Rc<HostManager>, Error> {
    let layout = host_layout()?;
    let retention = bindings::signoff::engine::host::event_retention_ms();
    let held = DECIDING
        .with_borrow(Clone::clone)
        .filter(|manager| manager.layout() == layout && manager.event_retention_ms() == retention);
    let known = held
        .as_ref()
        .map(|manager| manager.rules_digest().to_owned());
    let in_force = bindings::signoff::engine::host::rules(known.as_deref());
    let (Some(document), digest) = (in_force.document, in_force.digest) else {
        return held.ok_or_else(|| {
            Error::Internal("the host sent no rules although the guest holds none".to_owned())
        });
    };
    // The host serves the normalized document that `validate-rules`
    // returned, with the digest it returned, so reading it back needs no
    // second validation and no second digest.
    let rules = serde_json::from_str::<Rules>(&document).map_err(|error| {
        Error::Internal(format!(
            "the rules in force are not a normalized rules document: {error}"
        ))
    })?;
    let manager = Rc::new(
        Manager::with_digest(HostCache, HostClock, HostIds, rules, digest)
            .with_layout(layout)
            .with_event_retention(retention),
    );
    DECIDING.set(Some(Rc::clone(&manager)));
    Ok(manager)
}

/// A manager over the imports.
fn manager(needs: Needs) -> Result<Rc<HostManager>, Error> {
    match needs {
        Needs::Rules => deciding_manager(),
        Needs::Nothing => {
            let layout = host_layout()?;
            Ok(RULELESS.with_borrow_mut(|held| {
                if held
                    .as_ref()
                    .is_some_and(|manager| manager.layout() != layout)
                {
                    *held = None;
                }
                Rc::clone(held.get_or_insert_with(|| {
                    Rc::new(
                        Manager::new(
                            HostCache,
                            HostClock,
                            HostIds,
                            Rules {
                                levels: Vec::new(),
                                default_level: String::new(),
                                rules: Vec::new(),
                                policy_types: None,
                                rate_limit: None,
                                visibility: None,
                            },
                        )
                        .with_layout(layout),
                    )
                }))
            }))
        }
    }
}

/// Parses JSON text given by the host; text that is not JSON is the caller's
/// mistake, reported like any other invalid input.
fn parse_json(text: &str, what: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|error| {
        Error::invalid(
            format!("the {what} is not JSON"),
            vec![Violation::new(
                "",
                signoff_core::ViolationCode::InvalidType,
                format!("is not JSON: {error}"),
            )],
        )
    })
}

/// The principal the host names, checked as every build checks one.
fn parse_principal(text: &str) -> Result<Principal, Error> {
    Principal::parse(&parse_json(text, "principal")?, "principal")
        .map_err(|items| Error::invalid("the principal is invalid", items))
}

/// The core's error as the host reads it.
fn error_json(error: &Error) -> String {
    serde_json::to_string(error)
        .unwrap_or_else(|_| r#"{"code":"internal","data":"an error did not serialize"}"#.to_owned())
}

/// An answer as JSON text.
fn answer_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|error| Error::Internal(format!("an answer did not serialize: {error}")))
}

/// Runs one operation to completion: its answer as JSON, or its error.
fn run<T: Serialize>(
    needs: Needs,
    operation: impl AsyncFnOnce(Rc<HostManager>) -> Result<T, Error>,
) -> Result<String, String> {
    manager(needs)
        .and_then(|manager| block_on(operation(manager)))
        .and_then(|value| answer_json(&value))
        .map_err(|error| error_json(&error))
}

/// A normalized rules document with its digest.
fn rules_info(rules: &Rules, digest: String) -> Result<RulesInfo, Error> {
    Ok(RulesInfo {
        digest,
        document: answer_json(rules)?,
    })
}

impl Guest for SignoffEngine {
    fn preview(change: String) -> Result<String, String> {
        run(Needs::Rules, async |manager| {
            let change = parse_json(&change, "change")?;
            Ok(signoff_core::preview(&change, manager.rules()))
        })
    }

    fn validate_rules(document: String) -> Result<RulesInfo, String> {
        let invalid = |items: Vec<Violation>| {
            serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
        };
        let rules = Rules::parse_str(&document).map_err(invalid)?;
        rules_info(&rules, rules.digest()).map_err(|error| {
            invalid(vec![Violation::new(
                "",
                signoff_core::ViolationCode::InvalidType,
                format!("cannot be normalized: {error}"),
            )])
        })
    }

    fn validate_principal(principal: String) -> String {
        let items = match parse_json(&principal, "principal") {
            Ok(document) => Principal::parse(&document, "principal")
                .err()
                .unwrap_or_default(),
            Err(Error::InvalidRequest { details, .. }) => details,
            Err(_) => Vec::new(),
        };
        serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
    }

    fn create(
        change: String,
        principal: String,
        idempotency_key: Option<String>,
    ) -> Result<String, String> {
        run(Needs::Rules, async |manager| {
            let change = parse_json(&change, "change")?;
            let principal = parse_principal(&principal)?;
            manager
                .create(&change, &principal, idempotency_key.as_deref())
                .await
        })
    }

    fn get(id: String, viewer: Option<String>) -> Result<Option<String>, String> {
        // Who may see what is the rules' (`visibility`).
        let needs = if viewer.is_some() {
            Needs::Rules
        } else {
            Needs::Nothing
        };
        let answer = manager(needs)
            .and_then(|manager| {
                let viewer = viewer.as_deref().map(parse_principal).transpose()?;
                block_on(manager.get_as(&id, viewer.as_ref()))
            })
            .and_then(|request| request.as_ref().map(answer_json).transpose());
        answer.map_err(|error| error_json(&error))
    }

    fn list(query: String) -> Result<Vec<u8>, String> {
        // The rules say who may see what (`visibility`).
        let page = manager(Needs::Rules).and_then(|manager| {
            let query = parse_json(&query, "list query")?;
            let query = ListQuery::parse(Some(&query))?;
            block_on(manager.list_raw(&query))
        });
        page.map(|page| page.to_json())
            .map_err(|error| error_json(&error))
    }

    fn amend(id: String, principal: String, change: String) -> Result<String, String> {
        run(Needs::Rules, async |manager| {
            let change = parse_json(&change, "change")?;
            let principal = parse_principal(&principal)?;
            manager.amend(&id, &principal, &change).await
        })
    }

    fn act(
        action: Action,
        id: String,
        principal: String,
        body: Option<String>,
    ) -> Result<String, String> {
        let name = match action {
            Action::Approve => ActionName::Approve,
            Action::Reject => ActionName::Reject,
            Action::Cancel => ActionName::Cancel,
            Action::Comment => ActionName::Comment,
            Action::Review => ActionName::Review,
        };
        // The rules say who may see what (`visibility`).
        run(Needs::Rules, async |manager| {
            // The body is judged before the stored request, as section 9
            // orders the errors.
            let body = body
                .as_deref()
                .map(|text| parse_json(text, "body"))
                .transpose()?;
            let action = parse_action(name, body.as_ref())?;
            let principal = parse_principal(&principal)?;
            manager.act(&id, &principal, action).await
        })
    }

    fn events(after: Option<String>, limit: u32, viewer: Option<String>) -> Result<String, String> {
        // The rules say who may see what (`visibility`).
        run(Needs::Rules, async |manager| {
            let viewer = viewer.as_deref().map(parse_principal).transpose()?;
            manager
                .events(after.as_deref(), limit, viewer.as_ref())
                .await
        })
    }

    fn latest_event() -> Result<Option<String>, String> {
        manager(Needs::Nothing)
            .and_then(|manager| block_on(manager.latest_event_id()))
            .map_err(|error| error_json(&error))
    }

    fn allowed_actions(id: String, principal: String) -> Result<String, String> {
        run(Needs::Rules, async |manager| {
            let principal = parse_principal(&principal)?;
            manager.allowed_actions(&id, &principal).await
        })
    }

    fn replace_rules(
        document: String,
        principal: String,
        if_match: Option<Vec<String>>,
    ) -> Result<RulesInfo, String> {
        let replaced = manager(Needs::Rules).and_then(|manager| {
            let document = parse_json(&document, "rules document")?;
            let principal = parse_principal(&principal)?;
            let if_match = if_match.map(|values| IfMatch::parse(values.iter().map(String::as_str)));
            let replaced =
                block_on(manager.replace_rules(&document, &principal, if_match.as_ref()))?;
            rules_info(&replaced.rules, replaced.digest)
        });
        replaced.map_err(|error| error_json(&error))
    }

    fn simulate_rules(draft: String, limit: u32, principals: String) -> Result<String, String> {
        run(Needs::Nothing, async |manager| {
            let draft = parse_json(&draft, "rules draft")?;
            // The host's principals, each already read by `Principal::parse`.
            let principals: Option<Vec<Principal>> = serde_json::from_str(&principals)
                .map_err(|error| Error::Internal(format!("the principals: {error}")))?;
            manager
                .simulate_rules(&draft, limit, principals.as_deref())
                .await
        })
    }

    fn expire_due(limit: u32) -> Result<String, String> {
        run(Needs::Nothing, async |manager| {
            manager.expire_due(limit).await
        })
    }

    fn oldest_pending() -> Result<Option<i64>, String> {
        let oldest = manager(Needs::Nothing).and_then(|manager| block_on(manager.oldest_pending()));
        oldest
            .map(|oldest| oldest.map(|time| time.as_millis()))
            .map_err(|error| error_json(&error))
    }
}
