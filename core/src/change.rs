//! The change request input (`PolicyChange`) and its validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rules::Rules;
use crate::validation::{
    CharPolicy, ObjectReader, TextRule, Violation, ViolationCode, check_text, expect_integer,
    matches_identifier, type_name,
};

/// Limits of a change, as the specification states them.
pub mod limits {
    /// `policyId`: 1..=256 chars.
    pub const POLICY_ID_MAX_CHARS: usize = 256;
    /// `policyType` and `environment`: at most 63 bytes of `[a-z0-9_.-]`.
    pub const IDENTIFIER_MAX_LEN: usize = 63;
    /// `title`: 1..=200 chars after trimming.
    pub const TITLE_MAX_CHARS: usize = 200;
    /// `justification`: at least 10 chars after trimming.
    pub const JUSTIFICATION_MIN_CHARS: usize = 10;
    /// `justification`: at most 4000 chars after trimming.
    pub const JUSTIFICATION_MAX_CHARS: usize = 4000;
    /// `diff`: at most 256 KiB of UTF-8.
    pub const DIFF_MAX_BYTES: usize = 256 * 1024;
    /// `riskScore`: at most 100.
    pub const RISK_SCORE_MAX: i64 = 100;
    /// `metadata`: at most 32 keys.
    pub const METADATA_MAX_KEYS: usize = 32;
    /// A metadata key: at most 64 chars of `[A-Za-z0-9_.-]`.
    pub const METADATA_KEY_MAX_LEN: usize = 64;
    /// A metadata string value: at most 1024 chars.
    pub const METADATA_VALUE_MAX_CHARS: usize = 1024;
    /// `metadata` in all: 16 KiB (keys and strings in UTF-8 bytes, others 8 each).
    pub const METADATA_MAX_BYTES: usize = 16 * 1024;
}

/// What the change does to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    /// A new policy.
    Create,
    /// A modified policy.
    Update,
    /// A removed policy.
    Delete,
}

impl ChangeKind {
    /// Every kind, in wire order.
    pub const ALL: [Self; 3] = [Self::Create, Self::Update, Self::Delete];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }
}

/// How urgently a change should be reviewed; orders the pending queue.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    /// Whenever convenient.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Sooner than normal.
    High,
    /// First in the queue.
    Urgent,
}

impl Priority {
    /// Every priority, from least to most urgent.
    pub const ALL: [Self; 4] = [Self::Low, Self::Normal, Self::High, Self::Urgent];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }

    /// Position in the pending queue: 0 for urgent, 3 for low.
    pub fn queue_rank(self) -> u8 {
        match self {
            Self::Urgent => 0,
            Self::High => 1,
            Self::Normal => 2,
            Self::Low => 3,
        }
    }
}

/// Parses one of `names` (the wire names of `all`) or reports `not_allowed`.
pub(crate) fn parse_choice<T: Copy>(
    path: &str,
    value: &Value,
    all: &[T],
    name: fn(T) -> &'static str,
    out: &mut Vec<Violation>,
) -> Option<T> {
    let Value::String(text) = value else {
        out.push(Violation::new(
            path,
            ViolationCode::InvalidType,
            format!("must be a string, got {}", type_name(value)),
        ));
        return None;
    };
    let found = all.iter().copied().find(|item| name(*item) == text);
    if found.is_none() {
        let allowed: Vec<_> = all.iter().map(|item| name(*item)).collect();
        out.push(Violation::new(
            path,
            ViolationCode::NotAllowed,
            format!("must be one of {}", allowed.join(", ")),
        ));
    }
    found
}

/// A metadata value: a string, a finite number or a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(type = "string | number | boolean"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MetadataValue {
    /// Text.
    String(String),
    /// A finite number, kept as written.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

/// A validated change request input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Part of a stored record: fields it does not know (written by a newer
// version) are ignored, so a rolling upgrade can add fields.
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyChange {
    /// The policy being changed.
    pub policy_id: String,
    /// The kind of policy, e.g. `iam`.
    pub policy_type: String,
    /// Create, update or delete.
    pub change_kind: ChangeKind,
    /// Where the policy applies, e.g. `prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string | null"))]
    pub environment: Option<String>,
    /// One line, trimmed.
    pub title: String,
    /// Why, trimmed.
    pub justification: String,
    /// The change itself, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "string | null"))]
    pub diff: Option<String>,
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "number | null"))]
    pub risk_score: Option<u8>,
    /// Defaults to normal.
    #[serde(default)]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "Priority | null"))]
    pub priority: Priority,
    /// Free key/value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(
        feature = "tsify",
        tsify(optional, type = "Record<string, MetadataValue> | null")
    )]
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Break-glass filing: the change is approved at once and reviewed
    /// after the fact. Never stored in the change: the request carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional, type = "EmergencyFiling | null"))]
    pub emergency: Option<EmergencyFiling>,
}

