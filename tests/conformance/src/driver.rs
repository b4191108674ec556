//! Running the cases through an [`Implementation`], and the report.

use std::fmt;

use serde_json::{Map, Value};
use signoff_core::{Principal, Rules, Timestamp};
use uuid::Uuid;

use crate::compare::compare;
use crate::implementation::{Clock, IdList, Implementation, Outcome};
use crate::vectors::{VectorFile, expand, load, vectors_dir};

/// One failed case: where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The file name.
    pub file: String,
    /// The case's `name`.
    pub case: String,
    /// For a scenario failing in a step: the step's index.
    pub step: Option<usize>,
    /// For a scenario failing in a step: the step's `op`.
    pub op: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} › {}: ", self.file, self.case)?;
        if let Some(step) = self.step {
            write!(f, "step {step} ({}): ", self.op.as_deref().unwrap_or("?"))?;
        }
        f.write_str(&self.message)
    }
}

/// What a run found: how many cases ran, and every failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Cases run, failed or not.
    pub cases: usize,
    /// The failures, in file and case order.
    pub failures: Vec<Failure>,
}

impl Report {
    /// `Ok` when every case passed and at least `min_cases` ran; otherwise a
    /// message listing every failure (or the shortfall).
    pub fn verdict(&self, min_cases: usize) -> Result<(), String> {
        if !self.failures.is_empty() {
            let listed: Vec<String> = self.failures.iter().map(Failure::to_string).collect();
            return Err(format!(
                "{} of {} vectors failed:\n  {}",
                self.failures.len(),
                self.cases,
                listed.join("\n  ")
            ));
        }
        if self.cases < min_cases {
            return Err(format!(
                "only {} vectors ran, expected at least {min_cases}",
                self.cases
            ));
        }
        Ok(())
    }
}

/// Loads `tests/vectors` and runs every case through `implementation`.
pub async fn run_vectors<I: Implementation>(implementation: &I) -> Result<Report, String> {
    let files = load(&vectors_dir())?;
    Ok(run(implementation, &files).await)
}

/// Runs every case of `files` through `implementation`.
pub async fn run<I: Implementation>(implementation: &I, files: &[VectorFile]) -> Report {
    let mut report = Report::default();
    for file in files {
        for case in &file.cases {
            report.cases += 1;
            let name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            let result = match expand(case) {
                Ok(case) => run_case(implementation, &case).await,
                Err(why) => Err(CaseError::whole(why)),
            };
            if let Err(error) = result {
                report.failures.push(Failure {
                    file: file.name.clone(),
                    case: name,
                    step: error.step,
                    op: error.op,
                    message: error.message,
                });
            }
        }
    }
    report
}

/// Why a case failed, and in which step.
struct CaseError {
    step: Option<usize>,
    op: Option<String>,
    message: String,
}

impl CaseError {
    fn whole(message: String) -> Self {
        Self {
            step: None,
            op: None,
            message,
        }
    }
}

impl From<String> for CaseError {
    fn from(message: String) -> Self {
        Self::whole(message)
    }
}

/// The rules of a case, which must be valid.
pub(crate) fn parse_rules(value: &Value) -> Result<Rules, String> {
    Rules::parse(value).map_err(|items| format!("the case's rules are invalid: {items:?}"))
}

async fn run_case<I: Implementation>(implementation: &I, case: &Value) -> Result<(), CaseError> {
    match case["kind"].as_str() {
        Some("validateChange") => {
            let rules = match case.get("rules").filter(|rules| !rules.is_null()) {
                Some(rules) => Some(parse_rules(rules)?),
                None => None,
            };
            let found = implementation
                .validate_change(&case["change"], rules.as_ref())
                .await?;
            Ok(compare(&case["expect"], &found)?)
        }
        Some("validateRules") => {
            let found = implementation.validate_rules(&case["rules"]).await?;
            Ok(compare(&case["expect"], &found)?)
        }
        Some("validatePrincipal") => {
            let found = implementation
                .validate_principal(&case["principal"])
                .await?;
            Ok(compare(&case["expect"], &found)?)
        }
        Some("preview") => {
            let rules = parse_rules(&case["rules"])?;
            let found = implementation.preview(&case["change"], &rules).await?;
            Ok(compare(&case["expect"], &found)?)
        }
        Some("scenario") => run_scenario(implementation, case).await,
        other => Err(format!("unknown kind {other:?}").into()),
    }
}

