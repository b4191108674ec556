//! Rules what-if (docs/CONTRACT.md section 13): what a rules draft would
//! decide for requests already filed, without storing anything.
//!
//! [`simulate_rules`] is the pure decision, over requests the caller
//! gives (the JS package's `simulateRules`); [`Manager::simulate_rules`]
//! gathers them from the store first (the server's
//! `POST /v1/rules/simulate`): every pending request, and the most recently
//! decided ones up to a limit. Both answer the same [`Simulation`], and both
//! report the draft's warnings: stages the known principals could never meet.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::cache::Cache;
use crate::error::Error;
use crate::input::ListQuery;
use crate::manager::{Clock, IdSource, Manager};
use crate::request::{ApprovalRequest, Principal, Status};
use crate::rules::{LevelExplanation, Rules};
use crate::validation::{ObjectReader, Violation, expect_integer};

/// Bounds of the server's simulation.
pub mod limits {
    /// Decided requests examined when the caller gives no `limit`.
    pub const DEFAULT_DECIDED: u32 = 1000;
    /// The most decided requests one simulation examines.
    pub const MAX_DECIDED: u32 = 10_000;
}

/// The page size used to gather requests from the store.
const GATHER_PAGE: u32 = 500;

/// What a rules draft would do to the requests examined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Simulation {
    /// Whether the draft is a valid rules document.
    pub valid: bool,
    /// Every problem of the draft, in document order; empty when valid.
    pub errors: Vec<Violation>,
    /// What the draft allows but will not work as meant; never a refusal.
    pub warnings: Vec<RulesWarning>,
    /// The draft's digest; `null` when invalid.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub digest: Option<String>,
    /// How many requests were examined (none when the draft is invalid).
    pub examined: u32,
    /// How many of them would get another level.
    pub changed: u32,
    /// Those requests, in the order examined.
    pub items: Vec<LevelChange>,
}

impl Simulation {
    /// The answer for a draft that is not a valid rules document: its
    /// problems, and nothing examined.
    pub fn invalid(errors: Vec<Violation>) -> Self {
        Self {
            valid: false,
            errors,
            warnings: Vec::new(),
            digest: None,
            examined: 0,
            changed: 0,
            items: Vec::new(),
        }
    }
}

/// A request whose level the draft would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LevelChange {
    /// The request's id.
    #[cfg_attr(feature = "tsify", tsify(type = "string"))]
    pub id: Uuid,
    /// Its change's title.
    pub title: String,
    /// Its status now.
    pub status: Status,
    /// The level it was decided with.
    pub level: String,
    /// The level the draft would decide.
    pub new_level: String,
    /// Why the draft decides it.
    pub new_explanation: LevelExplanation,
}

/// Something a rules document allows but that will not work as meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulesWarning {
    /// Where, as in validation items (`levels[0].stages[1]`).
    pub path: String,
    /// What kind of warning.
    pub code: WarningCode,
    /// For people.
    pub message: String,
}

/// The kinds of [`RulesWarning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WarningCode {
    /// A stage the known principals could never meet.
    Unsatisfiable,
}

/// What `validateRules` finds in a rules document: its problems, then,
/// when it is valid and principals are given, its warnings. Written as one
/// array (problems first); a warning's `code` is `unsatisfiable`, never a
/// problem's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RulesFindings {
    /// Why the document is invalid (empty when valid).
    pub problems: Vec<Violation>,
    /// What a valid document allows but will not work as meant.
    pub warnings: Vec<RulesWarning>,
}

impl RulesFindings {
    /// The findings of `document`, its warnings judged against
    /// `principals` when given.
    pub fn of(document: &Value, principals: Option<&[Principal]>) -> Self {
        match Rules::parse(document) {
            Ok(rules) => Self {
                problems: Vec::new(),
                warnings: principals
                    .map(|principals| unsatisfiable_stages(&rules, principals))
                    .unwrap_or_default(),
            },
            Err(problems) => Self::problems(problems),
        }
    }

    /// The findings of a document that could not be read.
    pub fn problems(problems: Vec<Violation>) -> Self {
        Self {
            problems,
            warnings: Vec::new(),
        }
    }
}

