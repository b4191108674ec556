//! # signoff-core
//!
//! Everything signoff decides, as pure Rust: validation of change requests,
//! rules and level determination, the approval lifecycle, listing, rate limits,
//! and the [`Manager`] that runs them over the [`Cache`] contract.
//!
//! The crate does no I/O and reads no clock and no randomness: the caller
//! injects time ([`Clock`]), ids ([`IdSource`]) and storage ([`Cache`]). The same
//! code is compiled natively, to a wasm-bindgen module for JavaScript and to a
//! WebAssembly component for the native host, so every build decides alike.
//!
//! ```
//! use signoff_core::{Manager, MemoryCache, Principal, Rules, Timestamp};
//! use serde_json::json;
//!
//! let rules = Rules::parse(&json!({
//!     "levels": [{ "name": "peer", "ttlSeconds": 86400, "stages": [
//!         { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
//!     ]}],
//!     "defaultLevel": "peer"
//! })).expect("valid rules");
//! let manager = Manager::new(
//!     MemoryCache::new(),
//!     || Timestamp::from_millis(1_767_225_600_000),
//!     || uuid::Uuid::from_u128(1),
//!     rules,
//! );
//! let change = json!({
//!     "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
//!     "title": "Add bob", "justification": "Bob joins the on-call rotation."
//! });
//! let alice = Principal::new("alice", &["engineer"]);
//! let bob = Principal::new("bob", &["engineer"]);
//! futures::executor::block_on(async {
//!     let created = manager.create(&change, &alice, None).await.expect("created");
//!     let id = created.request.id.to_string();
//!     let approved = manager.approve(&id, &bob, None).await.expect("approved");
//!     assert_eq!(approved.status, signoff_core::Status::Approved);
//! });
//! ```

pub mod audit;
pub mod cache;
pub mod change;
pub mod error;
pub mod events;
pub mod input;
pub mod keys;
pub mod listing;
pub mod manager;
pub mod memory;
pub mod permissions;
pub mod principal;
pub mod ratelimit;
pub mod request;
pub mod rules;
pub mod rules_store;
pub mod simulation;
pub mod time;
pub mod validation;

pub use cache::{Batch, Cache, Check, CommitOutcome, Entry, IndexChange, IndexEntry, Put};
pub use change::EmergencyFiling;
pub use change::{ChangeKind, MetadataValue, PolicyChange, Priority};
pub use error::{CacheError, Error, ErrorBody, ErrorCode};
pub use events::{Event, EventPage, EventType};
pub use input::{EventsQuery, ListQuery, ReviewFilter};
pub use listing::{Page, RawPage, View};
pub use manager::{Clock, Created, ExpireReport, IdSource, Manager, Preview, preview};
pub use memory::MemoryCache;
pub use permissions::{AllowedActions, Refusal};
pub use request::{
    Action, ActionKind, Approval, ApprovalRequest, Emergency, HistoryEntry, Principal, Rejection,
    Review, ReviewOutcome, ReviewStatus, Status,
};
pub use rules::{
    Condition, EmergencyPolicy, Level, LevelExplanation, MatchedRule, Quorum, RateLimit, Rule,
    Rules, Separation, Stage, StageGroup, Visibility,
};
pub use rules_store::{IfMatch, RulesInForce, StoredRules};
pub use simulation::{
    LevelChange, RulesWarning, Simulation, SimulationBody, SimulationRequest, WarningCode,
    simulate_rules,
};
pub use time::Timestamp;
pub use validation::{Violation, ViolationCode};

#[cfg(test)]
#[cfg(feature = "openapi")]
mod openapi_tests;