async fn run_scenario<I: Implementation>(
    implementation: &I,
    case: &Value,
) -> Result<(), CaseError> {
    let rules = parse_rules(&case["rules"])?;
    let mut ids = Vec::new();
    for id in case["ids"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id: Uuid = id
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("`ids` holds {id}, not a UUID"))?;
        ids.push(id);
    }
    let steps = case["steps"]
        .as_array()
        .ok_or_else(|| "a scenario needs `steps`".to_owned())?;
    let clock = Clock::default();
    let ids = IdList::new(ids);
    let mut scenario = Scenario {
        implementation,
        store: implementation.open(&rules, &clock, &ids).await?,
        previous_cursor: None,
        previous_digest: None,
    };
    for (position, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap_or("?");
        let fail = |message: String| CaseError {
            step: Some(position),
            op: Some(op.to_owned()),
            message,
        };
        if let Some(at) = step.get("at").and_then(Value::as_str) {
            let time =
                Timestamp::parse_rfc3339(at).ok_or_else(|| fail(format!("bad time `{at}`")))?;
            clock.set(time);
        } else if position == 0 {
            return Err(fail("the first step needs `at`".into()));
        }
        let outcome = scenario.step(op, step).await;
        if ids.ran_out() {
            return Err(fail("the case's `ids` ran out".into()));
        }
        check_outcome(&step["expect"], &outcome.map_err(fail)?).map_err(fail)?;
    }
    Ok(())
}

/// A scenario in progress.
struct Scenario<'a, I: Implementation> {
    implementation: &'a I,
    store: I::Store,
    /// The `nextCursor` of the latest successful `list` step.
    previous_cursor: Option<String>,
    /// The `digest` of the latest successful `replaceRules` step.
    previous_digest: Option<String>,
}

impl<I: Implementation> Scenario<'_, I> {
    /// Runs one step. The `Err` is a broken vector or harness; the outcome is
    /// what the implementation answered.
    async fn step(&mut self, op: &str, step: &Value) -> Result<Outcome, String> {
        let implementation = self.implementation;
        let store = &mut self.store;
        let id = step["id"].as_str().unwrap_or_default();
        let body = step.get("body").filter(|body| !body.is_null());
        match op {
            "create" => {
                let key = step["idempotencyKey"].as_str();
                implementation
                    .create(store, &step["change"], &principal(step)?, key)
                    .await
            }
            "get" => implementation.get(store, id).await,
            "list" => {
                let query = self.query(step)?;
                let page = implementation.list(&mut self.store, &query).await?;
                if let Ok(page) = &page {
                    self.previous_cursor = page["nextCursor"].as_str().map(str::to_owned);
                }
                Ok(page)
            }
            "approve" => {
                implementation
                    .approve(store, id, &principal(step)?, body)
                    .await
            }
            "reject" => {
                implementation
                    .reject(store, id, &principal(step)?, body)
                    .await
            }
            "cancel" => implementation.cancel(store, id, &principal(step)?).await,
            "comment" => {
                implementation
                    .comment(store, id, &principal(step)?, body)
                    .await
            }
            "review" => {
                implementation
                    .review(store, id, &principal(step)?, body)
                    .await
            }
            "amend" => {
                implementation
                    .amend(store, id, &principal(step)?, &step["change"])
                    .await
            }
            "events" => {
                let mut query = step
                    .get("query")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new()));
                if query["after"].as_str() == Some("$prev") {
                    query["after"] = Value::String(
                        self.previous_cursor
                            .clone()
                            .ok_or("`$prev` but the previous page returned no nextCursor")?,
                    );
                }
                let page = implementation.events(&mut self.store, &query).await?;
                if let Ok(page) = &page {
                    self.previous_cursor = page["nextCursor"].as_str().map(str::to_owned);
                }
                Ok(page)
            }
            "allowedActions" => {
                implementation
                    .allowed_actions(store, id, &principal(step)?)
                    .await
            }
            "expireDue" => implementation.expire_due(store, body).await,
            "simulateRules" => {
                let limit = match step.get("limit") {
                    Some(limit) => limit
                        .as_u64()
                        .and_then(|limit| u32::try_from(limit).ok())
                        .ok_or("`limit` must be a count")?,
                    None => signoff_core::simulation::limits::DEFAULT_DECIDED,
                };
                let principals = match step.get("principals") {
                    Some(list) => Some(
                        serde_json::from_value::<Vec<Principal>>(list.clone())
                            .map_err(|error| format!("bad `principals`: {error}"))?,
                    ),
                    None => None,
                };
                implementation
                    .simulate_rules(store, &step["rules"], limit, principals.as_deref())
                    .await
            }
            "replaceRules" => {
                let if_match = match step["ifMatch"].as_str() {
                    Some("$digest") => Some(
                        self.previous_digest
                            .clone()
                            .ok_or("`$digest` but no replaceRules step answered a digest")?,
                    ),
                    other => other.map(str::to_owned),
                };
                let answer = implementation
                    .replace_rules(
                        store,
                        &step["rules"],
                        &principal(step)?,
                        if_match.as_deref(),
                    )
                    .await?;
                if let Ok(answer) = &answer {
                    self.previous_digest = answer["digest"].as_str().map(str::to_owned);
                }
                Ok(answer)
            }
            "setRules" => {
                implementation.set_rules(store, &step["rules"]).await?;
                Ok(Ok(Value::Null))
            }
            other => Err(format!("unknown op `{other}`")),
        }
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