impl Serialize for RulesFindings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.problems.len() + self.warnings.len()))?;
        for problem in &self.problems {
            seq.serialize_element(problem)?;
        }
        for warning in &self.warnings {
            seq.serialize_element(warning)?;
        }
        seq.end()
    }
}

/// The stages (and groups) of `rules` that `principals` could never meet:
/// fewer of them are eligible (escalation included) than the approvals the
/// stage or group needs, the requester not counted unless the level lets
/// the requester approve. The requester is assumed to be one of the
/// eligible principals, the case in which a small team deadlocks.
pub fn unsatisfiable_stages(rules: &Rules, principals: &[Principal]) -> Vec<RulesWarning> {
    let mut warnings = Vec::new();
    for (level_index, level) in rules.levels.iter().enumerate() {
        let requester_counts = level.separation().requester_may_approve;
        for (stage_index, stage) in level.stages.iter().enumerate() {
            let stage_path = format!("levels[{level_index}].stages[{stage_index}]");
            for (group_index, quorum) in stage.quorums().iter().enumerate() {
                let eligible = principals
                    .iter()
                    .filter(|principal| quorum.involves(&principal.roles))
                    .count();
                let available = if requester_counts {
                    eligible
                } else {
                    eligible.saturating_sub(1)
                };
                let needed = usize::try_from(quorum.required).unwrap_or(usize::MAX);
                if available >= needed {
                    continue;
                }
                let approvals = if needed == 1 { "approval" } else { "approvals" };
                let principals = if eligible == 1 {
                    "principal is"
                } else {
                    "principals are"
                };
                let requester = if requester_counts {
                    ""
                } else {
                    ", and the requester may not approve their own request"
                };
                let (path, what) = match quorum.group {
                    Some(group) => (
                        format!("{stage_path}.groups[{group_index}]"),
                        format!("group `{group}` of stage `{}`", stage.name),
                    ),
                    None => (stage_path.clone(), format!("stage `{}`", stage.name)),
                };
                warnings.push(RulesWarning {
                    path,
                    code: WarningCode::Unsatisfiable,
                    message: format!(
                        "{what} needs {needed} {approvals}, but only {eligible} known {principals} eligible{requester}"
                    ),
                });
            }
        }
    }
    warnings
}

/// What the rules document `draft` would decide for `requests`, which are
/// examined in the order given. `principals`, when known, are the ones the
/// warnings are judged against; without them there are no warnings.
pub fn simulate_rules(
    draft: &Value,
    requests: &[ApprovalRequest],
    principals: Option<&[Principal]>,
) -> Simulation {
    let rules = match Rules::parse(draft) {
        Ok(rules) => rules,
        Err(errors) => return Simulation::invalid(errors),
    };
    let items: Vec<LevelChange> = requests
        .iter()
        .filter_map(|request| {
            let determination = rules.determine(&request.change);
            let new_level = rules.levels.get(determination.level_index)?.name.clone();
            (new_level != request.level).then(|| LevelChange {
                id: request.id,
                title: request.change.title.clone(),
                status: request.status,
                level: request.level.clone(),
                new_level,
                new_explanation: determination.explanation,
            })
        })
        .collect();
    Simulation {
        valid: true,
        errors: Vec::new(),
        warnings: principals
            .map(|principals| unsatisfiable_stages(&rules, principals))
            .unwrap_or_default(),
        digest: Some(rules.digest()),
        examined: u32::try_from(requests.len()).unwrap_or(u32::MAX),
        changed: u32::try_from(items.len()).unwrap_or(u32::MAX),
        items,
    }
}

/// The body of a simulation: the rules draft, and how many decided requests
/// to examine.
// What `SimulationRequest::parse` reads; its doc comment is the schema's
// description.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationBody {
    /// The rules draft. Any JSON is taken: a draft that is not a valid rules
    /// document is answered with `valid: false` and its problems.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rules: Value,
    /// How many decided requests to examine: 1..=10000, 1000 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub limit: Option<u32>,
}

/// The body of the server's simulation: `{ rules, limit? }`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationRequest {
    /// The draft, any JSON: an invalid draft is an answer, not an error.
    pub rules: Value,
    /// How many decided requests to examine, 1..=10,000.
    pub limit: u32,
}

