//! The engine: every decision the server makes goes through here.
//!
//! NOTE FOR THE ENGINE'S OWNER: this first version runs the core natively over
//! an in-memory cache so the HTTP layer can be written against the final API.
//! Replace the internals with the wasmtime component (and Redis / memory
//! cache backends); keep the public signatures.

use serde_json::Value;
use signoff_core::{
    ApprovalRequest, Created, Error, ExpireReport, ListQuery, Manager, MemoryCache, Page, Preview,
    Principal, Rules, Timestamp, Violation, input,
};
use tokio::sync::RwLock;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Redis (or Redis Cluster, comma-separated nodes) URL; `None` for the
    /// embedded in-memory cache.
    pub redis_url: Option<String>,
    /// Prefix of every cache key.
    pub key_prefix: String,
    /// The rules in force at start (unless the cache holds newer ones).
    pub rules: Rules,
}

/// Figures for metrics and alerting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Pending requests.
    pub pending: u64,
    /// Creation time of the oldest pending request.
    pub oldest_pending_created_at: Option<Timestamp>,
}

/// Why a rules replacement was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplaceRulesError {
    /// `If-Match` named another digest.
    PreconditionFailed {
        /// The digest in force.
        current: String,
    },
    /// The document is invalid; every problem.
    Invalid(Vec<Violation>),
    /// The cache failed.
    Unavailable(String),
}

type NativeManager = Manager<MemoryCache, fn() -> Timestamp, fn() -> uuid::Uuid>;

fn wall_clock() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

/// The engine shared by every HTTP handler.
pub struct Engine {
    manager: RwLock<NativeManager>,
    rules_document: RwLock<Value>,
}

impl Engine {
    /// Starts the engine.
    pub async fn start(options: EngineOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(options.redis_url.is_none(), "redis is not wired yet");
        let cache = MemoryCache::with_clock(std::sync::Arc::new(|| wall_clock().as_millis()));
        let document = serde_json::to_value(&options.rules)?;
        Ok(Self {
            manager: RwLock::new(Manager::new(
                cache,
                wall_clock,
                uuid::Uuid::new_v4,
                options.rules,
            )),
            rules_document: RwLock::new(document),
        })
    }

    /// The rules document in force and its digest.
    pub async fn rules(&self) -> (Value, String) {
        let digest = self.manager.read().await.rules_digest().to_owned();
        (self.rules_document.read().await.clone(), digest)
    }

    /// Replaces the rules if `expected_digest` (when given) is the digest in
    /// force; returns the new digest.
    pub async fn replace_rules(
        &self,
        document: &Value,
        expected_digest: Option<&str>,
    ) -> Result<String, ReplaceRulesError> {
        let mut manager = self.manager.write().await;
        if let Some(expected) = expected_digest {
            if expected != manager.rules_digest() {
                return Err(ReplaceRulesError::PreconditionFailed {
                    current: manager.rules_digest().to_owned(),
                });
            }
        }
        let rules = Rules::parse(document).map_err(ReplaceRulesError::Invalid)?;
        let normalized = serde_json::to_value(&rules).unwrap_or(Value::Null);
        manager.set_rules(rules);
        *self.rules_document.write().await = normalized;
        Ok(manager.rules_digest().to_owned())
    }

    /// Validates a change and determines its level; stores nothing.
    pub async fn preview(&self, change: &Value) -> Result<Preview, Error> {
        Ok(signoff_core::preview(
            change,
            self.manager.read().await.rules(),
        ))
    }

    /// Files a change for `principal`.
    pub async fn create(
        &self,
        change: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Created, Error> {
        self.manager
            .read()
            .await
            .create(change, principal, idempotency_key)
            .await
    }

    /// The request with `id`, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, Error> {
        self.manager.read().await.get(id).await
    }

    /// One page of requests; `query` is `{ status?, policyType?, limit?, cursor? }`
    /// (`limit` may be a decimal string, as query strings carry it).
    pub async fn list(&self, query: &Value) -> Result<Page, Error> {
        let query = ListQuery::parse(Some(query))?;
        self.manager.read().await.list(&query).await
    }

    /// Approves with the body `{ comment? }` (absent body allowed).
    pub async fn approve(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        let comment = input::parse_approve(body)?;
        self.manager
            .read()
            .await
            .approve(id, principal, comment)
            .await
    }

    /// Rejects with the body `{ reason }`.
    pub async fn reject(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        let reason = input::parse_reject(body)?;
        self.manager
            .read()
            .await
            .reject(id, principal, reason)
            .await
    }

    /// Cancels (requester only); the body must be absent or `{}`.
    pub async fn cancel(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        input::parse_cancel(body)?;
        self.manager.read().await.cancel(id, principal).await
    }

    /// Comments with the body `{ text }`.
    pub async fn comment(
        &self,
        id: &str,
        principal: &Principal,
        body: Option<&Value>,
    ) -> Result<ApprovalRequest, Error> {
        let text = input::parse_comment(body)?;
        self.manager.read().await.comment(id, principal, text).await
    }

    /// Expires up to `limit` due requests.
    pub async fn expire_due(&self, limit: u32) -> Result<ExpireReport, Error> {
        self.manager.read().await.expire_due(limit).await
    }

    /// Pending count and oldest pending age.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let manager = self.manager.read().await;
        let pending = manager.cache().index_len(&signoff_core::keys::status_index(
            signoff_core::Status::Pending,
        ));
        Ok(Stats {
            pending: u64::try_from(pending).unwrap_or(u64::MAX),
            oldest_pending_created_at: manager.oldest_pending().await?,
        })
    }

    /// Whether the cache answers.
    pub async fn ready(&self) -> bool {
        true
    }
}
