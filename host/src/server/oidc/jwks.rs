//! The signing keys: a JWKS document read from a file or fetched over
//! https (plain http on loopback only), parsed into keys that each verify
//! exactly one algorithm.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::outbound::{Outbound, OutboundError, OutboundUrl};

/// The longest a fetch may take, connection and TLS included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys a document may list.
pub const MAX_KEYS: usize = 100;

/// Why a JWKS could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// `--oidc-jwks` is neither a file nor an http(s) URL this server uses.
    #[error("--oidc-jwks `{0}`: {1}")]
    Source(String, String),
    /// No trusted certificates to check an https server with.
    #[error("no trusted certificates found on this system to check `{0}` with")]
    NoRoots(String),
    /// The file could not be read.
    #[error("cannot read the JWKS file `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The fetch failed.
    #[error("cannot fetch the JWKS from `{url}`: {reason}")]
    Fetch {
        /// Where from (without its query).
        url: String,
        /// Why.
        reason: String,
    },
    /// The fetch took longer than [`FETCH_TIMEOUT`].
    #[error("fetching the JWKS from `{0}` took more than 5 s")]
    Timeout(String),
    /// Larger than [`MAX_JWKS_BYTES`].
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// Not a JWKS document, or not one key this server can use.
    #[error("the JWKS is not usable: {0}")]
    Invalid(String),
}

/// One verification key, pinned to one algorithm.
#[derive(Clone)]
pub struct Key {
    /// The only algorithm it verifies.
    pub algorithm: Algorithm,
    /// The public key.
    pub decoding: DecodingKey,
}

/// The usable keys of one JWKS document.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    without_kid: Vec<Key>,
}

/// What a token's header finds in a [`KeySet`].
pub enum Lookup<'a> {
    /// The key to verify it with.
    Found(&'a Key),
    /// The token names a `kid` the set does not hold.
    UnknownKid,
    /// No key for it (a known `kid` for another algorithm, or no `kid` and
    /// not exactly one key of its algorithm).
    NoKey,
}

fn decode_b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The key of one JWK, if it is a signature key of RS256 (2048 to 8192
/// bits), ES256 (P-256) or EdDSA (Ed25519). The algorithm comes from the
/// key's own `kty` and `crv`, and its `alg` may only agree with them.
fn key_of(jwk: &Value) -> Option<Key> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if jwk
        .get("use")
        .is_some_and(|usage| usage.as_str() != Some("sig"))
    {
        return None;
    }
    let alg = text("alg");
    match (text("kty")?, text("crv")) {
        ("RSA", _) if alg.is_none_or(|alg| alg == "RS256") => {
            let n = decode_b64(text("n")?)?;
            let e = decode_b64(text("e")?)?;
            let (n, e) = (without_leading_zeros(&n), without_leading_zeros(&e));
            (256..=1024).contains(&n.len()).then(|| Key {
                algorithm: Algorithm::RS256,
                decoding: DecodingKey::from_rsa_raw_components(n, e),
            })
        }
        ("EC", Some("P-256")) if alg.is_none_or(|alg| alg == "ES256") => {
            let (x, y) = (text("x")?, text("y")?);
            let sizes_fit = decode_b64(x)?.len() == 32 && decode_b64(y)?.len() == 32;
            sizes_fit.then_some(())?;
            Some(Key {
                algorithm: Algorithm::ES256,
                decoding: DecodingKey::from_ec_components(
                    x.trim_end_matches('='),
                    y.trim_end_matches('='),
                )
                .ok()?,
            })
        }
        ("OKP", Some("Ed25519")) if alg.is_none_or(|alg| alg == "EdDSA" || alg == "Ed25519") => {
            let x = text("x")?;
            (decode_b64(x)?.len() == 32).then_some(())?;
            Some(Key {
                algorithm: Algorithm::EdDSA,
                decoding: DecodingKey::from_ed_components(x.trim_end_matches('=')).ok()?,
            })
        }
        _ => None,
    }
}

impl KeySet {
    /// The usable keys of a JWKS document (`{ "keys": [..] }`); keys of
    /// other kinds or uses are skipped, a `kid` listed twice keeps its first
    /// usable key. Refused when no key is usable.
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        let document: Value = serde_json::from_slice(bytes)
            .map_err(|error| JwksError::Invalid(format!("not JSON: {error}")))?;
        let Some(keys) = document.get("keys").and_then(Value::as_array) else {
            return Err(JwksError::Invalid("no `keys` array".into()));
        };
        if keys.len() > MAX_KEYS {
            return Err(JwksError::Invalid(format!("more than {MAX_KEYS} keys")));
        }
        let mut set = Self::default();
        for jwk in keys {
            let Some(key) = key_of(jwk) else { continue };
            match jwk.get("kid").and_then(Value::as_str) {
                Some(kid) => {
                    set.by_kid.entry(kid.to_owned()).or_insert(key);
                }
                None => set.without_kid.push(key),
            }
        }
        if set.is_empty() {
            return Err(JwksError::Invalid(
                "no RS256, ES256 or EdDSA signature key".into(),
            ));
        }
        Ok(set)
    }

    /// How many usable keys it holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// Whether it holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token whose header says `kid` and `algorithm`.
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.algorithm == algorithm => Lookup::Found(key),
                Some(_) => Lookup::NoKey,
                None => Lookup::UnknownKid,
            },
            None => {
                let mut candidates = self
                    .by_kid
                    .values()
                    .chain(&self.without_kid)
                    .filter(|key| key.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => Lookup::Found(key),
                    _ => Lookup::NoKey,
                }
            }
        }
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS file, read again on a refetch.
    File(PathBuf),
    /// A JWKS URL.
    Url(OutboundUrl),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => url.fmt(f),
        }
    }
}

