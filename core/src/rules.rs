//! Rules: which approval level a change needs, and why.
//!
//! A rules document is data. [`Rules::parse`] validates it as a whole and
//! reports every problem; [`Rules::determine`] is the one place where a level
//! is decided; [`Rules::digest`] names a document independently of key order
//! and whitespace.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::change::{
    ChangeKind, MetadataValue, PolicyChange, Priority, is_environment, is_policy_type,
    parse_choice, parse_metadata,
};
use crate::validation::{
    CharPolicy, ObjectReader, TextRule, Violation, ViolationCode, check_text, expect_array,
    expect_bool, expect_integer, expect_str, index, join,
};

/// Limits of a rules document.
pub mod limits {
    /// At most this many levels.
    pub const MAX_LEVELS: usize = 64;
    /// At most this many stages in one level.
    pub const MAX_STAGES: usize = 16;
    /// At most this many rules.
    pub const MAX_RULES: usize = 1000;
    /// At most this many bytes of rules JSON.
    pub const MAX_BYTES: usize = 256 * 1024;
    /// `requiredApprovals` upper bound.
    pub const MAX_REQUIRED_APPROVALS: i64 = 1000;
    /// `ttlSeconds` upper bound: one year.
    pub const MAX_TTL_SECONDS: i64 = 31_536_000;
    /// Upper bound of each `rateLimit` field.
    pub const MAX_RATE_FIELD: i64 = 1_000_000_000;
    /// At most this many groups in one stage.
    pub const MAX_GROUPS: usize = 8;
    /// Level, stage, rule and role names: 1..=128 chars.
    pub const MAX_NAME_CHARS: usize = 128;
}

/// A validated rules document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rules {
    /// Levels, from least to most strict.
    pub levels: Vec<Level>,
    /// The level of a change that no rule matches.
    pub default_level: String,
    /// Rules, in document order.
    #[serde(default)]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Rule[] | null"))]
    pub rules: Vec<Rule>,
    /// The allowed policy types, when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub policy_types: Option<Vec<String>>,
    /// The per-requester token bucket, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "RateLimit | null"))]
    pub rate_limit: Option<RateLimit>,
    /// Who may see a request; absent means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Visibility | null"))]
    pub visibility: Option<Visibility>,
}

/// Who may see a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Visibility {
    /// Every principal sees every request.
    #[default]
    All,
    /// A principal sees the requests it filed, the ones it is eligible for
    /// somewhere in their level, and every one when it holds `auditor` or
    /// `admin`.
    Involved,
}

impl Visibility {
    /// Every visibility.
    pub const ALL: [Self; 2] = [Self::All, Self::Involved];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }
}

/// An approval level: how long a request may wait, and who must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Level {
    /// Unique name.
    pub name: String,
    /// How long a request may stay pending.
    pub ttl_seconds: u32,
    /// Stages passed one after another; none means auto-approved.
    pub stages: Vec<Stage>,
    /// How strictly duties are separated; absent means the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Separation | null"))]
    pub separation: Option<Separation>,
    /// Who may file a break-glass change at this level, and how soon it
    /// must be reviewed; absent means no break-glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "EmergencyPolicy | null"))]
    pub emergency: Option<EmergencyPolicy>,
}

impl Level {
    /// The level's separation of duties, defaults filled in.
    pub fn separation(&self) -> Separation {
        self.separation.unwrap_or_default()
    }

    /// Whether a principal with `roles` is eligible somewhere in the level:
    /// for a stage, a group, or an escalation of either.
    pub fn involves(&self, roles: &[String]) -> bool {
        self.stages.iter().any(|stage| stage.involves(roles))
    }
}

/// Separation of duties within a level. The defaults are the invariants of
/// the lifecycle; a small team may relax them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Separation {
    /// Whether the requester may approve (or reject) their own request.
    #[serde(default)]
    pub requester_may_approve: bool,
    /// Whether a principal approves a request at most once across all its
    /// stages (when `false`: at most once per stage).
    #[serde(default = "yes")]
    pub one_approval_per_principal: bool,
}

fn yes() -> bool {
    true
}

impl Default for Separation {
    fn default() -> Self {
        Self {
            requester_may_approve: false,
            one_approval_per_principal: true,
        }
    }
}

/// Break-glass: who may file a change that is approved at once, and how
/// soon someone must review it after the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmergencyPolicy {
    /// Roles that may file an emergency change.
    pub allowed_roles: Vec<String>,
    /// The review is due this long after filing.
    pub review_within_seconds: u32,
}

/// One stage of a level: either one quorum (`requiredApprovals` of
/// `eligibleRoles`) or `groups`, each its own quorum, all of which must be
/// met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stage {
    /// Unique within its level.
    pub name: String,
    /// Distinct approvals needed to pass a stage without groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub required_approvals: Option<u32>,
    /// Roles that may approve a stage without groups; empty means any
    /// principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub eligible_roles: Option<Vec<String>>,
    /// The groups of a stage with groups, in document order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "StageGroup[] | null"))]
    pub groups: Option<Vec<StageGroup>>,
    /// After the stage has been current this long, holders of
    /// `escalationRoles` are eligible too (for each group without its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub escalate_after_seconds: Option<u32>,
    /// The roles escalation makes eligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub escalation_roles: Option<Vec<String>>,
}

