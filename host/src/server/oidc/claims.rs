//! The principal a token's claims name: its id from one claim, its roles
//! from another, then the core's principal rules, as for the principals
//! file.

use serde_json::{Map, Value, json};
use signoff_core::Principal;

/// Why a token's claims name no valid principal.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// The id claim is absent.
    #[error("the `{0}` claim is missing")]
    MissingId(String),
    /// The id claim is not a string.
    #[error("the `{0}` claim is not a string")]
    IdNotText(String),
    /// The roles claim is neither an array of strings nor a string.
    #[error("the `{0}` claim is neither an array of strings nor a space-separated string")]
    RolesType(String),
    /// The id or the roles break the principal rules.
    #[error("the claims give an invalid principal: {0}")]
    Invalid(String),
}

/// The roles a claim value gives: an array of strings, or one string of
/// space-separated roles; absent or `null`, none. A role named twice
/// counts once.
fn roles(value: Option<&Value>, claim: &str) -> Result<Vec<String>, ClaimsError> {
    let listed: Vec<&str> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.split_whitespace().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| ClaimsError::RolesType(claim.to_owned()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ClaimsError::RolesType(claim.to_owned())),
    };
    let mut out: Vec<String> = Vec::with_capacity(listed.len());
    for role in listed {
        if !out.iter().any(|known| known == role) {
            out.push(role.to_owned());
        }
    }
    Ok(out)
}

/// The principal of verified `claims`: the id from `id_claim`, the roles
/// from `roles_claim`, both top-level claims named exactly, checked by
/// [`Principal::parse`] (so `system`, control and bidi characters and
/// over-long values are refused as in the principals file).
pub fn principal(
    claims: &Map<String, Value>,
    id_claim: &str,
    roles_claim: &str,
) -> Result<Principal, ClaimsError> {
    let id = match claims.get(id_claim) {
        None | Some(Value::Null) => return Err(ClaimsError::MissingId(id_claim.to_owned())),
        Some(Value::String(id)) => id,
        Some(_) => return Err(ClaimsError::IdNotText(id_claim.to_owned())),
    };
    let roles = roles(claims.get(roles_claim), roles_claim)?;
    Principal::parse(&json!({ "id": id, "roles": roles }), "").map_err(|problems| {
        ClaimsError::Invalid(
            problems
                .iter()
                .map(|problem| format!("{}: {}", problem.path, problem.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn of(value: Value) -> Result<Principal, ClaimsError> {
        principal(&claims(value), "sub", "roles")
    }

    #[test]
    fn roles_come_as_an_array_or_a_string() {
        let from_array = of(json!({ "sub": "alice", "roles": ["engineer", "admin"] })).unwrap();
        assert_eq!(from_array.id, "alice");
        assert_eq!(from_array.roles, ["engineer", "admin"]);
        let from_text =
            of(json!({ "sub": "alice", "roles": " engineer  admin engineer" })).unwrap();
        assert_eq!(from_text.roles, ["engineer", "admin"]);
        assert_eq!(
            of(json!({ "sub": "a", "roles": "" })).unwrap().roles,
            Vec::<String>::new()
        );
        assert_eq!(
            of(json!({ "sub": "a", "roles": [] })).unwrap().roles,
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_roles_are_no_roles() {
        assert!(of(json!({ "sub": "alice" })).unwrap().roles.is_empty());
        assert!(
            of(json!({ "sub": "alice", "roles": null }))
                .unwrap()
                .roles
                .is_empty()
        );
    }

    #[test]
    fn roles_of_another_type_are_refused() {
        for roles in [
            json!(3),
            json!(true),
            json!({ "a": 1 }),
            json!(["a", 1]),
            json!([["a"]]),
        ] {
            assert_eq!(
                of(json!({ "sub": "alice", "roles": roles })),
                Err(ClaimsError::RolesType("roles".into())),
                "{roles}"
            );
        }
    }

    #[test]
    fn the_claims_can_be_renamed() {
        let found = principal(
            &claims(json!({ "sub": "x", "email": "bob@example.com", "groups": "ops", "roles": 3 })),
            "email",
            "groups",
        )
        .unwrap();
        assert_eq!(found.id, "bob@example.com");
        assert_eq!(found.roles, ["ops"]);
    }

    #[test]
    fn the_id_must_be_a_valid_principal_id() {
        assert_eq!(
            of(json!({ "roles": [] })),
            Err(ClaimsError::MissingId("sub".into()))
        );
        assert_eq!(
            of(json!({ "sub": 7 })),
            Err(ClaimsError::IdNotText("sub".into()))
        );
        for id in ["", "system", "ev\u{202E}e", "a\u{7}b", &"x".repeat(300)] {
            assert!(
                matches!(of(json!({ "sub": id })), Err(ClaimsError::Invalid(_))),
                "{id:?}"
            );
        }
        assert!(matches!(
            of(json!({ "sub": "alice", "roles": ["ops\u{2066}"] })),
            Err(ClaimsError::Invalid(_))
        ));
    }
}
