//! Validation items and the shared checks that produce them.
//!
//! Every parser in the core reads untyped JSON and collects *every* problem as
//! a [`Violation`] instead of stopping at the first, so that an editor can mark
//! each field at once. [`ObjectReader`] is the one place that knows how to walk
//! a JSON object, refuse unknown fields and treat `null` as absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One problem found in an input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// Dotted path to the field, indexes in brackets; empty for the whole document.
    pub path: String,
    /// The stable problem code.
    pub code: ViolationCode,
    /// A sentence for people.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, code: ViolationCode, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

/// Stable problem codes of validation items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ViolationCode {
    /// A required field is missing or `null`.
    Required,
    /// A field the schema does not know.
    UnknownField,
    /// A value of the wrong JSON type.
    InvalidType,
    /// Text or list below its minimum.
    TooShort,
    /// Text above its maximum length in characters.
    TooLong,
    /// More items than allowed.
    TooMany,
    /// More bytes than allowed.
    TooLarge,
    /// A number outside its range.
    OutOfRange,
    /// Text that does not match its pattern.
    InvalidFormat,
    /// A control, bidi or NUL character where it is refused.
    ForbiddenCharacter,
    /// A value outside an allowed set.
    NotAllowed,
    /// A name or value given twice.
    Duplicate,
    /// A level name that names no level.
    UnknownLevel,
}

/// Joins a parent path and a field name with a dot.
pub fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// Appends an index in brackets to a path.
pub fn index(parent: &str, position: usize) -> String {
    format!("{parent}[{position}]")
}

/// The wire name of a unit enum variant, as its `Serialize` implementation
/// writes it: the one source of every code's and enum's string form.
pub fn wire_name<T: serde::Serialize>(value: &T) -> &'static str {
    serde_variant::to_variant_name(value).unwrap_or_default()
}

/// Bidirectional formatting characters that can make text read differently
/// from what it is (Trojan Source).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Which characters a text field refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharPolicy {
    /// No control (`Cc`) and no bidi character.
    SingleLine,
    /// As [`CharPolicy::SingleLine`] but CR, LF and tab are allowed.
    MultiLine,
}

impl CharPolicy {
    fn refuses(self, c: char) -> bool {
        let allowed_control = self == CharPolicy::MultiLine && matches!(c, '\r' | '\n' | '\t');
        (c.is_control() && !allowed_control) || is_bidi(c)
    }
}

/// Length bounds of a text field, counted in chars after optional trimming.
#[derive(Debug, Clone, Copy)]
pub struct TextRule {
    /// Minimum chars.
    pub min: usize,
    /// Maximum chars.
    pub max: usize,
    /// Whether bounds apply to the trimmed text (and the trimmed text is kept).
    pub trim: bool,
    /// Which characters are refused (checked on the text as sent).
    pub chars: CharPolicy,
}

/// Checks `text` against `rule`, appending problems; returns the text to store.
pub fn check_text(path: &str, text: &str, rule: TextRule, out: &mut Vec<Violation>) -> String {
    if let Some(bad) = text.chars().find(|c| rule.chars.refuses(*c)) {
        out.push(Violation::new(
            path,
            ViolationCode::ForbiddenCharacter,
            format!("contains the forbidden character U+{:04X}", u32::from(bad)),
        ));
    }
    let kept = if rule.trim { text.trim() } else { text };
    let length = kept.chars().count();
    let counted = if rule.trim { " after trimming" } else { "" };
    if length < rule.min {
        out.push(Violation::new(
            path,
            ViolationCode::TooShort,
            format!(
                "must be at least {} characters{counted}, got {length}",
                rule.min
            ),
        ));
    } else if length > rule.max {
        out.push(Violation::new(
            path,
            ViolationCode::TooLong,
            format!(
                "must be at most {} characters{counted}, got {length}",
                rule.max
            ),
        ));
    }
    kept.to_owned()
}

/// Checks an identifier against `^[first][rest]{0,max_rest}$` with ASCII
/// classes given as predicates; returns whether it matched.
pub fn matches_identifier(
    text: &str,
    first: fn(u8) -> bool,
    rest: fn(u8) -> bool,
    max_len: usize,
) -> bool {
    let bytes = text.as_bytes();
    match bytes.split_first() {
        Some((head, tail)) => {
            bytes.len() <= max_len && first(*head) && tail.iter().all(|b| rest(*b))
        }
        None => false,
    }
}

