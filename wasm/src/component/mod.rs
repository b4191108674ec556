//! The WebAssembly component the native host runs (WIT in `wasm/wit/`).
//!
//! Each export runs one operation of a core [`Manager`] over the host's
//! imports: the cache, the clock, the ids and the rules all come from the
//! host ([`imports`]). The host reuses an instance for many calls (one at a
//! time), so the managers are kept between calls: the one that decides from
//! the rules is rebuilt only when the host reports rules with another
//! digest, and they hold nothing else (all other state lives behind the
//! imports). The answers are converted to WIT types in one place
//! ([`convert`]). The core's futures never pend here (the imports are
//! synchronous for the guest), so [`imports::block_on`] polls them once.

mod convert;
mod imports;

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;
use signoff_core::input::{ActionName, parse_action};
use signoff_core::{Error, ListQuery, Manager, Rules};

use bindings::exports::signoff::engine::manager::{
    ApprovalRequest, ChangePreview, Created, Error as WitError, ExpireReport, Guest, Principal,
    RulesInfo, Timestamp, Violation,
};
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
    /// The rules in force: creating and previewing decide from them.
    Rules,
    /// None: every other operation works from what the stored request
    /// recorded when it was decided (its stages), so the guest skips reading
    /// and validating the rules document, the largest fixed cost of a call.
    /// The conformance vectors check these answers against a native manager
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
    let held = DECIDING
        .with_borrow(Clone::clone)
        .filter(|manager| manager.layout() == layout);
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
        Manager::with_digest(HostCache, HostClock, HostIds, rules, digest).with_layout(layout),
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
            vec![signoff_core::Violation::new(
                "",
                signoff_core::ViolationCode::InvalidType,
                format!("is not JSON: {error}"),
            )],
        )
    })
}

fn parse_body(body: Option<&str>) -> Result<Option<Value>, Error> {
    body.map(|text| parse_json(text, "body")).transpose()
}

/// approve, reject, cancel and comment: the body is judged before the
/// stored request, as the specification orders their errors.
fn act(
    name: ActionName,
    id: String,
    principal: Principal,
    body: Option<String>,
) -> Result<ApprovalRequest, WitError> {
    let principal = convert::principal(principal);
    run(
        Needs::Nothing,
        async |manager| {
            let action = parse_action(name, parse_body(body.as_deref())?.as_ref())?;
            manager.act(&id, &principal, action).await
        },
        convert::request,
    )
}

/// Runs one operation to completion and converts its answer.
fn run<T, W>(
    needs: Needs,
    operation: impl AsyncFnOnce(Rc<HostManager>) -> Result<T, Error>,
    to_wit: impl FnOnce(T) -> W,
) -> Result<W, WitError> {
    let outcome = manager(needs).and_then(|manager| block_on(operation(manager)));
    outcome.map(to_wit).map_err(convert::error)
}

impl Guest for SignoffEngine {
    fn preview(change: String) -> Result<ChangePreview, WitError> {
        run(
            Needs::Rules,
            async |manager| {
                let change = parse_json(&change, "change")?;
                Ok(signoff_core::preview(&change, manager.rules()))
            },
            convert::preview,
        )
    }

    fn validate_rules(document: String) -> Result<RulesInfo, Vec<Violation>> {
        let rules = Rules::parse_str(&document).map_err(|violations| {
            violations
                .iter()
                .map(convert::violation)
                .collect::<Vec<_>>()
        })?;
        let normalized = serde_json::to_string(&rules).map_err(|error| {
            vec![convert::violation(&signoff_core::Violation::new(
                "",
                signoff_core::ViolationCode::InvalidType,
                format!("cannot be normalized: {error}"),
            ))]
        })?;
        Ok(RulesInfo {
            digest: rules.digest(),
            document: normalized,
        })
    }

    fn create(
        change: String,
        principal: Principal,
        idempotency_key: Option<String>,
    ) -> Result<Created, WitError> {
        let principal = convert::principal(principal);
        run(
            Needs::Rules,
            async |manager| {
                let change = parse_json(&change, "change")?;
                manager
                    .create(&change, &principal, idempotency_key.as_deref())
                    .await
            },
            convert::created,
        )
    }

    fn get(id: String) -> Result<Option<ApprovalRequest>, WitError> {
        run(
            Needs::Nothing,
            async |manager| manager.get(&id).await,
            |request| request.map(convert::request),
        )
    }

    fn list(query: String) -> Result<Vec<u8>, WitError> {
        run(
            Needs::Nothing,
            async |manager| {
                let query = parse_json(&query, "list query")?;
                let query = ListQuery::parse(Some(&query))?;
                manager.list_raw(&query).await
            },
            |page| page.to_json(),
        )
    }

    fn approve(
        id: String,
        principal: Principal,
        body: Option<String>,
    ) -> Result<ApprovalRequest, WitError> {
        act(ActionName::Approve, id, principal, body)
    }

    fn reject(
        id: String,
        principal: Principal,
        body: Option<String>,
    ) -> Result<ApprovalRequest, WitError> {
        act(ActionName::Reject, id, principal, body)
    }

    fn cancel(
        id: String,
        principal: Principal,
        body: Option<String>,
    ) -> Result<ApprovalRequest, WitError> {
        act(ActionName::Cancel, id, principal, body)
    }

    fn comment(
        id: String,
        principal: Principal,
        body: Option<String>,
    ) -> Result<ApprovalRequest, WitError> {
        act(ActionName::Comment, id, principal, body)
    }

    fn expire_due(limit: u32) -> Result<ExpireReport, WitError> {
        run(
            Needs::Nothing,
            async |manager| manager.expire_due(limit).await,
            convert::expire_report,
        )
    }

    fn oldest_pending() -> Result<Option<Timestamp>, WitError> {
        run(
            Needs::Nothing,
            async |manager| manager.oldest_pending().await,
            |oldest| oldest.map(|time| time.as_millis()),
        )
    }
}
