//! The rules in force, and how they are shared through the cache.
//!
//! The document lives in the cache under [`RULES_KEY`] as the core's
//! `StoredRules` (`{ "digest", "document" }`), so every server on one Redis
//! decides with the same rules. A replacement is decided by the core in the
//! engine (`admin`, `If-Match`, a compare-and-swap on that key). Each server
//! keeps its own copy for the requests it serves: at start it publishes the
//! rules it was given when the cache holds none, and refuses to start when
//! the cache holds others; it takes its own replacements at once, and
//! reloads the cache's on a timer (`EngineSettings::rules_refresh`, one
//! second by default), so other servers converge within that period. A
//! reload never puts back rules older than a replacement made while it ran.
//! The timer rather than a read per request keeps a cache round trip off
//! every request.

use std::sync::Arc;

use serde_json::Value;
use signoff_core::Error;

/// The cache key of the rules document: the core's.
pub use signoff_core::rules_store::RULES_KEY;

/// One version of the rules, as every request reads it.
#[derive(Debug)]
pub struct RulesInForce {
    /// The normalized document.
    pub document: Value,
    /// The same, as the JSON text the guest reads.
    pub text: Arc<str>,
    /// Its digest.
    pub digest: String,
}

impl RulesInForce {
    /// The rules that the engine validated (or replaced): their digest and
    /// normalized document as JSON text.
    pub fn from_info(digest: String, text: String) -> Result<Self, Error> {
        let document = serde_json::from_str(&text).map_err(|error| {
            Error::Internal(format!("the engine normalized rules badly: {error}"))
        })?;
        Ok(Self {
            document,
            text: Arc::from(text),
            digest,
        })
    }
}