fn principal(step: &Value) -> Result<Principal, String> {
    serde_json::from_value(step["principal"].clone()).map_err(|e| format!("bad principal: {e}"))
}

/// Compares an outcome with a step's `expect` (`{ ok }` or `{ error }`).
fn check_outcome(expect: &Value, outcome: &Outcome) -> Result<(), String> {
    match (expect.get("ok"), expect.get("error"), outcome) {
        (Some(wanted), None, Ok(found)) => compare(wanted, found),
        (None, Some(wanted), Err(error)) => {
            let mut found = Map::new();
            found.insert("code".into(), Value::String(error.code.clone()));
            if let Some(details) = &error.details {
                found.insert("details".into(), details.clone());
            }
            compare(wanted, &Value::Object(found))
                .map_err(|why| format!("{why} ({})", error.message))
        }
        (Some(_), None, Err(error)) => Err(format!(
            "expected success, got error `{}`: {} {}",
            error.code,
            error.message,
            error.details.clone().unwrap_or(Value::Null)
        )),
        (None, Some(wanted), Ok(found)) => {
            Err(format!("expected error {wanted}, got success: {found}"))
        }
        _ => Err(format!(
            "`expect` must hold exactly one of `ok` and `error`, got {expect}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::native::Native;

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("the native core waited"),
        }
    }

    fn file(cases: Vec<Value>) -> VectorFile {
        VectorFile {
            name: "t.json".into(),
            description: "test".into(),
            cases,
        }
    }

    #[test]
    fn failures_name_file_case_step_and_op_and_cases_are_counted() {
        let rules = json!({
            "levels": [{ "name": "any", "ttlSeconds": 60, "stages": [] }],
            "defaultLevel": "any"
        });
        let files = [file(vec![
            json!({ "name": "valid rules", "kind": "validateRules", "rules": rules, "expect": [] }),
            json!({
                "name": "unknown get", "kind": "scenario", "rules": rules, "ids": [],
                "steps": [
                    { "op": "get", "at": "2026-01-01T00:00:00.000Z", "id": "x", "expect": { "ok": null } },
                    { "op": "get", "id": "x", "expect": { "error": { "code": "not_found" } } }
                ]
            }),
        ])];
        let report = block_on(run(&Native, &files));
        assert_eq!(report.cases, 2);
        assert_eq!(report.failures.len(), 1);
        let failure = &report.failures[0];
        assert_eq!(
            (failure.case.as_str(), failure.step, failure.op.as_deref()),
            ("unknown get", Some(1), Some("get"))
        );
        assert!(
            failure
                .to_string()
                .starts_with("t.json › unknown get: step 1 (get): ")
        );
        assert!(report.verdict(1).is_err());
    }

    #[test]
    fn too_few_cases_fail_the_verdict() {
        let report = Report {
            cases: 79,
            failures: Vec::new(),
        };
        assert!(report.verdict(80).is_err());
        assert!(report.verdict(79).is_ok());
    }
}
