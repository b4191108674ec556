//! The rules in force, and how they are shared through the cache.
//!
//! The document lives in the cache under [`RULES_KEY`] as
//! `{ "digest", "document" }`, so every server on one Redis decides with the
//! same rules. A replacement is a compare-and-swap on that key. Each server
//! keeps its own copy for the requests it serves and reloads it when the
//! cache holds another digest: at start, right after its own replacements,
//! and on a timer (`EngineSettings::rules_refresh`, one second by default),
//! so other servers converge within that period. The timer rather than a read
//! per request keeps a cache round trip off every request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The cache key of the rules document (beside the core's own keys, which
/// never start with `cfg:`).
pub const RULES_KEY: &str = "cfg:rules";

/// The stored form.
#[derive(Debug, Serialize, Deserialize)]
pub struct RulesRecord {
    /// The digest the engine computed for `document`.
    pub digest: String,
    /// The normalized document.
    pub document: Value,
}

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