/// Why a change is filed as an emergency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmergencyFiling {
    /// 10..=4000 chars after trimming, the rules of `justification`.
    pub reason: String,
}

impl PolicyChange {
    /// The `changeDigest`: the lowercase hex SHA-256 of the change's
    /// canonical JSON as stored (defaults filled in, absent fields left
    /// out, `emergency` never part of it).
    pub fn digest(&self) -> String {
        let stored = Self {
            emergency: None,
            ..self.clone()
        };
        let value = serde_json::to_value(&stored).unwrap_or(serde_json::Value::Null);
        crate::rules::sha256_hex(&crate::rules::canonical_json(&value))
    }

    /// Whether `self` and `other` differ at most in `title`,
    /// `justification` and `metadata`: an amend that keeps approvals.
    pub fn differs_only_in_wording(&self, other: &Self) -> bool {
        let strip = |change: &Self| Self {
            title: String::new(),
            justification: String::new(),
            metadata: BTreeMap::new(),
            emergency: None,
            ..change.clone()
        };
        strip(self) == strip(other)
    }
}

fn lower_or_digit(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn identifier_rest(b: u8) -> bool {
    lower_or_digit(b) || matches!(b, b'_' | b'.' | b'-')
}

/// Whether `text` is a valid `policyType`: `^[a-z][a-z0-9_.-]{0,62}$`.
pub fn is_policy_type(text: &str) -> bool {
    matches_identifier(
        text,
        |b| b.is_ascii_lowercase(),
        identifier_rest,
        limits::IDENTIFIER_MAX_LEN,
    )
}

/// Whether `text` is a valid `environment`: `^[a-z0-9][a-z0-9_.-]{0,62}$`.
pub fn is_environment(text: &str) -> bool {
    matches_identifier(
        text,
        lower_or_digit,
        identifier_rest,
        limits::IDENTIFIER_MAX_LEN,
    )
}

/// Whether `text` is a valid metadata key: `^[A-Za-z0-9_.-]{1,64}$`.
pub fn is_metadata_key(text: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    matches_identifier(text, ok, ok, limits::METADATA_KEY_MAX_LEN)
}

/// The character rules of `justification`, shared by action texts.
pub(crate) const LONG_TEXT: TextRule = TextRule {
    min: 1,
    max: limits::JUSTIFICATION_MAX_CHARS,
    trim: true,
    chars: CharPolicy::MultiLine,
};

fn format_problem(path: String, what: &str, out: &mut Vec<Violation>) {
    out.push(Violation::new(
        path,
        ViolationCode::InvalidFormat,
        format!("must match {what}"),
    ));
}

impl PolicyChange {
    /// Validates an untyped change against the optional rules, reporting every
    /// problem in the order of the specification's field table (unknown
    /// fields last).
    pub fn parse(input: &Value, rules: Option<&Rules>) -> Result<Self, Vec<Violation>> {
        let mut out = Vec::new();
        let Some(mut reader) = ObjectReader::new("", input, &mut out) else {
            return Err(out);
        };
        let policy_id = parse_line(
            &mut reader,
            "policyId",
            limits::POLICY_ID_MAX_CHARS,
            false,
            &mut out,
        );
        let policy_type = parse_policy_type(&mut reader, rules, &mut out);
        let change_kind = reader.required("changeKind", &mut out).and_then(|value| {
            parse_choice(
                "changeKind",
                value,
                &ChangeKind::ALL,
                ChangeKind::as_str,
                &mut out,
            )
        });
        let environment = parse_environment(&mut reader, &mut out);
        let title = parse_line(
            &mut reader,
            "title",
            limits::TITLE_MAX_CHARS,
            true,
            &mut out,
        );
        let justification = parse_long_text(&mut reader, "justification", &mut out);
        let diff = parse_diff(&mut reader, &mut out);
        let risk_score = reader
            .optional("riskScore")
            .and_then(|value| {
                expect_integer("riskScore", value, 0, limits::RISK_SCORE_MAX, &mut out)
            })
            .and_then(|score| u8::try_from(score).ok());
        let priority = match reader.optional("priority") {
            Some(value) => parse_choice(
                "priority",
                value,
                &Priority::ALL,
                Priority::as_str,
                &mut out,
            ),
            None => Some(Priority::Normal),
        };
        let metadata = match reader.optional("metadata") {
            Some(value) => parse_metadata("metadata", value, &mut out),
            None => Some(BTreeMap::new()),
        };
        let emergency = parse_emergency(&mut reader, &mut out);
        reader.finish(&mut out);

        match (
            policy_id,
            policy_type,
            change_kind,
            title,
            justification,
            priority,
            metadata,
        ) {
            (
                Some(policy_id),
                Some(policy_type),
                Some(change_kind),
                Some(title),
                Some(justification),
                Some(priority),
                Some(metadata),
            ) if out.is_empty() => Ok(Self {
                policy_id,
                policy_type,
                change_kind,
                environment,
                title,
                justification,
                diff,
                risk_score,
                priority,
                metadata,
                emergency,
            }),
            _ => Err(out),
        }
    }
}

// The fields of a change, one reader each: every problem is appended to
// `out`, and a field is `None` when it is missing or invalid.

/// A required single-line text of 1..=`max` characters (counted after
/// trimming when `trim`): `policyId`, `title`.
fn parse_line(
    reader: &mut ObjectReader<'_>,
    field: &'static str,
    max: usize,
    trim: bool,
    out: &mut Vec<Violation>,
) -> Option<String> {
    reader.required_str(field, out).map(|text| {
        let rule = TextRule {
            min: 1,
            max,
            trim,
            chars: CharPolicy::SingleLine,
        };
        check_text(field, text, rule, out)
    })
}

/// A policy type: its pattern, and one of the rules' `policyTypes` when they
/// name some.
fn parse_policy_type(
    reader: &mut ObjectReader<'_>,
    rules: Option<&Rules>,
    out: &mut Vec<Violation>,
) -> Option<String> {
    let text = reader.required_str("policyType", out)?;
    if !is_policy_type(text) {
        format_problem("policyType".into(), "^[a-z][a-z0-9_.-]{0,62}$", out);
        return None;
    }
    if let Some(allowed) = rules.and_then(|rules| rules.policy_types.as_ref())
        && !allowed.iter().any(|name| name == text)
    {
        out.push(Violation::new(
            "policyType",
            ViolationCode::NotAllowed,
            format!(
                "must be one of the rules' policy types: {}",
                allowed.join(", ")
            ),
        ));
        return None;
    }
    Some(text.to_owned())
}

fn parse_environment(reader: &mut ObjectReader<'_>, out: &mut Vec<Violation>) -> Option<String> {
    let text = reader.optional_str("environment", out)?;
    if is_environment(text) {
        Some(text.to_owned())
    } else {
        format_problem("environment".into(), "^[a-z0-9][a-z0-9_.-]{0,62}$", out);
        None
    }
}

/// A required text of the justification's rules (`justification`, an
/// emergency's `reason`), its problems at `path`.
fn parse_long_text(
    reader: &mut ObjectReader<'_>,
    field: &'static str,
    out: &mut Vec<Violation>,
) -> Option<String> {
    let path = reader.path_of(field);
    reader.required_str(field, out).map(|text| {
        let rule = TextRule {
            min: limits::JUSTIFICATION_MIN_CHARS,
            ..LONG_TEXT
        };
        check_text(&path, text, rule, out)
    })
}

/// A diff: any text of at most `DIFF_MAX_BYTES` bytes without NUL.
fn parse_diff(reader: &mut ObjectReader<'_>, out: &mut Vec<Violation>) -> Option<String> {
    reader.optional_str("diff", out).map(|text| {
        if text.len() > limits::DIFF_MAX_BYTES {
            out.push(Violation::new(
                "diff",
                ViolationCode::TooLarge,
                format!(
                    "must be at most {} bytes of UTF-8, got {}",
                    limits::DIFF_MAX_BYTES,
                    text.len()
                ),
            ));
        }
        if text.contains('\0') {
            out.push(Violation::new(
                "diff",
                ViolationCode::ForbiddenCharacter,
                "must not contain NUL (U+0000)",
            ));
        }
        text.to_owned()
    })
}

/// `emergency: { reason }`, when the change is filed as an emergency.
fn parse_emergency(
    reader: &mut ObjectReader<'_>,
    out: &mut Vec<Violation>,
) -> Option<EmergencyFiling> {
    let value = reader.optional("emergency")?;
    let mut filing = ObjectReader::new("emergency", value, out)?;
    let reason = parse_long_text(&mut filing, "reason", out);
    filing.finish(out);
    reason.map(|reason| EmergencyFiling { reason })
}

/// Parses a metadata object (used by changes and by rule conditions).
pub(crate) fn parse_metadata(
    path: &str,
    value: &Value,
    out: &mut Vec<Violation>,
) -> Option<BTreeMap<String, MetadataValue>> {
    let Value::Object(object) = value else {
        out.push(Violation::new(
            path,
            ViolationCode::InvalidType,
            format!("must be an object, got {}", type_name(value)),
        ));
        return None;
    };
    let before = out.len();
    if object.len() > limits::METADATA_MAX_KEYS {
        out.push(Violation::new(
            path,
            ViolationCode::TooMany,
            format!(
                "must have at most {} keys, got {}",
                limits::METADATA_MAX_KEYS,
                object.len()
            ),
        ));
    }
    let mut total_bytes = 0usize;
    let mut parsed = BTreeMap::new();
    for (key, item) in object {
        let item_path = crate::validation::join(path, key);
        total_bytes += key.len();
        if !is_metadata_key(key) {
            format_problem(item_path.clone(), "^[A-Za-z0-9_.-]{1,64}$", out);
        }
        let parsed_item = match item {
            Value::String(text) => {
                total_bytes += text.len();
                let chars = text.chars().count();
                if chars > limits::METADATA_VALUE_MAX_CHARS {
                    out.push(Violation::new(
                        item_path,
                        ViolationCode::TooLong,
                        format!(
                            "must be at most {} characters, got {chars}",
                            limits::METADATA_VALUE_MAX_CHARS
                        ),
                    ));
                }
                MetadataValue::String(text.clone())
            }
            Value::Number(number) => {
                total_bytes += 8;
                MetadataValue::Number(number.clone())
            }
            Value::Bool(flag) => {
                total_bytes += 8;
                MetadataValue::Bool(*flag)
            }
            other => {
                out.push(Violation::new(
                    item_path,
                    ViolationCode::InvalidType,
                    format!(
                        "must be a string, number or boolean, got {}",
                        type_name(other)
                    ),
                ));
                continue;
            }
        };
        parsed.insert(key.clone(), parsed_item);
    }
    if total_bytes > limits::METADATA_MAX_BYTES {
        out.push(Violation::new(
            path,
            ViolationCode::TooLarge,
            format!(
                "must be at most {} bytes in all, got {total_bytes}",
                limits::METADATA_MAX_BYTES
            ),
        ));
    }
    (out.len() == before).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "policyId": "iam/admins",
            "policyType": "iam",
            "changeKind": "update",
            "title": "  Add bob to admins  ",
            "justification": "Bob joins the on-call rotation.",
        })
    }

    fn problems(input: Value) -> Vec<(String, ViolationCode)> {
        match PolicyChange::parse(&input, None) {
            Ok(_) => Vec::new(),
            Err(items) => items.into_iter().map(|v| (v.path, v.code)).collect(),
        }
    }

    fn with(field: &str, value: Value) -> Value {
        let mut input = valid();
        input[field] = value;
        input
    }

    #[test]
    fn a_valid_change_is_trimmed_and_defaulted() {
        let change = PolicyChange::parse(&valid(), None).unwrap();
        assert_eq!(change.title, "Add bob to admins");
        assert_eq!(change.priority, Priority::Normal);
        assert!(change.metadata.is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once_in_table_order() {
        let found = problems(json!({ "policyType": "IAM", "title": "", "extra": 1 }));
        let expected = [
            ("policyId", ViolationCode::Required),
            ("policyType", ViolationCode::InvalidFormat),
            ("changeKind", ViolationCode::Required),
            ("title", ViolationCode::TooShort),
            ("justification", ViolationCode::Required),
            ("extra", ViolationCode::UnknownField),
        ];
        let expected: Vec<_> = expected.iter().map(|(p, c)| (p.to_string(), *c)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn null_optional_fields_mean_absent() {
        assert!(problems(with("riskScore", Value::Null)).is_empty());
        assert!(problems(with("metadata", Value::Null)).is_empty());
    }

    #[test]
    fn limits_hold_exactly_at_the_boundary() {
        assert!(problems(with("policyId", json!("x".repeat(256)))).is_empty());
        assert_eq!(
            problems(with("policyId", json!("x".repeat(257))))[0].1,
            ViolationCode::TooLong
        );
        assert!(problems(with("title", json!("t".repeat(200)))).is_empty());
        assert_eq!(
            problems(with("title", json!("t".repeat(201))))[0].1,
            ViolationCode::TooLong
        );
        assert!(problems(with("justification", json!("j".repeat(10)))).is_empty());
        assert_eq!(
            problems(with("justification", json!(" jjjjjjjjj ")))[0].1,
            ViolationCode::TooShort
        );
        assert!(problems(with("justification", json!("j".repeat(4000)))).is_empty());
        assert_eq!(
            problems(with("justification", json!("j".repeat(4001))))[0].1,
            ViolationCode::TooLong
        );
        assert!(problems(with("diff", json!("d".repeat(256 * 1024)))).is_empty());
        assert_eq!(
            problems(with("diff", json!("d".repeat(256 * 1024 + 1))))[0].1,
            ViolationCode::TooLarge
        );
        assert!(problems(with("riskScore", json!(100))).is_empty());
        assert_eq!(
            problems(with("riskScore", json!(101)))[0].1,
            ViolationCode::OutOfRange
        );
        assert_eq!(
            problems(with("riskScore", json!(-1)))[0].1,
            ViolationCode::OutOfRange
        );
        assert!(problems(with("policyType", json!(format!("a{}", "b".repeat(62))))).is_empty());
        assert_eq!(
            problems(with("policyType", json!(format!("a{}", "b".repeat(63)))))[0].1,
            ViolationCode::InvalidFormat
        );
    }

    #[test]
    fn metadata_limits_hold_at_the_boundary() {
        let keys = |n: usize| -> Value {
            (0..n)
                .map(|i| (format!("k{i}"), json!(true)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        assert!(problems(with("metadata", keys(32))).is_empty());
        assert_eq!(
            problems(with("metadata", keys(33))),
            [("metadata".into(), ViolationCode::TooMany)]
        );
        assert!(problems(with("metadata", json!({ "k".repeat(64): 1 }))).is_empty());
        assert_eq!(
            problems(with("metadata", json!({ "k".repeat(65): 1 })))[0].1,
            ViolationCode::InvalidFormat
        );
        assert!(problems(with("metadata", json!({ "t": "v".repeat(1024) }))).is_empty());
        assert_eq!(
            problems(with("metadata", json!({ "t": "v".repeat(1025) }))),
            [("metadata.t".into(), ViolationCode::TooLong)]
        );
        // 16 keys of 2 bytes + 16 values of 1022 bytes = 16,384 bytes exactly.
        let exact: serde_json::Map<_, _> = (10..26)
            .map(|i| (format!("{i}"), json!("v".repeat(1022))))
            .collect();
        assert!(problems(with("metadata", exact.clone().into())).is_empty());
        let mut over = exact;
        over.insert("x".into(), json!(1));
        assert_eq!(
            problems(with("metadata", over.into())),
            [("metadata".into(), ViolationCode::TooLarge)]
        );
        assert_eq!(
            problems(with("metadata", json!({ "a": [1] }))),
            [("metadata.a".into(), ViolationCode::InvalidType)]
        );
    }

    #[test]
    fn unknown_policy_types_are_refused_when_rules_list_them() {
        let rules = Rules::parse(&json!({
            "levels": [{ "name": "low", "ttlSeconds": 60, "stages": [] }],
            "defaultLevel": "low",
            "policyTypes": ["firewall"],
        }))
        .unwrap();
        let items = PolicyChange::parse(&valid(), Some(&rules)).unwrap_err();
        assert_eq!(items[0].code, ViolationCode::NotAllowed);
    }

    #[test]
    fn round_trips_through_serde() {
        let change =
            PolicyChange::parse(&with("metadata", json!({ "n": 5, "b": false })), None).unwrap();
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["metadata"], json!({ "b": false, "n": 5 }));
        assert_eq!(
            serde_json::from_value::<PolicyChange>(json).unwrap(),
            change
        );
    }
}