/// One group of a stage with groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageGroup {
    /// Unique within its stage.
    pub name: String,
    /// Distinct approvals needed to meet the group.
    pub required_approvals: u32,
    /// Roles that may approve for the group; empty means any principal.
    #[serde(default)]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub eligible_roles: Vec<String>,
    /// The group's own escalation delay (else the stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub escalate_after_seconds: Option<u32>,
    /// The group's own escalation roles (else the stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub escalation_roles: Option<Vec<String>>,
}

/// One quorum of a stage: the stage itself when it has no groups, else one
/// of its groups. Approvals count toward quorums; a stage is met when all
/// its quorums are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum<'a> {
    /// The group's name; `None` for a stage without groups.
    pub group: Option<&'a str>,
    /// Distinct approvals needed.
    pub required: u32,
    /// Roles that may approve; empty means any principal.
    pub eligible_roles: &'a [String],
    /// Seconds after the stage became current that escalation starts.
    pub escalate_after_seconds: Option<u32>,
    /// Roles eligible once escalated.
    pub escalation_roles: &'a [String],
}

impl Quorum<'_> {
    /// Whether a principal with `roles` may approve for this quorum, the
    /// escalation roles counted once `escalated`.
    pub fn admits(&self, roles: &[String], escalated: bool) -> bool {
        self.eligible_roles.is_empty()
            || self.eligible_roles.iter().any(|role| roles.contains(role))
            || (escalated
                && self
                    .escalation_roles
                    .iter()
                    .any(|role| roles.contains(role)))
    }

    /// Whether `roles` could ever approve for this quorum, escalation
    /// included.
    pub fn involves(&self, roles: &[String]) -> bool {
        self.admits(roles, true)
    }
}

impl Stage {
    /// A stage without groups (the wave 1 form).
    pub fn simple(name: &str, required_approvals: u32, eligible_roles: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            required_approvals: Some(required_approvals),
            eligible_roles: Some(
                eligible_roles
                    .iter()
                    .map(|role| (*role).to_owned())
                    .collect(),
            ),
            groups: None,
            escalate_after_seconds: None,
            escalation_roles: None,
        }
    }

    /// The stage's quorums: its groups in document order, or the stage
    /// itself.
    pub fn quorums(&self) -> Vec<Quorum<'_>> {
        let stage_roles = self.escalation_roles.as_deref().unwrap_or_default();
        match &self.groups {
            Some(groups) => groups
                .iter()
                .map(|group| {
                    let own = group.escalate_after_seconds.is_some();
                    Quorum {
                        group: Some(&group.name),
                        required: group.required_approvals,
                        eligible_roles: &group.eligible_roles,
                        escalate_after_seconds: if own {
                            group.escalate_after_seconds
                        } else {
                            self.escalate_after_seconds
                        },
                        escalation_roles: if own {
                            group.escalation_roles.as_deref().unwrap_or_default()
                        } else {
                            stage_roles
                        },
                    }
                })
                .collect(),
            None => vec![Quorum {
                group: None,
                required: self.required_approvals.unwrap_or(1),
                eligible_roles: self.eligible_roles.as_deref().unwrap_or_default(),
                escalate_after_seconds: self.escalate_after_seconds,
                escalation_roles: stage_roles,
            }],
        }
    }

    /// Whether a principal with `roles` is eligible for some quorum of the
    /// stage, escalation included.
    pub fn involves(&self, roles: &[String]) -> bool {
        self.quorums().iter().any(|quorum| quorum.involves(roles))
    }
}

/// A rule: when a change matches, it needs at least `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// The conditions, all of which must hold.
    pub when: Condition,
    /// The level this rule asks for.
    pub level: String,
}

/// A conjunction of optional conditions; the empty condition matches everything.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    /// The change's type is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub policy_types: Option<Vec<String>>,
    /// The change's kind is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "ChangeKind[] | null"))]
    pub change_kinds: Option<Vec<ChangeKind>>,
    /// The change has an environment, and it is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string[] | null"))]
    pub environments: Option<Vec<String>>,
    /// The policy id starts with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string | null"))]
    pub policy_id_prefix: Option<String>,
    /// The change has a risk score, and it is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub risk_score_at_least: Option<u8>,
    /// The change's priority is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Priority[] | null"))]
    pub priorities: Option<Vec<Priority>>,
    /// Each key is present in the change's metadata with an equal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "tsify",
        tsify(optional, type = "Record<string, MetadataValue> | null")
    )]
    pub metadata: Option<BTreeMap<String, MetadataValue>>,
}

impl Condition {
    /// Whether `change` satisfies every condition.
    pub fn matches(&self, change: &PolicyChange) -> bool {
        let contains = |list: &Option<Vec<String>>, value: &str| {
            list.as_ref()
                .is_none_or(|list| list.iter().any(|item| item == value))
        };
        contains(&self.policy_types, &change.policy_type)
            && self
                .change_kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&change.change_kind))
            && self.environments.as_ref().is_none_or(|environments| {
                change
                    .environment
                    .as_ref()
                    .is_some_and(|environment| environments.contains(environment))
            })
            && self
                .policy_id_prefix
                .as_ref()
                .is_none_or(|prefix| change.policy_id.starts_with(prefix.as_str()))
            && self
                .risk_score_at_least
                .is_none_or(|threshold| change.risk_score.is_some_and(|score| score >= threshold))
            && self
                .priorities
                .as_ref()
                .is_none_or(|priorities| priorities.contains(&change.priority))
            && self.metadata.as_ref().is_none_or(|wanted| {
                wanted.iter().all(|(key, value)| {
                    change
                        .metadata
                        .get(key)
                        .is_some_and(|found| metadata_equal(found, value))
                })
            })
    }
}

