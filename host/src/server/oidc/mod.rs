//! OpenID Connect sign-in: callers that present a JWT (an ID or access
//! token) from the configured issuer.
//!
//! How it is built, and why:
//!
//! - **Verification is jsonwebtoken's, with ring's cryptography**
//!   ([`provider`]): jsonwebtoken parses the token and checks `iss`, `aud`,
//!   `exp` and `nbf` (60 s of leeway); ring, which rustls already brings,
//!   checks the signature. No signature code is written here.
//! - **The key decides the algorithm, not the token.** Each JWKS key is
//!   pinned to one algorithm from its own `kty`/`crv` ([`jwks`]): RS256,
//!   ES256 or EdDSA. A token's `alg` must equal its key's, so `none`, HMAC
//!   (with a public key as the secret) or any other algorithm never reaches
//!   a verifier.
//! - **A fetch never holds a request for long.** The keys are read once at
//!   start (the server refuses to start without them). A token naming an
//!   unknown `kid` triggers a refetch at most once a minute, bounded by 5 s
//!   and 256 KiB; while it runs, calls with known keys go on, and calls with
//!   unknown kids wait for its result rather than fetching again. A failed
//!   fetch keeps the known keys.
//! - **One answer for every bad token.** Whatever is wrong, the caller gets
//!   401 `unauthenticated` with the same message; the reason is logged at
//!   `debug`, never the token.
//! - **The principal is the core's.** The id claim and the roles claim make
//!   a `{ id, roles }` document that [`signoff_core::Principal::parse`]
//!   judges, as it judges the principals file ([`claims`]).

mod claims;
mod jwks;
mod provider;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use signoff_core::Principal;
use tokio::sync::Mutex;

pub use self::claims::ClaimsError;
pub use self::jwks::{FETCH_TIMEOUT, JwksError, JwksSource, MAX_JWKS_BYTES};
use self::jwks::{Fetcher, KeySet, Lookup};

/// The leeway on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;
/// The shortest time between two refetches of the keys.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest token looked at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What `--oidc-*` configure.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The expected `iss`.
    pub issuer: String,
    /// The audience `aud` must hold.
    pub audience: String,
    /// Where the signing keys are.
    pub jwks: JwksSource,
    /// The claim holding the roles.
    pub roles_claim: String,
    /// The claim holding the principal's id.
    pub id_claim: String,
}

/// Why OIDC sign-in cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A setting is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The keys could not be loaded.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// jsonwebtoken is bound to another cryptography provider.
    #[error("another JWT cryptography provider is installed in this process")]
    Provider,
}

impl OidcSettings {
    /// Settings with the default claims (`sub`, `roles`); `jwks` is a file
    /// path or an `https://` URL (`http://` on loopback only).
    pub fn new(issuer: &str, audience: &str, jwks: &str) -> Result<Self, OidcError> {
        for (flag, value) in [
            ("--oidc-issuer", issuer),
            ("--oidc-audience", audience),
            ("--oidc-jwks", jwks),
        ] {
            if value.trim().is_empty() {
                return Err(OidcError::Empty(flag));
            }
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks: JwksSource::parse(jwks.trim())?,
            roles_claim: "roles".to_owned(),
            id_claim: "sub".to_owned(),
        })
    }
}

/// Why a token was refused (logged at `debug`; the caller only learns that
/// it was).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Longer than any real token.
    #[error("the token is too long")]
    TooLong,
    /// Not a JWT, or its header does not parse (`alg: none` included).
    #[error("the token is not a JWT: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    /// An algorithm this server never accepts.
    #[error("the token's algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    /// No key for its `kid`, even after a refetch.
    #[error("no key for the token's kid")]
    UnknownKey,
    /// Its `kid` belongs to a key of another algorithm, or it has no `kid`
    /// and the keys do not single one out.
    #[error("no key of the token's algorithm for it")]
    NoKey,
    /// A bad signature, issuer, audience, or time.
    #[error("the token is not valid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    /// The claims give no valid principal.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
}

/// Signs JWT callers in.
pub struct Oidc {
    issuer: String,
    audience: String,
    roles_claim: String,
    id_claim: String,
    fetcher: Fetcher,
    keys: RwLock<Arc<KeySet>>,
    /// When the last refetch began; held while one runs.
    refetched: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks", &self.fetcher.source().to_string())
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Loads the keys; fails if they cannot be had now.
    pub async fn start(settings: OidcSettings) -> Result<Self, OidcError> {
        if !provider::install() {
            return Err(OidcError::Provider);
        }
        let fetcher = Fetcher::new(settings.jwks)?;
        let keys = fetcher.fetch().await?;
        tracing::info!(
            jwks = %fetcher.source(),
            keys = keys.len(),
            issuer = %settings.issuer,
            "OIDC sign-in keys loaded"
        );
        Ok(Self {
            issuer: settings.issuer,
            audience: settings.audience,
            roles_claim: settings.roles_claim,
            id_claim: settings.id_claim,
            fetcher,
            keys: RwLock::new(Arc::new(keys)),
            refetched: Mutex::new(None),
        })
    }

    fn keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Fetches the keys again unless that was tried less than
    /// [`REFETCH_INTERVAL`] ago; a failure keeps the keys in force. Calls
    /// arriving while a fetch runs wait for it instead of starting another.
    async fn refetch(&self) {
        let mut last = self.refetched.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetcher.fetch().await {
            Ok(keys) => {
                tracing::info!(
                    jwks = %self.fetcher.source(),
                    keys = keys.len(),
                    "OIDC sign-in keys refetched for an unknown kid"
                );
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
            }
            Err(error) => tracing::warn!(
                %error,
                "refetching the OIDC sign-in keys failed; the known keys stay in force"
            ),
        }
    }

    /// The principal a JWT signs in, or why it does not.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.as_deref();
        let mut keys = self.keys();
        if matches!(keys.find(kid, header.alg), Lookup::UnknownKid) {
            self.refetch().await;
            keys = self.keys();
        }
        let key = match keys.find(kid, header.alg) {
            Lookup::Found(key) => key,
            Lookup::UnknownKid => return Err(TokenError::UnknownKey),
            Lookup::NoKey => return Err(TokenError::NoKey),
        };
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(TokenError::Invalid)?
            .claims;
        Ok(claims::principal(
            &claims,
            &self.id_claim,
            &self.roles_claim,
        )?)
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts), so that
/// opaque tokens are not parsed as one.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'='))
}
