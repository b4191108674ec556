//! Who is calling: bearer tokens mapped to principals, by the principals
//! file or, when configured, as OpenID Connect JWTs ([`super::oidc`]).
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
use signoff_core::validation::ObjectReader;
use signoff_core::{Principal, Violation, ViolationCode};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;
use super::oidc::{Oidc, looks_like_jwt};

/// At most this many principals in a file.
const MAX_PRINCIPALS: usize = 100_000;

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

/// The 32 bytes of a 64-digit hex digest.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0_u8; 32];
    (text.len() == 64 && hex::decode_to_slice(text, &mut digest).is_ok()).then_some(digest)
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

    /// Validates a principals document, reporting every problem: each
    /// entry is a principal as the core reads one (`Principal::read_fields`),
    /// plus its `tokenSha256`; ids and token digests are unique.
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
            let path = format!("[{position}]");
            let Some(mut reader) = ObjectReader::new(&path, item, &mut out) else {
                continue;
            };
            let principal = Principal::read_fields(&mut reader, &mut out);
            if let Some(principal) = &principal
                && !ids.insert(principal.id.clone())
            {
                out.push(bad(
                    reader.path_of("id"),
                    ViolationCode::Duplicate,
                    "is listed twice",
                ));
            }
            let digest = reader
                .required_str("tokenSha256", &mut out)
                .and_then(|text| {
                    let path = reader.path_of("tokenSha256");
                    let digest = parse_digest(text);
                    match digest {
                        None => out.push(bad(
                            path,
                            ViolationCode::InvalidFormat,
                            "must be 64 hex digits (the sha256 of the token)",
                        )),
                        Some(digest) if !digests.insert(digest) => out.push(bad(
                            path,
                            ViolationCode::Duplicate,
                            "is the digest of another principal's token",
                        )),
                        Some(_) => {}
                    }
                    digest
                });
            reader.finish(&mut out);
            if let (Some(principal), Some(digest)) = (principal, digest) {
                entries.push(Entry { digest, principal });
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

    /// Every principal, in the file's order (tokens stay here).
    pub fn all(&self) -> Vec<Principal> {
        self.entries
            .iter()
            .map(|entry| entry.principal.clone())
            .collect()
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
        let token = bearer_token(headers)?;
        self.find(token).cloned().ok_or_else(invalid_token)
    }
}

/// The one answer to a token that signs nobody in, whatever is wrong with it.
fn invalid_token() -> ApiError {
    ApiError::unauthenticated("the bearer token is not valid")
}

/// The token of the one `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::unauthenticated(
            "send exactly one `Authorization: Bearer <token>` header",
        ));
    };
    value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, token) = text.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
        })
}

/// Every way in: the principals file, then (when configured) OIDC JWTs.
#[derive(Debug)]
pub struct Authenticator {
    principals: Principals,
    oidc: Option<Oidc>,
}

impl Authenticator {
    /// Callers from `principals`, and JWT callers when `oidc` is given.
    pub fn new(principals: Principals, oidc: Option<Oidc>) -> Self {
        Self { principals, oidc }
    }

    /// The principals the server can list, for the warnings of a rules
    /// simulation: `None` when JWTs may sign in anybody.
    pub fn known_principals(&self) -> Option<Vec<Principal>> {
        self.oidc.is_none().then(|| self.principals.all())
    }

    /// The principal of a request's `Authorization: Bearer <token>` header:
    /// a token of the principals file is its principal; any other token of
    /// a JWT's shape is verified as one when OIDC is configured.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers)?;
        if let Some(principal) = self.principals.find(token) {
            return Ok(principal.clone());
        }
        match &self.oidc {
            Some(oidc) if looks_like_jwt(token) => {
                oidc.authenticate(token).await.map_err(|error| {
                    tracing::debug!(reason = %error, "a JWT was refused");
                    invalid_token()
                })
            }
            _ => Err(invalid_token()),
        }
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
            { "id": "ev\u{202E}e", "roles": ["ops\u{2066}"], "tokenSha256": digest_hex("e") },
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
                ("[5].id".into(), ViolationCode::ForbiddenCharacter),
                ("[5].roles[0]".into(), ViolationCode::ForbiddenCharacter),
            ]
        );
        assert!(Principals::parse(&json!([])).is_err());
        assert!(Principals::parse(&json!({})).is_err());
        assert!(Principals::parse_str("[").is_err());
    }
}