/// Metadata equality compares numbers by value, so `5` equals `5.0`.
fn metadata_equal(a: &MetadataValue, b: &MetadataValue) -> bool {
    match (a, b) {
        (MetadataValue::Number(x), MetadataValue::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The per-requester token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimit {
    /// Tokens refilled every `per_seconds`.
    pub requests: u32,
    /// The refill period.
    pub per_seconds: u32,
    /// Bucket size; defaults to `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The bucket size in force.
    pub fn capacity(&self) -> u32 {
        self.burst.unwrap_or(self.requests)
    }
}

/// A rule that matched a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchedRule {
    /// The rule's name.
    pub rule: String,
    /// The level it asks for.
    pub level: String,
}

/// Why a change needs its level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
pub struct LevelExplanation {
    /// Every matching rule, in document order.
    pub matched_rules: Vec<MatchedRule>,
    /// The first rule asking for the strictest level; `null` when no rule matched.
    // Written as `null` rather than left out, so the field is always there.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub deciding_rule: Option<String>,
    /// Whether the default level applied because no rule matched.
    pub default_used: bool,
    /// One sentence for people.
    pub summary: String,
}

/// The outcome of level determination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Determination {
    /// Index of the level in [`Rules::levels`].
    pub level_index: usize,
    /// The explanation to show and store.
    pub explanation: LevelExplanation,
}

const NAME: TextRule = TextRule {
    min: 1,
    max: limits::MAX_NAME_CHARS,
    trim: false,
    chars: CharPolicy::SingleLine,
};

impl Rules {
    /// Validates a rules document given as JSON text, reporting every problem.
    pub fn parse_str(text: &str) -> Result<Self, Vec<Violation>> {
        if text.len() > limits::MAX_BYTES {
            return Err(vec![too_large()]);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Self::parse(&value),
            Err(error) => Err(vec![Violation::new(
                "",
                ViolationCode::InvalidType,
                format!("is not JSON: {error}"),
            )]),
        }
    }

    /// Validates a rules document, reporting every problem in document order.
    pub fn parse(input: &Value) -> Result<Self, Vec<Violation>> {
        if compact_json_len(input, limits::MAX_BYTES) > limits::MAX_BYTES {
            return Err(vec![too_large()]);
        }
        let mut out = Vec::new();
        let Some(mut reader) = ObjectReader::new("", input, &mut out) else {
            return Err(out);
        };
        let levels_value = reader.required("levels", &mut out);
        let levels = levels_value.and_then(|value| parse_levels(value, &mut out));
        // Level references are checked against every named level, even when
        // some level has other problems, so that all problems show at once.
        let names = levels_value.map(declared_level_names);
        let default_level = reader
            .required_str("defaultLevel", &mut out)
            .and_then(|name| check_level_name("defaultLevel", name, names.as_deref(), &mut out));
        let policy_types = reader
            .optional("policyTypes")
            .and_then(|value| parse_names("policyTypes", value, Some(is_policy_type), &mut out));
        let rules = match reader.optional("rules") {
            Some(value) => parse_rules(value, names.as_deref(), policy_types.as_deref(), &mut out),
            None => Some(Vec::new()),
        };
        let rate_limit = reader
            .optional("rateLimit")
            .and_then(|value| parse_rate_limit(value, &mut out));
        let visibility = match reader.optional("visibility") {
            Some(value) => parse_choice(
                "visibility",
                value,
                &Visibility::ALL,
                Visibility::as_str,
                &mut out,
            ),
            None => None,
        };
        reader.finish(&mut out);
        match (levels, default_level, rules) {
            (Some(levels), Some(default_level), Some(rules)) if out.is_empty() => Ok(Self {
                levels,
                default_level,
                rules,
                policy_types,
                rate_limit,
                visibility,
            }),
            _ => Err(out),
        }
    }

    /// The level named `name`.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|level| level.name == name)
    }

    fn level_index(&self, name: &str) -> usize {
        // Validation guarantees every name resolves; 0 is never reached.
        self.levels
            .iter()
            .position(|level| level.name == name)
            .unwrap_or(0)
    }

    /// Decides the level of a valid change: the strictest level among the
    /// matching rules (the first such rule decides), else the default.
    pub fn determine(&self, change: &PolicyChange) -> Determination {
        let matched: Vec<(&Rule, usize)> = self
            .rules
            .iter()
            .filter(|rule| rule.when.matches(change))
            .map(|rule| (rule, self.level_index(&rule.level)))
            .collect();
        let deciding = matched
            .iter()
            .fold(None::<&(&Rule, usize)>, |best, candidate| match best {
                Some(best) if best.1 >= candidate.1 => Some(best),
                _ => Some(candidate),
            });
        let (level_index, summary) = match deciding {
            Some((rule, index)) => (
                *index,
                format!(
                    "{} of {} rules matched; `{}` decided level `{}`, the strictest among them",
                    matched.len(),
                    self.rules.len(),
                    rule.name,
                    rule.level
                ),
            ),
            None => (
                self.level_index(&self.default_level),
                format!(
                    "no rule matched; the default level `{}` applies",
                    self.default_level
                ),
            ),
        };
        Determination {
            level_index,
            explanation: LevelExplanation {
                matched_rules: matched
                    .iter()
                    .map(|(rule, _)| MatchedRule {
                        rule: rule.name.clone(),
                        level: rule.level.clone(),
                    })
                    .collect(),
                deciding_rule: deciding.map(|(rule, _)| rule.name.clone()),
                default_used: deciding.is_none(),
                summary,
            },
        }
    }

    /// The lowercase hex SHA-256 of the document's canonical JSON: keys sorted,
    /// no whitespace, absent and `null` fields omitted, defaults filled in,
    /// whole numbers written as integers.
    pub fn digest(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        sha256_hex(&canonical)
    }
}

