//! Who is calling: bearer tokens mapped to principals.
//!
//! The principals file is a JSON array of
//! `{ "id", "roles": [..], "tokenSha256": "<hex sha256 of the token>" }`. The
//! server keeps only the digests; a presented token is hashed and compared
//! with every digest in constant time, so neither the token nor which entry
//! matched leaks through timing.

use std::collections::HashSet;

use axum::http::{HeaderMap, header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use signoff_core::{Principal, Violation, ViolationCode};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;

/// The longest principal id accepted.
const MAX_ID_CHARS: usize = 256;
/// At most this many roles per principal.
const MAX_ROLES: usize = 256;
/// At most this many principals in a file.
const MAX_PRINCIPALS: usize = 100_000;
/// The actor name the engine records for expiry; no principal may take it.
const RESERVED_ID: &str = signoff_core::request::SYSTEM_ACTOR;

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The principals the server knows, by the sha256 of their tokens.
pub struct Principals {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Principals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principals")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The sha256 of a token.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn bad(path: String, code: ViolationCode, message: &str) -> Violation {
    Violation::new(path, code, message)
}

fn is_clean(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

impl Principals {
    /// Principals from `(principal, token)` pairs, as the demo mode and tests
    /// make them.
    pub fn from_tokens<'a>(pairs: impl IntoIterator<Item = (Principal, &'a str)>) -> Self {
        Self {
            entries: pairs
                .into_iter()
                .map(|(principal, token)| Entry {
                    digest: token_digest(token),
                    principal,
                })
                .collect(),
        }
    }

    /// Parses a principals file, reporting every problem.
    pub fn parse_str(text: &str) -> Result<Self, Vec<Violation>> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Self::parse(&value),
            Err(error) => Err(vec![bad(
                String::new(),
                ViolationCode::InvalidType,
                &format!("is not JSON: {error}"),
            )]),
        }
    }

    /// Validates a principals document, reporting every problem.
    pub fn parse(value: &Value) -> Result<Self, Vec<Violation>> {
        let mut out = Vec::new();
        let Value::Array(items) = value else {
            return Err(vec![bad(
                String::new(),
                ViolationCode::InvalidType,
                "must be an array of { id, roles, tokenSha256 }",
            )]);
        };
        if items.is_empty() {
            out.push(bad(
                String::new(),
                ViolationCode::TooShort,
                "must list at least one principal",
            ));
        }
        if items.len() > MAX_PRINCIPALS {
            out.push(bad(
                String::new(),
                ViolationCode::TooMany,
                "lists more than 100000 principals",
            ));
        }
        let mut ids = HashSet::new();
        let mut digests = HashSet::new();
        let mut entries = Vec::new();
        for (position, item) in items.iter().enumerate() {
            let at = |field: &str| {
                if field.is_empty() {
                    format!("[{position}]")
                } else {
                    format!("[{position}].{field}")
                }
            };
            let Value::Object(map) = item else {
                out.push(bad(at(""), ViolationCode::InvalidType, "must be an object"));
                continue;
            };
            let id = match map.get("id") {
                None | Some(Value::Null) => {
                    out.push(bad(at("id"), ViolationCode::Required, "is required"));
                    None
                }
                Some(Value::String(id)) => {
                    let chars = id.chars().count();
                    if chars == 0 {
                        out.push(bad(at("id"), ViolationCode::TooShort, "must not be empty"));
                    } else if chars > MAX_ID_CHARS {
                        out.push(bad(
                            at("id"),
                            ViolationCode::TooLong,
                            "must be at most 256 chars",
                        ));
                    } else if !is_clean(id) {
                        out.push(bad(
                            at("id"),
                            ViolationCode::ForbiddenCharacter,
                            "must not hold control characters",
                        ));
                    } else if id == RESERVED_ID {
                        out.push(bad(
                            at("id"),
                            ViolationCode::NotAllowed,
                            "`system` is reserved for the clock",
                        ));
                    } else if !ids.insert(id.clone()) {
                        out.push(bad(at("id"), ViolationCode::Duplicate, "is listed twice"));
                    }
                    Some(id.clone())
                }
                Some(_) => {
                    out.push(bad(
                        at("id"),
                        ViolationCode::InvalidType,
                        "must be a string",
                    ));
                    None
                }
            };
            let mut roles = Vec::new();
            match map.get("roles") {
                None | Some(Value::Null) => {}
                Some(Value::Array(list)) => {
                    if list.len() > MAX_ROLES {
                        out.push(bad(
                            at("roles"),
                            ViolationCode::TooMany,
                            "holds more than 256 roles",
                        ));
                    }
                    for (index, role) in list.iter().enumerate() {
                        let path = format!("{}[{index}]", at("roles"));
                        match role {
                            Value::String(role) if role.is_empty() => {
                                out.push(bad(path, ViolationCode::TooShort, "must not be empty"));
                            }
                            Value::String(role) if !is_clean(role) => out.push(bad(
                                path,
                                ViolationCode::ForbiddenCharacter,
                                "must not hold control characters",
                            )),
                            Value::String(role) if roles.contains(role) => {
                                out.push(bad(path, ViolationCode::Duplicate, "is listed twice"));
                            }
                            Value::String(role) => roles.push(role.clone()),
                            _ => {
                                out.push(bad(path, ViolationCode::InvalidType, "must be a string"))
                            }
                        }
                    }
                }
                Some(_) => out.push(bad(
                    at("roles"),
                    ViolationCode::InvalidType,
                    "must be an array of strings",
                )),
            }
            let digest = match map.get("tokenSha256") {
                None | Some(Value::Null) => {
                    out.push(bad(
                        at("tokenSha256"),
                        ViolationCode::Required,
                        "is required: the hex sha256 of the principal's token",
                    ));
                    None
                }
                Some(Value::String(text)) => {
                    let mut digest = [0_u8; 32];
                    if text.len() == 64 && hex::decode_to_slice(text, &mut digest).is_ok() {
                        if !digests.insert(digest) {
                            out.push(bad(
                                at("tokenSha256"),
                                ViolationCode::Duplicate,
                                "is the digest of another principal's token",
                            ));
                        }
                        Some(digest)
                    } else {
                        out.push(bad(
                            at("tokenSha256"),
                            ViolationCode::InvalidFormat,
                            "must be 64 hex digits (the sha256 of the token)",
                        ));
                        None
                    }
                }
                Some(_) => {
                    out.push(bad(
                        at("tokenSha256"),
                        ViolationCode::InvalidType,
                        "must be a string",
                    ));
                    None
                }
            };
            let mut unknown: Vec<&String> = map
                .keys()
                .filter(|key| !matches!(key.as_str(), "id" | "roles" | "tokenSha256"))
                .collect();
            unknown.sort();
            for key in unknown {
                out.push(bad(
                    at(key),
                    ViolationCode::UnknownField,
                    "is not a field of a principal",
                ));
            }
            if let (Some(id), Some(digest)) = (id, digest) {
                entries.push(Entry {
                    digest,
                    principal: Principal { id, roles },
                });
            }
        }
        if out.is_empty() {
            Ok(Self { entries })
        } else {
            Err(out)
        }
    }

    /// How many principals there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal holding `token`, compared in constant time over every
    /// entry.
    pub fn find(&self, token: &str) -> Option<&Principal> {
        let presented = token_digest(token);
        let mut found = u64::MAX;
        for (position, entry) in self.entries.iter().enumerate() {
            let hit = entry.digest.ct_eq(&presented);
            let position = u64::try_from(position).unwrap_or(u64::MAX);
            found.conditional_assign(&position, hit);
        }
        usize::try_from(found)
            .ok()
            .and_then(|position| self.entries.get(position))
            .map(|entry| &entry.principal)
    }

    /// The principal of a request's `Authorization: Bearer <token>` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::unauthenticated(
                "send exactly one `Authorization: Bearer <token>` header",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|text| {
                let (scheme, token) = text.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        self.find(token)
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("the bearer token is not valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn digest_hex(token: &str) -> String {
        hex::encode(token_digest(token))
    }

    #[test]
    fn tokens_find_their_principal() {
        let principals = Principals::parse(&json!([
            { "id": "alice", "roles": ["engineer"], "tokenSha256": digest_hex("a-token") },
            { "id": "bob", "roles": [], "tokenSha256": digest_hex("b-token").to_uppercase() },
        ]))
        .unwrap();
        assert_eq!(principals.find("a-token").unwrap().id, "alice");
        assert_eq!(principals.find("b-token").unwrap().id, "bob");
        assert!(principals.find("c-token").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer   a-token "),
        );
        assert_eq!(principals.authenticate(&headers).unwrap().id, "alice");
        for bad in ["Basic a-token", "Bearer", "Bearer ", "a-token", "Bearer x"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(principals.authenticate(&headers).is_err(), "{bad}");
        }
        headers.remove(header::AUTHORIZATION);
        assert!(principals.authenticate(&headers).is_err());
    }

    #[test]
    fn every_problem_of_a_file_is_listed() {
        let problems = Principals::parse(&json!([
            { "id": "", "roles": ["a", "a", 3], "tokenSha256": "abc" },
            { "id": "system", "tokenSha256": digest_hex("x"), "extra": true },
            { "id": "carol", "roles": "admin", "tokenSha256": digest_hex("x") },
            "nope",
            { "roles": [] },
        ]))
        .unwrap_err();
        let listed: Vec<(String, ViolationCode)> = problems
            .iter()
            .map(|item| (item.path.clone(), item.code))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("[0].id".into(), ViolationCode::TooShort),
                ("[0].roles[1]".into(), ViolationCode::Duplicate),
                ("[0].roles[2]".into(), ViolationCode::InvalidType),
                ("[0].tokenSha256".into(), ViolationCode::InvalidFormat),
                ("[1].id".into(), ViolationCode::NotAllowed),
                ("[1].extra".into(), ViolationCode::UnknownField),
                ("[2].roles".into(), ViolationCode::InvalidType),
                ("[2].tokenSha256".into(), ViolationCode::Duplicate),
                ("[3]".into(), ViolationCode::InvalidType),
                ("[4].id".into(), ViolationCode::Required),
                ("[4].tokenSha256".into(), ViolationCode::Required),
            ]
        );
        assert!(Principals::parse(&json!([])).is_err());
        assert!(Principals::parse(&json!({})).is_err());
        assert!(Principals::parse_str("[").is_err());
    }
}
