//! Who is acting: parsing and validating a principal `{ id, roles }`.
//!
//! Every build reads principals here and nowhere else: the JS package for
//! the principal a caller passes, the component for the principal its host
//! hands it, and the server for its principals file and for the claims of a
//! signed token. The rules are the same everywhere (docs/CONTRACT.md,
//! section 4 and 11):
//!
//! - `id`: required, 1..=256 chars, no control (`Cc`) or bidi character, and
//!   not `system` (the actor the clock records, so nobody can pass for it);
//! - `roles`: optional (absent or `null` is none), at most 256, each 1..=256
//!   chars with the same character rules, none listed twice;
//! - no other field, unless the caller reads one of its own first (the
//!   server's principals file adds `tokenSha256`).

use serde_json::Value;

use crate::request::{Principal, SYSTEM_ACTOR};
use crate::validation::{
    CharPolicy, ObjectReader, TextRule, Violation, ViolationCode, check_text, expect_array,
    expect_str, index,
};

/// Limits of a principal.
pub mod limits {
    /// Chars of an id and of each role.
    pub const MAX_TEXT_CHARS: usize = 256;
    /// Roles one principal may hold.
    pub const MAX_ROLES: usize = 256;
}

/// An id or a role: 1..=256 chars, no control or bidi character, not trimmed.
const PRINCIPAL_TEXT: TextRule = TextRule {
    min: 1,
    max: limits::MAX_TEXT_CHARS,
    trim: false,
    chars: CharPolicy::SingleLine,
};

impl Principal {
    /// Parses a principal document (`{ id, roles }`) at `path`, reporting
    /// every problem at once.
    pub fn parse(value: &Value, path: &str) -> Result<Self, Vec<Violation>> {
        let mut out = Vec::new();
        let principal = ObjectReader::new(path, value, &mut out).and_then(|mut reader| {
            let principal = Self::read_fields(&mut reader, &mut out);
            reader.finish(&mut out);
            principal
        });
        match principal {
            Some(principal) if out.is_empty() => Ok(principal),
            _ => Err(out),
        }
    }

    /// Reads `id` and `roles` from an object whose other fields the caller
    /// reads (and then [`ObjectReader::finish`]es) itself. Returns the
    /// principal when `id` was readable, whatever else went wrong: the
    /// problems are in `out`.
    pub fn read_fields(reader: &mut ObjectReader<'_>, out: &mut Vec<Violation>) -> Option<Self> {
        let id = reader.required_str("id", out).map(|id| {
            let path = reader.path_of("id");
            let id = check_text(&path, id, PRINCIPAL_TEXT, out);
            if id == SYSTEM_ACTOR {
                out.push(Violation::new(
                    path,
                    ViolationCode::NotAllowed,
                    format!("`{SYSTEM_ACTOR}` is reserved for the actions of the clock"),
                ));
            }
            id
        });
        let roles = reader
            .optional("roles")
            .map(|roles| read_roles(&reader.path_of("roles"), roles, out))
            .unwrap_or_default();
        id.map(|id| Self { id, roles })
    }
}

fn read_roles(path: &str, value: &Value, out: &mut Vec<Violation>) -> Vec<String> {
    let Some(items) = expect_array(path, value, out) else {
        return Vec::new();
    };
    if items.len() > limits::MAX_ROLES {
        out.push(Violation::new(
            path,
            ViolationCode::TooMany,
            format!(
                "must hold at most {} roles, got {}",
                limits::MAX_ROLES,
                items.len()
            ),
        ));
    }
    let mut roles: Vec<String> = Vec::new();
    for (position, item) in items.iter().enumerate().take(limits::MAX_ROLES) {
        let path = index(path, position);
        let Some(role) = expect_str(&path, item, out) else {
            continue;
        };
        let role = check_text(&path, role, PRINCIPAL_TEXT, out);
        if roles.contains(&role) {
            out.push(Violation::new(
                path,
                ViolationCode::Duplicate,
                format!("the role `{role}` is listed twice"),
            ));
        } else {
            roles.push(role);
        }
    }
    roles
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on a broken fixture")]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(value: Value) -> Vec<(String, ViolationCode)> {
        Principal::parse(&value, "principal")
            .unwrap_err()
            .into_iter()
            .map(|item| (item.path, item.code))
            .collect()
    }

    #[test]
    fn a_principal_with_and_without_roles() {
        let alice = Principal::parse(&json!({ "id": "alice", "roles": ["eng"] }), "").unwrap();
        assert_eq!(alice, Principal::new("alice", &["eng"]));
        let bob = Principal::parse(&json!({ "id": "bob", "roles": null }), "").unwrap();
        assert_eq!(bob, Principal::new("bob", &[]));
    }

    #[test]
    fn the_clock_s_id_is_reserved() {
        assert_eq!(
            codes(json!({ "id": "system" })),
            [("principal.id".to_owned(), ViolationCode::NotAllowed)]
        );
    }

    #[test]
    fn bidi_and_control_characters_are_refused_in_ids_and_roles() {
        assert_eq!(
            codes(json!({ "id": "ali\u{202E}ce", "roles": ["a\u{0007}"] })),
            [
                ("principal.id".to_owned(), ViolationCode::ForbiddenCharacter),
                (
                    "principal.roles[0]".to_owned(),
                    ViolationCode::ForbiddenCharacter
                )
            ]
        );
    }

    #[test]
    fn limits_hold_at_the_limit_and_fail_one_past() {
        let at = "a".repeat(limits::MAX_TEXT_CHARS);
        assert!(Principal::parse(&json!({ "id": at, "roles": [at] }), "").is_ok());
        let past = "a".repeat(limits::MAX_TEXT_CHARS + 1);
        assert_eq!(
            codes(json!({ "id": past })),
            [("principal.id".to_owned(), ViolationCode::TooLong)]
        );
        let roles: Vec<String> = (0..limits::MAX_ROLES).map(|n| format!("r{n}")).collect();
        assert!(Principal::parse(&json!({ "id": "a", "roles": roles }), "").is_ok());
        let roles: Vec<String> = (0..=limits::MAX_ROLES).map(|n| format!("r{n}")).collect();
        assert_eq!(
            codes(json!({ "id": "a", "roles": roles })),
            [("principal.roles".to_owned(), ViolationCode::TooMany)]
        );
    }

    #[test]
    fn every_problem_is_listed_in_document_order() {
        assert_eq!(
            codes(json!({ "id": "", "roles": ["x", "x", 3, ""], "team": "a" })),
            [
                ("principal.id".to_owned(), ViolationCode::TooShort),
                ("principal.roles[1]".to_owned(), ViolationCode::Duplicate),
                ("principal.roles[2]".to_owned(), ViolationCode::InvalidType),
                ("principal.roles[3]".to_owned(), ViolationCode::TooShort),
                ("principal.team".to_owned(), ViolationCode::UnknownField),
            ]
        );
        assert_eq!(
            codes(json!("alice")),
            [("principal".to_owned(), ViolationCode::InvalidType)]
        );
        assert_eq!(
            codes(json!({})),
            [("principal.id".to_owned(), ViolationCode::Required)]
        );
    }
}