/// The lowercase hex SHA-256 of `text`'s UTF-8 bytes: the form of every
/// digest and hash on the wire.
pub fn sha256_hex(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The length of `value` as compact JSON, counted without building the text;
/// counting stops soon after `limit` is passed, so a huge input costs little.
fn compact_json_len(value: &Value, limit: usize) -> usize {
    struct Counter {
        count: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.count = self.count.saturating_add(buf.len());
            if self.count > self.limit {
                Err(std::io::Error::other("over the limit"))
            } else {
                Ok(buf.len())
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { count: 0, limit };
    // An error only means the limit was passed; the count says by how much.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.count
}

/// The same words whether the document came as text or as a value, so every
/// build reports it identically.
fn too_large() -> Violation {
    Violation::new(
        "",
        ViolationCode::TooLarge,
        format!("rules must be at most {} bytes of JSON", limits::MAX_BYTES),
    )
}

/// Writes JSON with object keys sorted at every depth, whatever map type
/// serde_json was built with.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            out.push('{');
            for (position, key) in keys.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                write_canonical(&object[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(number) => out.push_str(&canonical_number(number)),
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A number as the canonical form writes it: a whole float within the range
/// where every integer is exact (|n| < 2^53) is written as an integer. A
/// JavaScript caller cannot tell `5` from `5.0`, so neither may a digest or an
/// idempotency comparison, or the builds would disagree.
fn canonical_number(number: &serde_json::Number) -> String {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match number.as_f64() {
        Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < EXACT => {
            format!("{}", float as i64)
        }
        _ => number.to_string(),
    }
}

/// Canonical JSON text of any value (sorted keys, `null` fields dropped), used
/// to compare idempotent bodies.
pub fn canonical_json(value: &Value) -> String {
    fn strip_nulls(value: &Value) -> Value {
        match value {
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .filter(|(_, item)| !item.is_null())
                    .map(|(key, item)| (key.clone(), strip_nulls(item)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
            scalar => scalar.clone(),
        }
    }
    let mut out = String::new();
    write_canonical(&strip_nulls(value), &mut out);
    out
}

/// The names of the levels of a raw `levels` value, ignoring malformed ones.
fn declared_level_names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|levels| {
            levels
                .iter()
                .filter_map(|level| level.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn check_level_name(
    path: &str,
    name: &str,
    levels: Option<&[String]>,
    out: &mut Vec<Violation>,
) -> Option<String> {
    let levels = levels?;
    if levels.iter().any(|level| level == name) {
        Some(name.to_owned())
    } else {
        out.push(Violation::new(
            path,
            ViolationCode::UnknownLevel,
            format!("`{name}` names no level"),
        ));
        None
    }
}

fn check_count(path: &str, count: usize, max: usize, what: &str, out: &mut Vec<Violation>) {
    if count > max {
        out.push(Violation::new(
            path,
            ViolationCode::TooMany,
            format!("must have at most {max} {what}, got {count}"),
        ));
    }
}

fn duplicate(path: String, name: &str, out: &mut Vec<Violation>) {
    out.push(Violation::new(
        path,
        ViolationCode::Duplicate,
        format!("`{name}` appears more than once"),
    ));
}

/// A list of distinct names, each optionally matching a format.
fn parse_names(
    path: &str,
    value: &Value,
    format: Option<fn(&str) -> bool>,
    out: &mut Vec<Violation>,
) -> Option<Vec<String>> {
    let items = expect_array(path, value, out)?;
    let before = out.len();
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let item_path = index(path, position);
        let Some(text) = expect_str(&item_path, item, out) else {
            continue;
        };
        let text = check_text(&item_path, text, NAME, out);
        if let Some(format) = format
            && !text.is_empty()
            && !format(&text)
        {
            out.push(Violation::new(
                item_path.clone(),
                ViolationCode::InvalidFormat,
                format!("`{text}` is not a valid name here"),
            ));
        }
        if !seen.insert(text.clone()) {
            duplicate(item_path, &text, out);
        }
        names.push(text);
    }
    (out.len() == before).then_some(names)
}

fn parse_levels(value: &Value, out: &mut Vec<Violation>) -> Option<Vec<Level>> {
    let items = expect_array("levels", value, out)?;
    let before = out.len();
    if items.is_empty() {
        out.push(Violation::new(
            "levels",
            ViolationCode::TooShort,
            "must name at least one level",
        ));
    }
    check_count("levels", items.len(), limits::MAX_LEVELS, "levels", out);
    let mut seen = HashSet::new();
    let mut levels = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let path = index("levels", position);
        let Some(mut reader) = ObjectReader::new(&path, item, out) else {
            continue;
        };
        let name = reader
            .required_str("name", out)
            .map(|name| check_text(&join(&path, "name"), name, NAME, out));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            duplicate(join(&path, "name"), name, out);
        }
        let ttl_seconds = reader.required("ttlSeconds", out).and_then(|value| {
            expect_integer(
                &join(&path, "ttlSeconds"),
                value,
                1,
                limits::MAX_TTL_SECONDS,
                out,
            )
        });
        let stages = reader.required("stages", out).and_then(|value| {
            // Escalation must start within the level's time to live; when
            // that is itself invalid, only the outer bound is checked.
            let ttl_bound = ttl_seconds.unwrap_or(limits::MAX_TTL_SECONDS);
            parse_stages(&join(&path, "stages"), value, ttl_bound, out)
        });
        let separation = reader
            .optional("separation")
            .and_then(|value| parse_separation(&join(&path, "separation"), value, out));
        let emergency = reader
            .optional("emergency")
            .and_then(|value| parse_emergency(&join(&path, "emergency"), value, out));
        reader.finish(out);
        if let (Some(name), Some(ttl), Some(stages)) = (name, ttl_seconds, stages) {
            levels.push(Level {
                name,
                ttl_seconds: u32::try_from(ttl).unwrap_or(u32::MAX),
                stages,
                separation,
                emergency,
            });
        }
    }
    (out.len() == before).then_some(levels)
}

fn parse_stages(
    path: &str,
    value: &Value,
    ttl_bound: i64,
    out: &mut Vec<Violation>,
) -> Option<Vec<Stage>> {
    let items = expect_array(path, value, out)?;
    let before = out.len();
    check_count(path, items.len(), limits::MAX_STAGES, "stages", out);
    let mut seen = HashSet::new();
    let mut stages = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let stage_path = index(path, position);
        let Some(mut reader) = ObjectReader::new(&stage_path, item, out) else {
            continue;
        };
        let name = reader
            .required_str("name", out)
            .map(|name| check_text(&join(&stage_path, "name"), name, NAME, out));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            duplicate(join(&stage_path, "name"), name, out);
        }
        let required_value = reader.optional("requiredApprovals");
        let roles_value = reader.optional("eligibleRoles");
        let groups_value = reader.optional("groups");
        let (required, roles, groups) = match groups_value {
            Some(groups_value) => {
                // The two forms exclude each other.
                for (field, present) in [
                    ("requiredApprovals", required_value.is_some()),
                    ("eligibleRoles", roles_value.is_some()),
                ] {
                    if present {
                        out.push(Violation::new(
                            join(&stage_path, field),
                            ViolationCode::NotAllowed,
                            "a stage with groups takes its approvals and roles from its groups",
                        ));
                    }
                }
                let groups =
                    parse_groups(&join(&stage_path, "groups"), groups_value, ttl_bound, out);
                (None, None, groups.map(Some))
            }
            None => {
                let required = match required_value {
                    Some(value) => quorum_size(&join(&stage_path, "requiredApprovals"), value, out),
                    None => {
                        out.push(Violation::new(
                            join(&stage_path, "requiredApprovals"),
                            ViolationCode::Required,
                            "is required (or `groups`)",
                        ));
                        None
                    }
                };
                let roles = match roles_value {
                    Some(value) => {
                        parse_names(&join(&stage_path, "eligibleRoles"), value, None, out)
                    }
                    None => Some(Vec::new()),
                };
                (required, roles, Some(None))
            }
        };
        let escalation = parse_escalation(&stage_path, &mut reader, ttl_bound, out);
        reader.finish(out);
        if let (Some(name), Some(groups), Some((escalate_after_seconds, escalation_roles))) =
            (name, groups, escalation)
        {
            stages.push(Stage {
                name,
                required_approvals: required,
                eligible_roles: roles,
                groups,
                escalate_after_seconds,
                escalation_roles,
            });
        }
    }
    (out.len() == before).then_some(stages)
}

/// A `requiredApprovals` value.
fn quorum_size(path: &str, value: &Value, out: &mut Vec<Violation>) -> Option<u32> {
    expect_integer(path, value, 1, limits::MAX_REQUIRED_APPROVALS, out)
        .and_then(|count| u32::try_from(count).ok())
}

fn parse_groups(
    path: &str,
    value: &Value,
    ttl_bound: i64,
    out: &mut Vec<Violation>,
) -> Option<Vec<StageGroup>> {
    let items = expect_array(path, value, out)?;
    let before = out.len();
    if items.is_empty() {
        out.push(Violation::new(
            path,
            ViolationCode::TooShort,
            "must name at least one group",
        ));
    }
    check_count(path, items.len(), limits::MAX_GROUPS, "groups", out);
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let group_path = index(path, position);
        let Some(mut reader) = ObjectReader::new(&group_path, item, out) else {
            continue;
        };
        let name = reader
            .required_str("name", out)
            .map(|name| check_text(&join(&group_path, "name"), name, NAME, out));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            duplicate(join(&group_path, "name"), name, out);
        }
        let required = reader
            .required("requiredApprovals", out)
            .and_then(|value| quorum_size(&join(&group_path, "requiredApprovals"), value, out));
        let roles = match reader.optional("eligibleRoles") {
            Some(value) => parse_names(&join(&group_path, "eligibleRoles"), value, None, out),
            None => Some(Vec::new()),
        };
        let escalation = parse_escalation(&group_path, &mut reader, ttl_bound, out);
        reader.finish(out);
        if let (Some(name), Some(required), Some(roles), Some((after, escalation_roles))) =
            (name, required, roles, escalation)
        {
            groups.push(StageGroup {
                name,
                required_approvals: required,
                eligible_roles: roles,
                escalate_after_seconds: after,
                escalation_roles,
            });
        }
    }
    (out.len() == before).then_some(groups)
}

/// A stage's or group's escalation: its delay and its roles, both or
/// neither.
type Escalation = (Option<u32>, Option<Vec<String>>);

/// `escalateAfterSeconds` and `escalationRoles`, which come together.
/// `None` when either has a problem.
fn parse_escalation(
    path: &str,
    reader: &mut ObjectReader<'_>,
    ttl_bound: i64,
    out: &mut Vec<Violation>,
) -> Option<Escalation> {
    let before = out.len();
    let after_value = reader.optional("escalateAfterSeconds");
    let roles_value = reader.optional("escalationRoles");
    let after_path = join(path, "escalateAfterSeconds");
    let roles_path = join(path, "escalationRoles");
    let after = after_value.and_then(|value| {
        expect_integer(&after_path, value, 1, ttl_bound, out)
            .and_then(|secs| u32::try_from(secs).ok())
    });
    let roles = roles_value.and_then(|value| {
        let roles = parse_names(&roles_path, value, None, out)?;
        if roles.is_empty() {
            out.push(Violation::new(
                roles_path.clone(),
                ViolationCode::TooShort,
                "must name at least one role",
            ));
            return None;
        }
        Some(roles)
    });
    match (after_value.is_some(), roles_value.is_some()) {
        (true, false) => out.push(Violation::new(
            roles_path,
            ViolationCode::Required,
            "is required with `escalateAfterSeconds`",
        )),
        (false, true) => out.push(Violation::new(
            after_path,
            ViolationCode::Required,
            "is required with `escalationRoles`",
        )),
        _ => {}
    }
    (out.len() == before).then_some((after, roles))
}

fn parse_separation(path: &str, value: &Value, out: &mut Vec<Violation>) -> Option<Separation> {
    let before = out.len();
    let mut reader = ObjectReader::new(path, value, out)?;
    let defaults = Separation::default();
    let requester_may_approve = reader
        .optional("requesterMayApprove")
        .and_then(|value| expect_bool(&join(path, "requesterMayApprove"), value, out))
        .unwrap_or(defaults.requester_may_approve);
    let one_approval_per_principal = reader
        .optional("oneApprovalPerPrincipal")
        .and_then(|value| expect_bool(&join(path, "oneApprovalPerPrincipal"), value, out))
        .unwrap_or(defaults.one_approval_per_principal);
    reader.finish(out);
    (out.len() == before).then_some(Separation {
        requester_may_approve,
        one_approval_per_principal,
    })
}

fn parse_emergency(path: &str, value: &Value, out: &mut Vec<Violation>) -> Option<EmergencyPolicy> {
    let before = out.len();
    let mut reader = ObjectReader::new(path, value, out)?;
    let roles_path = join(path, "allowedRoles");
    let allowed_roles = reader.required("allowedRoles", out).and_then(|value| {
        let roles = parse_names(&roles_path, value, None, out)?;
        if roles.is_empty() {
            out.push(Violation::new(
                roles_path.clone(),
                ViolationCode::TooShort,
                "must name at least one role",
            ));
            return None;
        }
        Some(roles)
    });
    let review_within = reader
        .required("reviewWithinSeconds", out)
        .and_then(|value| {
            expect_integer(
                &join(path, "reviewWithinSeconds"),
                value,
                1,
                limits::MAX_TTL_SECONDS,
                out,
            )
        });
    reader.finish(out);
    match (allowed_roles, review_within) {
        (Some(allowed_roles), Some(review_within)) if out.len() == before => {
            Some(EmergencyPolicy {
                allowed_roles,
                review_within_seconds: u32::try_from(review_within).unwrap_or(u32::MAX),
            })
        }
        _ => None,
    }
}

fn parse_rules(
    value: &Value,
    levels: Option<&[String]>,
    policy_types: Option<&[String]>,
    out: &mut Vec<Violation>,
) -> Option<Vec<Rule>> {
    let items = expect_array("rules", value, out)?;
    let before = out.len();
    check_count("rules", items.len(), limits::MAX_RULES, "rules", out);
    let mut seen = HashSet::new();
    let mut rules = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let path = index("rules", position);
        let Some(mut reader) = ObjectReader::new(&path, item, out) else {
            continue;
        };
        let name = reader
            .required_str("name", out)
            .map(|name| check_text(&join(&path, "name"), name, NAME, out));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            duplicate(join(&path, "name"), name, out);
        }
        let when = reader
            .required("when", out)
            .and_then(|value| parse_condition(&join(&path, "when"), value, policy_types, out));
        let level = reader
            .required_str("level", out)
            .and_then(|level| check_level_name(&join(&path, "level"), level, levels, out));
        reader.finish(out);
        if let (Some(name), Some(when), Some(level)) = (name, when, level) {
            rules.push(Rule { name, when, level });
        }
    }
    (out.len() == before).then_some(rules)
}