/// The name of a JSON value's type, for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks one JSON object: hands out fields by name, treats `null` as absent,
/// and reports the fields nobody asked for as `unknown_field`.
pub struct ObjectReader<'a> {
    path: String,
    object: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading `value` at `path`; reports `invalid_type` if it is not an object.
    pub fn new(path: &str, value: &'a Value, out: &mut Vec<Violation>) -> Option<Self> {
        match value {
            Value::Object(object) => Some(Self {
                path: path.to_owned(),
                object,
                known: Vec::new(),
            }),
            other => {
                out.push(Violation::new(
                    path,
                    ViolationCode::InvalidType,
                    format!("must be an object, got {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// The path of a field of this object.
    pub fn path_of(&self, field: &str) -> String {
        join(&self.path, field)
    }

    /// An optional field; `null` counts as absent.
    pub fn optional(&mut self, field: &'static str) -> Option<&'a Value> {
        self.known.push(field);
        self.object.get(field).filter(|value| !value.is_null())
    }

    /// A required field; reports `required` when absent or `null`.
    pub fn required(&mut self, field: &'static str, out: &mut Vec<Violation>) -> Option<&'a Value> {
        let value = self.optional(field);
        if value.is_none() {
            out.push(Violation::new(
                self.path_of(field),
                ViolationCode::Required,
                "is required",
            ));
        }
        value
    }

    /// An optional string field; reports `invalid_type` for other types.
    pub fn optional_str(
        &mut self,
        field: &'static str,
        out: &mut Vec<Violation>,
    ) -> Option<&'a str> {
        let value = self.optional(field)?;
        expect_str(&self.path_of(field), value, out)
    }

    /// A required string field.
    pub fn required_str(
        &mut self,
        field: &'static str,
        out: &mut Vec<Violation>,
    ) -> Option<&'a str> {
        let value = self.required(field, out)?;
        expect_str(&self.path_of(field), value, out)
    }

    /// Reports every field that no accessor asked for, in key order.
    pub fn finish(self, out: &mut Vec<Violation>) {
        for key in self.object.keys() {
            if !self.known.contains(&key.as_str()) {
                out.push(Violation::new(
                    join(&self.path, key),
                    ViolationCode::UnknownField,
                    format!("unknown field `{key}`"),
                ));
            }
        }
    }
}

/// The value as a string, or an `invalid_type` problem.
pub fn expect_str<'a>(path: &str, value: &'a Value, out: &mut Vec<Violation>) -> Option<&'a str> {
    match value {
        Value::String(text) => Some(text),
        other => {
            out.push(Violation::new(
                path,
                ViolationCode::InvalidType,
                format!("must be a string, got {}", type_name(other)),
            ));
            None
        }
    }
}

/// The value as an integer within `min..=max`, or a problem.
pub fn expect_integer(
    path: &str,
    value: &Value,
    min: i64,
    max: i64,
    out: &mut Vec<Violation>,
) -> Option<i64> {
    let number = match value {
        Value::Number(number) => number,
        other => {
            out.push(Violation::new(
                path,
                ViolationCode::InvalidType,
                format!("must be an integer, got {}", type_name(other)),
            ));
            return None;
        }
    };
    let integer = number.as_i64().or_else(|| {
        // 5.0 is an integer written as a float (as JavaScript may send it).
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    match integer {
        Some(integer) if (min..=max).contains(&integer) => Some(integer),
        Some(_) => {
            out.push(Violation::new(
                path,
                ViolationCode::OutOfRange,
                format!("must be between {min} and {max}, got {number}"),
            ));
            None
        }
        None if number.is_u64() => {
            out.push(Violation::new(
                path,
                ViolationCode::OutOfRange,
                format!("must be between {min} and {max}, got {number}"),
            ));
            None
        }
        None => {
            out.push(Violation::new(
                path,
                ViolationCode::InvalidType,
                format!("must be an integer, got {number}"),
            ));
            None
        }
    }
}

/// The value as a boolean, or an `invalid_type` problem.
pub fn expect_bool(path: &str, value: &Value, out: &mut Vec<Violation>) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        other => {
            out.push(Violation::new(
                path,
                ViolationCode::InvalidType,
                format!("must be a boolean, got {}", type_name(other)),
            ));
            None
        }
    }
}

/// The value as an array, or an `invalid_type` problem.
pub fn expect_array<'a>(
    path: &str,
    value: &'a Value,
    out: &mut Vec<Violation>,
) -> Option<&'a Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        other => {
            out.push(Violation::new(
                path,
                ViolationCode::InvalidType,
                format!("must be an array, got {}", type_name(other)),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_what_serde_writes() {
        use crate::{ChangeKind, ErrorCode, Priority, Status};
        fn json<T: serde::Serialize>(value: T) -> String {
            serde_json::to_value(value)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default()
        }
        for status in Status::ALL {
            assert_eq!(status.as_str(), json(status));
        }
        for priority in Priority::ALL {
            assert_eq!(priority.as_str(), json(priority));
        }
        for kind in ChangeKind::ALL {
            assert_eq!(kind.as_str(), json(kind));
        }
        assert_eq!(Status::Cancelled.as_str(), "cancelled");
        assert_eq!(
            ErrorCode::PreconditionFailed.as_str(),
            "precondition_failed"
        );
        assert_eq!(ErrorCode::NotPending.as_str(), json(ErrorCode::NotPending));
    }
    use serde_json::json;

    const TITLE: TextRule = TextRule {
        min: 1,
        max: 5,
        trim: true,
        chars: CharPolicy::SingleLine,
    };

    #[test]
    fn text_is_trimmed_before_counting_and_checked_as_sent() {
        let mut out = Vec::new();
        assert_eq!(check_text("t", "  abc \n", TITLE, &mut out), "abc");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].code, ViolationCode::ForbiddenCharacter);
    }

    #[test]
    fn lengths_count_chars_not_bytes_or_utf16_units() {
        let mut out = Vec::new();
        check_text("t", "😀😀😀😀😀", TITLE, &mut out);
        assert!(out.is_empty());
        check_text("t", "😀😀😀😀😀😀", TITLE, &mut out);
        assert_eq!(out[0].code, ViolationCode::TooLong);
    }

    #[test]
    fn bidi_characters_are_refused_even_in_multiline_text() {
        let mut out = Vec::new();
        let rule = TextRule {
            chars: CharPolicy::MultiLine,
            ..TITLE
        };
        check_text("t", "a\tb\r\n", rule, &mut out);
        assert!(out.is_empty());
        check_text("t", "a\u{202E}b", rule, &mut out);
        assert_eq!(out[0].code, ViolationCode::ForbiddenCharacter);
    }

    #[test]
    fn reader_reports_unknown_fields_and_treats_null_as_absent() {
        let value = json!({ "a": null, "b": 1, "c": 2 });
        let mut out = Vec::new();
        let mut reader = ObjectReader::new("", &value, &mut out).unwrap();
        assert!(reader.required("a", &mut out).is_none());
        assert!(reader.optional("b").is_some());
        reader.finish(&mut out);
        let codes: Vec<_> = out.iter().map(|v| (v.path.as_str(), v.code)).collect();
        assert_eq!(
            codes,
            [
                ("a", ViolationCode::Required),
                ("c", ViolationCode::UnknownField)
            ]
        );
    }

    #[test]
    fn integers_accept_whole_floats_and_refuse_fractions() {
        let mut out = Vec::new();
        assert_eq!(expect_integer("n", &json!(5.0), 0, 100, &mut out), Some(5));
        assert_eq!(expect_integer("n", &json!(5.5), 0, 100, &mut out), None);
        assert_eq!(expect_integer("n", &json!(101), 0, 100, &mut out), None);
        assert_eq!(
            expect_integer("n", &json!(u64::MAX), 0, 100, &mut out),
            None
        );
        let codes: Vec<_> = out.iter().map(|v| v.code).collect();
        assert_eq!(
            codes,
            [
                ViolationCode::InvalidType,
                ViolationCode::OutOfRange,
                ViolationCode::OutOfRange
            ]
        );
    }
}