impl JwksSource {
    /// `https://…` (or `http://…` on a loopback host) is a URL, anything
    /// else a file path.
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let refused =
            |why: &dyn std::fmt::Display| JwksError::Source(text.to_owned(), why.to_string());
        let lower = text.to_ascii_lowercase();
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            if lower.contains("://") {
                return Err(refused(&"only https:// URLs or file paths are accepted"));
            }
            return Ok(Self::File(PathBuf::from(text)));
        }
        OutboundUrl::parse(text)
            .map(Self::Url)
            .map_err(|why| refused(&why))
    }
}

/// Reads the keys from their source: a file, or one GET within
/// [`FETCH_TIMEOUT`] and [`MAX_JWKS_BYTES`].
pub struct Fetcher {
    source: JwksSource,
    client: Outbound,
}

impl Fetcher {
    /// A fetcher for `source`; for https, with the system's trusted
    /// certificates (as `rediss://` uses them).
    pub fn new(source: JwksSource) -> Result<Self, JwksError> {
        let tls = matches!(&source, JwksSource::Url(url) if url.is_tls());
        let client = Outbound::new(tls).map_err(|_| JwksError::NoRoots(source.to_string()))?;
        Ok(Self { source, client })
    }

    /// Where the keys come from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The key set as the source holds it now.
    pub async fn fetch(&self) -> Result<KeySet, JwksError> {
        let bytes = match &self.source {
            JwksSource::File(path) => read_file(path).await?,
            JwksSource::Url(url) => tokio::time::timeout(FETCH_TIMEOUT, self.get(url))
                .await
                .map_err(|_| JwksError::Timeout(url.to_string()))??,
        };
        KeySet::parse(&bytes)
    }

    /// One GET of `url`: the body of a 200. Redirects are not followed.
    async fn get(&self, url: &OutboundUrl) -> Result<Bytes, JwksError> {
        let failed = |reason: String| JwksError::Fetch {
            url: url.to_string(),
            reason,
        };
        let accept = HeaderValue::from_static("application/jwk-set+json, application/json");
        let answer = self
            .client
            .send(
                url,
                Method::GET,
                &[(header::ACCEPT, accept)],
                Bytes::new(),
                MAX_JWKS_BYTES,
            )
            .await
            .map_err(|error| match error {
                OutboundError::TooLarge(_) => JwksError::TooLarge,
                other => failed(other.to_string()),
            })?;
        if answer.status != StatusCode::OK {
            return Err(failed(format!("answered {}", answer.status)));
        }
        Ok(answer.body)
    }
}

async fn read_file(path: &Path) -> Result<Bytes, JwksError> {
    let read_error = |error| JwksError::Read {
        path: path.to_owned(),
        error,
    };
    let size = tokio::fs::metadata(path).await.map_err(read_error)?.len();
    if size > MAX_JWKS_BYTES as u64 {
        return Err(JwksError::TooLarge);
    }
    let bytes = tokio::fs::read(path).await.map_err(read_error)?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_or_loopback_http_urls() {
        assert!(matches!(
            JwksSource::parse("/etc/jwks.json"),
            Ok(JwksSource::File(_))
        ));
        assert!(matches!(
            JwksSource::parse("https://idp.example/keys"),
            Ok(JwksSource::Url(_))
        ));
        for loopback in [
            "http://127.0.0.1:9/k",
            "http://[::1]:9/k",
            "http://localhost/k",
        ] {
            assert!(
                matches!(JwksSource::parse(loopback), Ok(JwksSource::Url(_))),
                "{loopback}"
            );
        }
        for refused in [
            "http://idp.example/keys",
            "http://10.0.0.1/k",
            "ftp://x/y",
            "https://u:p@x/k",
        ] {
            assert!(JwksSource::parse(refused).is_err(), "{refused}");
        }
        let Ok(JwksSource::Url(url)) = JwksSource::parse("https://idp.example:8443/k?secret=1")
        else {
            panic!("not a URL");
        };
        assert_eq!(url.to_string(), "https://idp.example:8443/k");
    }

    #[test]
    fn keys_are_pinned_by_their_kind() {
        let x = URL_SAFE_NO_PAD.encode([7_u8; 32]);
        let n = URL_SAFE_NO_PAD.encode([0xC5_u8; 256]);
        let set = KeySet::parse(
            json!({ "keys": [
                { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": x },
                { "kty": "RSA", "kid": "rsa", "n": n, "e": "AQAB" },
                { "kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB" },
                { "kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB" },
                { "kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB" },
                { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
                { "kty": "EC", "crv": "P-384", "kid": "p384", "x": x, "y": x },
                { "kty": "OKP", "crv": "Ed25519", "kid": "liar", "alg": "RS256", "x": x },
            ] })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert!(matches!(
            set.find(Some("ed"), Algorithm::EdDSA),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("ed"), Algorithm::RS256),
            Lookup::NoKey
        ));
        assert!(matches!(
            set.find(Some("rsa"), Algorithm::RS256),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("hmac"), Algorithm::HS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(set.find(None, Algorithm::RS256), Lookup::Found(_)));
        assert!(matches!(set.find(None, Algorithm::ES256), Lookup::NoKey));
        assert!(KeySet::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(KeySet::parse(b"[]").is_err());
    }
}