fn parse_condition(
    path: &str,
    value: &Value,
    allowed_types: Option<&[String]>,
    out: &mut Vec<Violation>,
) -> Option<Condition> {
    let before = out.len();
    let mut reader = ObjectReader::new(path, value, out)?;
    let policy_types = reader.optional("policyTypes").and_then(|value| {
        let field = join(path, "policyTypes");
        let names = parse_names(&field, value, Some(is_policy_type), out)?;
        if let Some(allowed) = allowed_types {
            for (position, name) in names.iter().enumerate() {
                if !allowed.contains(name) {
                    out.push(Violation::new(
                        index(&field, position),
                        ViolationCode::NotAllowed,
                        format!("`{name}` is not one of the document's policyTypes"),
                    ));
                }
            }
        }
        Some(names)
    });
    let change_kinds = reader.optional("changeKinds").and_then(|value| {
        parse_choices(
            &join(path, "changeKinds"),
            value,
            &ChangeKind::ALL,
            ChangeKind::as_str,
            out,
        )
    });
    let environments = reader.optional("environments").and_then(|value| {
        parse_names(
            &join(path, "environments"),
            value,
            Some(is_environment),
            out,
        )
    });
    let policy_id_prefix = reader.optional_str("policyIdPrefix", out).map(|text| {
        let rule = TextRule {
            max: crate::change::limits::POLICY_ID_MAX_CHARS,
            ..NAME
        };
        check_text(&join(path, "policyIdPrefix"), text, rule, out)
    });
    let risk_score_at_least = reader.optional("riskScoreAtLeast").and_then(|value| {
        expect_integer(&join(path, "riskScoreAtLeast"), value, 0, 100, out)
            .and_then(|score| u8::try_from(score).ok())
    });
    let priorities = reader.optional("priorities").and_then(|value| {
        parse_choices(
            &join(path, "priorities"),
            value,
            &Priority::ALL,
            Priority::as_str,
            out,
        )
    });
    let metadata = reader
        .optional("metadata")
        .and_then(|value| parse_metadata(&join(path, "metadata"), value, out));
    reader.finish(out);
    (out.len() == before).then_some(Condition {
        policy_types,
        change_kinds,
        environments,
        policy_id_prefix,
        risk_score_at_least,
        priorities,
        metadata,
    })
}