impl SimulationRequest {
    /// Reads the body, reporting every problem: `rules` is required, `limit`
    /// an integer in range, and no other field is allowed.
    pub fn parse(body: &Value) -> Result<Self, Error> {
        let mut out = Vec::new();
        let parsed = ObjectReader::new("", body, &mut out).and_then(|mut reader| {
            let rules = reader.required("rules", &mut out).cloned();
            let limit = match reader.optional("limit") {
                Some(value) => {
                    expect_integer("limit", value, 1, i64::from(limits::MAX_DECIDED), &mut out)
                        .and_then(|limit| u32::try_from(limit).ok())
                }
                None => Some(limits::DEFAULT_DECIDED),
            };
            reader.finish(&mut out);
            Some(Self {
                rules: rules?,
                limit: limit?,
            })
        });
        match parsed {
            Some(request) if out.is_empty() => Ok(request),
            _ => Err(Error::invalid("the simulation request is invalid", out)),
        }
    }
}

/// The options of the JS `simulateRules(rules, requests, options)`:
/// `{ principals? }`, each principal read as every build reads one
/// (`Principal::parse`). `None` (or `null`) means no principals are known,
/// and no warning is judged.
pub fn principals_option(options: Option<&Value>) -> Result<Option<Vec<Principal>>, Error> {
    read_options(options, false).map(|(_, principals)| principals)
}

/// The options of a manager's `simulateRules(rules, options)` in JS:
/// `{ limit?, principals? }`, `limit` the decided requests to examine
/// (1..=10,000, default 1000).
pub fn manager_options(options: Option<&Value>) -> Result<(u32, Option<Vec<Principal>>), Error> {
    read_options(options, true)
}

fn read_options(
    options: Option<&Value>,
    with_limit: bool,
) -> Result<(u32, Option<Vec<Principal>>), Error> {
    let mut limit = limits::DEFAULT_DECIDED;
    let Some(options) = options.filter(|options| !options.is_null()) else {
        return Ok((limit, None));
    };
    let mut out = Vec::new();
    let mut principals = None;
    if let Some(mut reader) = ObjectReader::new("", options, &mut out) {
        if with_limit && let Some(value) = reader.optional("limit") {
            let max = i64::from(limits::MAX_DECIDED);
            if let Some(read) = expect_integer("limit", value, 1, max, &mut out)
                .and_then(|read| u32::try_from(read).ok())
            {
                limit = read;
            }
        }
        if let Some(list) = reader.optional("principals") {
            principals = read_principals(list, &mut out);
        }
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok((limit, principals))
    } else {
        Err(Error::invalid("the simulation options are invalid", out))
    }
}

fn read_principals(list: &Value, out: &mut Vec<Violation>) -> Option<Vec<Principal>> {
    let Some(list) = list.as_array() else {
        out.push(Violation::new(
            "principals",
            crate::validation::ViolationCode::InvalidType,
            "must be an array of principals",
        ));
        return None;
    };
    let mut read = Vec::with_capacity(list.len());
    for (position, value) in list.iter().enumerate() {
        match Principal::parse(value, &format!("principals[{position}]")) {
            Ok(principal) => read.push(principal),
            Err(items) => out.extend(items),
        }
    }
    Some(read)
}

/// The statuses of decided requests.
const DECIDED: [Status; 4] = [
    Status::Approved,
    Status::Rejected,
    Status::Cancelled,
    Status::Expired,
];

impl<C: Cache, K: Clock, I: IdSource> Manager<C, K, I> {
    /// [`simulate_rules`] over the store: every pending request (in listing
    /// order), then up to `decided_limit` (1..=10,000) of the most recently
    /// updated decided ones (most recent first, ties by id). An invalid draft
    /// reads nothing.
    pub async fn simulate_rules(
        &self,
        draft: &Value,
        decided_limit: u32,
        principals: Option<&[Principal]>,
    ) -> Result<Simulation, Error> {
        if !(1..=limits::MAX_DECIDED).contains(&decided_limit) {
            return Err(Error::invalid(
                "the simulation's limit is out of range",
                vec![Violation::new(
                    "limit",
                    crate::validation::ViolationCode::OutOfRange,
                    format!("must be 1..={}", limits::MAX_DECIDED),
                )],
            ));
        }
        if Rules::parse(draft).is_err() {
            return Ok(simulate_rules(draft, &[], principals));
        }
        let mut requests = self.gather(Status::Pending, u32::MAX).await?;
        let mut decided = Vec::new();
        for status in DECIDED {
            decided.extend(self.gather(status, decided_limit).await?);
        }
        decided.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        decided.truncate(usize::try_from(decided_limit).unwrap_or(usize::MAX));
        requests.extend(decided);
        Ok(simulate_rules(draft, &requests, principals))
    }