fn parse_choices<T: Copy + PartialEq>(
    path: &str,
    value: &Value,
    all: &[T],
    name: fn(T) -> &'static str,
    out: &mut Vec<Violation>,
) -> Option<Vec<T>> {
    let items = expect_array(path, value, out)?;
    let before = out.len();
    let mut chosen = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let item_path = index(path, position);
        if let Some(choice) = parse_choice(&item_path, item, all, name, out) {
            if chosen.contains(&choice) {
                duplicate(item_path, name(choice), out);
            }
            chosen.push(choice);
        }
    }
    (out.len() == before).then_some(chosen)
}

fn parse_rate_limit(value: &Value, out: &mut Vec<Violation>) -> Option<RateLimit> {
    let before = out.len();
    let mut reader = ObjectReader::new("rateLimit", value, out)?;
    let field = |reader: &mut ObjectReader<'_>,
                 name: &'static str,
                 required: bool,
                 out: &mut Vec<Violation>| {
        let value = if required {
            reader.required(name, out)
        } else {
            reader.optional(name)
        }?;
        expect_integer(
            &join("rateLimit", name),
            value,
            1,
            limits::MAX_RATE_FIELD,
            out,
        )
        .and_then(|number| u32::try_from(number).ok())
    };
    let requests = field(&mut reader, "requests", true, out);
    let per_seconds = field(&mut reader, "perSeconds", true, out);
    let burst = field(&mut reader, "burst", false, out);
    reader.finish(out);
    match (requests, per_seconds) {
        (Some(requests), Some(per_seconds)) if out.len() == before => Some(RateLimit {
            requests,
            per_seconds,
            burst,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        json!({
            "levels": [
                { "name": "auto", "ttlSeconds": 3600, "stages": [] },
                { "name": "peer", "ttlSeconds": 86400, "stages": [
                    { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
                ]},
                { "name": "security", "ttlSeconds": 86400, "stages": [
                    { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] },
                    { "name": "security", "requiredApprovals": 2, "eligibleRoles": ["security"] }
                ]}
            ],
            "defaultLevel": "peer",
            "rules": [
                { "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" },
                { "name": "prod", "when": { "environments": ["prod"] }, "level": "peer" },
                { "name": "risky", "when": { "riskScoreAtLeast": 70 }, "level": "security" },
                { "name": "iam-prod", "when": { "policyTypes": ["iam"], "environments": ["prod"] }, "level": "security" }
            ]
        })
    }

    fn change(extra: Value) -> PolicyChange {
        let mut input = json!({
            "policyId": "p", "policyType": "iam", "changeKind": "update",
            "title": "t", "justification": "long enough text",
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut input, extra) {
            base.extend(extra);
        }
        PolicyChange::parse(&input, None).unwrap()
    }

    fn problems(input: Value) -> Vec<(String, ViolationCode)> {
        Rules::parse(&input)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.path, v.code))
            .collect()
    }

    #[test]
    fn the_strictest_matching_rule_decides_and_the_first_wins_ties() {
        let rules = Rules::parse(&sample()).unwrap();
        let decided = rules.determine(&change(json!({ "environment": "prod", "riskScore": 90 })));
        assert_eq!(rules.levels[decided.level_index].name, "security");
        let explanation = decided.explanation;
        let names: Vec<_> = explanation
            .matched_rules
            .iter()
            .map(|m| m.rule.as_str())
            .collect();
        assert_eq!(names, ["prod", "risky", "iam-prod"]);
        assert_eq!(explanation.deciding_rule.as_deref(), Some("risky"));
        assert!(!explanation.default_used);
    }

    #[test]
    fn no_match_falls_back_to_the_default_level() {
        let rules = Rules::parse(&sample()).unwrap();
        let decided = rules.determine(&change(json!({ "riskScore": 10 })));
        assert_eq!(rules.levels[decided.level_index].name, "peer");
        assert!(decided.explanation.default_used);
        assert_eq!(decided.explanation.deciding_rule, None);
    }

    #[test]
    fn conditions_on_absent_fields_do_not_match() {
        let rules = Rules::parse(&sample()).unwrap();
        let decided = rules.determine(&change(json!({})));
        assert!(decided.explanation.matched_rules.is_empty());
    }

    #[test]
    fn digest_ignores_key_order_whitespace_and_nulls() {
        let a = Rules::parse(&sample()).unwrap();
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        let mut reordered: Value = serde_json::from_str(&text).unwrap();
        reordered["rateLimit"] = Value::Null;
        let b = Rules::parse(&reordered).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 64);
        let mut changed = sample();
        changed["defaultLevel"] = json!("auto");
        assert_ne!(Rules::parse(&changed).unwrap().digest(), a.digest());
    }

    #[test]
    fn canonical_json_writes_whole_numbers_as_integers() {
        assert_eq!(
            canonical_json(&json!({ "b": 5.0, "a": [1, -0.0, 2.5, 1e300] })),
            canonical_json(&json!({ "a": [1.0, 0, 2.5, 1e300], "b": 5 }))
        );
        assert_eq!(canonical_json(&json!({ "n": 5.0 })), r#"{"n":5}"#);
        let mut whole = sample();
        whole["rules"][2]["when"]["metadata"] = json!({ "tier": 1.0 });
        let mut integer = sample();
        integer["rules"][2]["when"]["metadata"] = json!({ "tier": 1 });
        assert_eq!(
            Rules::parse(&whole).unwrap().digest(),
            Rules::parse(&integer).unwrap().digest()
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let found = problems(json!({
            "levels": [
                { "name": "a", "ttlSeconds": 0, "stages": [
                    { "name": "s", "requiredApprovals": 1001, "eligibleRoles": ["", "x", "x"] },
                    { "name": "s", "requiredApprovals": 1 }
                ]},
                { "name": "a", "ttlSeconds": 31536001, "stages": [] }
            ],
            "defaultLevel": "nope",
            "policyTypes": ["iam"],
            "rules": [
                { "name": "r", "when": { "policyTypes": ["net"] }, "level": "ghost" },
                { "name": "r", "when": {}, "level": "a" }
            ],
            "rateLimit": { "requests": 0, "perSeconds": 1000000001 }
        }));
        let expected = [
            ("levels[0].ttlSeconds", ViolationCode::OutOfRange),
            (
                "levels[0].stages[0].requiredApprovals",
                ViolationCode::OutOfRange,
            ),
            (
                "levels[0].stages[0].eligibleRoles[0]",
                ViolationCode::TooShort,
            ),
            (
                "levels[0].stages[0].eligibleRoles[2]",
                ViolationCode::Duplicate,
            ),
            ("levels[0].stages[1].name", ViolationCode::Duplicate),
            ("levels[1].name", ViolationCode::Duplicate),
            ("levels[1].ttlSeconds", ViolationCode::OutOfRange),
            ("defaultLevel", ViolationCode::UnknownLevel),
            ("rules[0].when.policyTypes[0]", ViolationCode::NotAllowed),
            ("rules[0].level", ViolationCode::UnknownLevel),
            ("rules[1].name", ViolationCode::Duplicate),
            ("rateLimit.requests", ViolationCode::OutOfRange),
            ("rateLimit.perSeconds", ViolationCode::OutOfRange),
        ];
        for (path, code) in expected {
            assert!(
                found.contains(&(path.to_string(), code)),
                "missing {path} {code:?} in {found:?}"
            );
        }
    }

    #[test]
    fn no_levels_is_refused() {
        let found = problems(json!({ "levels": [], "defaultLevel": "x" }));
        assert_eq!(found[0], ("levels".to_string(), ViolationCode::TooShort));
    }

    #[test]
    fn counts_are_limited_exactly() {
        let levels = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({ "name": format!("l{i}"), "ttlSeconds": 1, "stages": [] }))
                .collect()
        };
        assert!(problems(json!({ "levels": levels(64), "defaultLevel": "l0" })).is_empty());
        assert_eq!(
            problems(json!({ "levels": levels(65), "defaultLevel": "l0" })),
            [("levels".to_string(), ViolationCode::TooMany)]
        );
        let stages = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({ "name": format!("s{i}"), "requiredApprovals": 1 }))
                .collect()
        };
        let doc = |n| json!({ "levels": [{ "name": "l", "ttlSeconds": 1, "stages": stages(n) }], "defaultLevel": "l" });
        assert!(problems(doc(16)).is_empty());
        assert_eq!(problems(doc(17))[0].1, ViolationCode::TooMany);
        let rules = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({ "name": format!("r{i}"), "when": {}, "level": "l" }))
                .collect()
        };
        let doc = |n| json!({ "levels": [{ "name": "l", "ttlSeconds": 1, "stages": [] }], "defaultLevel": "l", "rules": rules(n) });
        assert!(problems(doc(1000)).is_empty());
        assert_eq!(problems(doc(1001))[0].1, ViolationCode::TooMany);
    }

    #[test]
    fn oversized_documents_are_refused_whole() {
        let big = "x".repeat(limits::MAX_BYTES);
        let found = problems(json!({ "levels": [], "defaultLevel": big }));
        assert_eq!(found, [(String::new(), ViolationCode::TooLarge)]);
    }

    #[test]
    fn the_size_limit_holds_exactly_at_the_boundary() {
        // `{"defaultLevel":"…","levels":[]}` is 31 bytes around the name.
        let doc = |len: usize| json!({ "levels": [], "defaultLevel": "x".repeat(len) });
        let at_limit = limits::MAX_BYTES - 31;
        assert_eq!(
            serde_json::to_string(&doc(at_limit)).unwrap().len(),
            limits::MAX_BYTES
        );
        assert!(
            !problems(doc(at_limit))
                .iter()
                .any(|(_, code)| *code == ViolationCode::TooLarge)
        );
        assert_eq!(
            problems(doc(at_limit + 1)),
            [(String::new(), ViolationCode::TooLarge)]
        );
    }
}