    /// Up to `most` requests of `status`, in listing order.
    async fn gather(&self, status: Status, most: u32) -> Result<Vec<ApprovalRequest>, Error> {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let wanted = most.saturating_sub(u32::try_from(found.len()).unwrap_or(u32::MAX));
            if wanted == 0 {
                return Ok(found);
            }
            let page = self
                .list(&ListQuery {
                    status,
                    limit: wanted.min(GATHER_PAGE),
                    cursor,
                    ..ListQuery::default()
                })
                .await?;
            found.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::PolicyChange;
    use crate::time::Timestamp;
    use serde_json::json;

    fn draft(extra_rule: Option<Value>) -> Value {
        let mut rules =
            vec![json!({ "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" })];
        rules.extend(extra_rule);
        json!({
            "levels": [
                { "name": "auto", "ttlSeconds": 60, "stages": [] },
                { "name": "peer", "ttlSeconds": 60, "stages": [
                    { "name": "review", "requiredApprovals": 2, "eligibleRoles": ["eng"] }
                ]},
                { "name": "critical", "ttlSeconds": 60, "stages": [
                    { "name": "security", "requiredApprovals": 1, "eligibleRoles": ["sec"] }
                ]}
            ],
            "defaultLevel": "peer",
            "rules": rules
        })
    }

    fn filed(policy_type: &str, n: u128) -> ApprovalRequest {
        let rules = Rules::parse(&draft(None)).unwrap();
        let change = PolicyChange::parse(
            &json!({
                "policyId": format!("{policy_type}/p"), "policyType": policy_type,
                "changeKind": "update", "title": format!("change {n}"),
                "justification": "because it matters"
            }),
            None,
        )
        .unwrap();
        ApprovalRequest::create(
            Uuid::from_u128(n),
            change,
            &Principal::new("alice", &["eng"]),
            &rules,
            &rules.digest(),
            Timestamp::from_millis(1_000),
        )
        .unwrap()
    }

    #[test]
    fn the_documented_body_is_one_the_parser_takes() {
        for body in [
            SimulationBody {
                rules: json!({ "levels": [] }),
                limit: None,
            },
            SimulationBody {
                rules: json!({}),
                limit: Some(limits::MAX_DECIDED),
            },
        ] {
            let parsed = SimulationRequest::parse(&serde_json::to_value(&body).unwrap()).unwrap();
            assert_eq!(parsed.rules, body.rules);
            assert_eq!(parsed.limit, body.limit.unwrap_or(limits::DEFAULT_DECIDED));
        }
    }

    #[test]
    fn the_server_body_is_rules_and_an_optional_limit() {
        let body = SimulationRequest::parse(&json!({ "rules": { "x": 1 } })).unwrap();
        assert_eq!((body.rules, body.limit), (json!({ "x": 1 }), 1000));
        for (limit, ok) in [(1, true), (10_000, true), (0, false), (10_001, false)] {
            let parsed = SimulationRequest::parse(&json!({ "rules": {}, "limit": limit }));
            assert_eq!(parsed.is_ok(), ok, "{limit}");
        }
        for bad in [
            json!({}),
            json!({ "rules": {}, "extra": 1 }),
            json!([]),
            json!({ "rules": {}, "limit": "5" }),
        ] {
            let error = SimulationRequest::parse(&bad).unwrap_err();
            assert_eq!(
                error.code(),
                crate::error::ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn js_options_are_read_by_the_core() {
        let principals = json!({ "principals": [{ "id": "alice", "roles": ["eng"] }] });
        let read = principals_option(Some(&principals)).unwrap().unwrap();
        assert_eq!(read, vec![Principal::new("alice", &["eng"])]);
        assert_eq!(principals_option(None).unwrap(), None);
        assert_eq!(principals_option(Some(&Value::Null)).unwrap(), None);
        // `limit` belongs to a manager's simulation only.
        assert!(principals_option(Some(&json!({ "limit": 5 }))).is_err());
        assert_eq!(
            manager_options(Some(&json!({ "limit": 5 }))).unwrap(),
            (5, None)
        );
        assert_eq!(manager_options(None).unwrap(), (1000, None));
        for bad in [
            json!({ "limit": 0 }),
            json!({ "limit": 10_001 }),
            json!({ "principals": {} }),
            json!({ "principals": [{ "id": "system", "roles": [] }] }),
            json!({ "other": true }),
        ] {
            assert!(manager_options(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_requests_whose_level_changes_are_listed_in_order() {
        let requests = [filed("iam", 1), filed("docs", 2), filed("firewall", 3)];
        let stricter = draft(Some(json!({
            "name": "firewall", "when": { "policyTypes": ["firewall"] }, "level": "critical"
        })));
        let simulation = simulate_rules(&stricter, &requests, None);
        assert!(simulation.valid);
        assert_eq!(simulation.examined, 3);
        assert_eq!(simulation.changed, 1);
        assert_eq!(simulation.items[0].id, Uuid::from_u128(3));
        assert_eq!(simulation.items[0].level, "peer");
        assert_eq!(simulation.items[0].new_level, "critical");
        assert_eq!(simulation.items[0].status, Status::Pending);
        assert_eq!(
            simulation.items[0].new_explanation.deciding_rule.as_deref(),
            Some("firewall")
        );
        assert_eq!(
            simulation.digest,
            Some(Rules::parse(&stricter).unwrap().digest())
        );
        // The same rules change nothing.
        let same = simulate_rules(&draft(None), &requests, None);
        assert_eq!((same.examined, same.changed), (3, 0));
    }

    #[test]
    fn an_invalid_draft_lists_its_problems_and_examines_nothing() {
        let simulation = simulate_rules(&json!({ "levels": [] }), &[filed("iam", 1)], None);
        assert!(!simulation.valid);
        assert!(!simulation.errors.is_empty());
        assert_eq!(simulation.digest, None);
        assert_eq!((simulation.examined, simulation.changed), (0, 0));
        assert!(simulation.items.is_empty());
    }

    #[test]
    fn stages_the_known_principals_cannot_meet_are_warnings() {
        let principals = [
            Principal::new("alice", &["eng"]),
            Principal::new("carol", &["sec"]),
        ];
        let simulation = simulate_rules(&draft(None), &[], Some(&principals));
        assert!(simulation.valid);
        let paths: Vec<&str> = simulation
            .warnings
            .iter()
            .map(|warning| warning.path.as_str())
            .collect();
        // Two eligible for 2 approvals, one for 1: the requester may be
        // one of them, and may not approve.
        assert_eq!(paths, ["levels[1].stages[0]", "levels[2].stages[0]"]);
        assert_eq!(
            simulation.warnings[0].message,
            "stage `review` needs 2 approvals, but only 1 known principal is eligible, \
             and the requester may not approve their own request"
        );
        assert!(
            simulation
                .warnings
                .iter()
                .all(|warning| warning.code == WarningCode::Unsatisfiable)
        );
        // Without principals, nothing is judged.
        assert!(simulate_rules(&draft(None), &[], None).warnings.is_empty());
        let json = serde_json::to_value(&simulation.warnings[0]).unwrap();
        assert_eq!(json["code"], "unsatisfiable");
    }

    /// `validateRules` gives problems and warnings in one array: problems
    /// only for an invalid document, warnings only with principals.
    #[test]
    fn rules_findings_are_problems_then_warnings() {
        let principals = [
            Principal::new("alice", &["eng"]),
            Principal::new("carol", &["sec"]),
        ];
        let valid = draft(None);
        let with = serde_json::to_value(RulesFindings::of(&valid, Some(&principals))).unwrap();
        let codes: Vec<&str> = with
            .as_array()
            .unwrap()
            .iter()
            .map(|finding| finding["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["unsatisfiable", "unsatisfiable"]);
        assert_eq!(with[0]["path"], "levels[1].stages[0]");
        assert_eq!(RulesFindings::of(&valid, None), RulesFindings::default());
        let mut broken = valid.clone();
        broken["defaultLevel"] = Value::from("nowhere");
        let findings = RulesFindings::of(&broken, Some(&principals));
        assert!(!findings.problems.is_empty());
        assert!(findings.warnings.is_empty());
    }
}
