//! Prometheus metrics, served at `/metrics`.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: it
//! is maintained under the Prometheus organisation, follows OpenMetrics, has
//! typed label sets and no global registry. Counters move as the handlers and
//! the sweeper act; the gauges of pending work are read from the engine by a
//! background task ([`refresh`]), so a scrape only renders what is in memory
//! (it never waits on the cache or on an engine instance), and every server
//! sharing one Redis reports the same figures, at most one refresh period
//! old.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;
use signoff_core::{ApprovalRequest, Timestamp};

use tokio::sync::watch;

use crate::engine::{Engine, Stats};

/// At most this many distinct `policy_type` label values; the others are
/// counted as `_other` so a client cannot blow up the series count.
const MAX_POLICY_TYPE_LABELS: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CreatedLabels {
    level: String,
    policy_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: String,
    maxmemory_policy: String,
    appendonly: String,
    appendfsync: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    endpoint: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// How one webhook delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// Anything else: it is tried again later.
    Failed,
    /// Failed for the whole retry period: the event is skipped.
    GivenUp,
}

impl WebhookOutcome {
    const ALL: [Self; 3] = [Self::Delivered, Self::Failed, Self::GivenUp];

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::GivenUp => "given_up",
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_buckets() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

fn decision_buckets() -> Histogram {
    Histogram::new([
        60.0,
        300.0,
        900.0,
        3600.0,
        14_400.0,
        43_200.0,
        86_400.0,
        259_200.0,
        604_800.0,
        2_592_000.0,
        31_536_000.0,
    ])
}

/// A decision that ended a request's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The last stage was met.
    Approved,
    /// An approver rejected it.
    Rejected,
    /// The requester withdrew it.
    Cancelled,
    /// The sweeper found it past its deadline.
    Expired,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    created: Family<CreatedLabels, Counter>,
    decisions: Family<OutcomeLabels, Counter>,
    decision_seconds: HistogramFamily<OutcomeLabels>,
    rate_limited: Counter,
    invalid: Counter,
    http: HistogramFamily<HttpLabels>,
    pending: Gauge,
    oldest_pending_age: Gauge<f64, AtomicU64>,
    open_reviews: Gauge,
    overdue_reviews: Gauge,
    level_ttl: Family<LevelLabels, Gauge>,
    sweeps: Counter,
    sweep_failures: Counter,
    stats_failures: Counter,
    store: Family<StoreLabels, Gauge>,
    partitions: Gauge,
    policy_types: Mutex<HashSet<String>>,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    webhook_backlog_age: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signoff");
        let metrics = Self {
            created: Family::default(),
            decisions: Family::default(),
            decision_seconds: Family::new_with_constructor(decision_buckets),
            rate_limited: Counter::default(),
            invalid: Counter::default(),
            http: Family::new_with_constructor(http_buckets),
            pending: Gauge::default(),
            oldest_pending_age: Gauge::default(),
            open_reviews: Gauge::default(),
            overdue_reviews: Gauge::default(),
            level_ttl: Family::default(),
            sweeps: Counter::default(),
            sweep_failures: Counter::default(),
            stats_failures: Counter::default(),
            store: Family::default(),
            partitions: Gauge::default(),
            policy_types: Mutex::new(HashSet::new()),
            webhook_deliveries: Family::default(),
            webhook_backlog_age: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests_created",
            "Change requests created, by approval level and policy type",
            metrics.created.clone(),
        );
        registry.register(
            "decisions",
            "Requests that reached a terminal state through an action or the sweeper, by outcome",
            metrics.decisions.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time from a request's creation to its decision, by outcome",
            metrics.decision_seconds.clone(),
        );
        registry.register(
            "rate_limited",
            "Creates refused by the requester's rate limit",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "invalid_requests",
            "Calls answered 400 invalid_request",
            metrics.invalid.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP latency, by method, route template and status",
            metrics.http.clone(),
        );
        registry.register(
            "pending_requests",
            "Requests pending (read from the cache in the background)",
            metrics.pending.clone(),
        );
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest pending request (0 when none)",
            metrics.oldest_pending_age.clone(),
        );
        registry.register(
            "emergency_reviews_open",
            "Emergency requests whose after-the-fact review is open",
            metrics.open_reviews.clone(),
        );
        registry.register(
            "emergency_reviews_overdue",
            "Emergency requests whose review is open past its dueAt",
            metrics.overdue_reviews.clone(),
        );
        registry.register(
            "level_ttl_seconds",
            "How long a request of each level of the rules in force may stay pending",
            metrics.level_ttl.clone(),
        );
        registry.register(
            "sweeps",
            "Batches run by the expiry sweeper",
            metrics.sweeps.clone(),
        );
        registry.register(
            "sweep_failures",
            "Sweeper batches that failed (the cache was unavailable)",
            metrics.sweep_failures.clone(),
        );
        registry.register(
            "store",
            "What the store promises (1 for the durability settings read at start-up)",
            metrics.store.clone(),
        );
        registry.register(
            "store_partitions",
            "The store's number of partitions",
            metrics.partitions.clone(),
        );
        registry.register(
            "stats_failures",
            "Background refreshes whose pending figures could not be read from the cache",
            metrics.stats_failures.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by endpoint (its URL without the query) and outcome \
             (delivered, failed: to be retried, given_up: retried for the whole retry period)",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_oldest_undelivered_age_seconds",
            "Age of the oldest event this server has yet to deliver to the endpoint (0 when \
             none); take the maximum across servers",
            metrics.webhook_backlog_age.clone(),
        );
        // Every outcome is exported from the start, at zero.
        for outcome in [
            Outcome::Approved,
            Outcome::Rejected,
            Outcome::Cancelled,
            Outcome::Expired,
        ] {
            let labels = OutcomeLabels {
                outcome: outcome.as_str().to_owned(),
            };
            drop(metrics.decisions.get_or_create(&labels));
            if outcome != Outcome::Expired {
                drop(metrics.decision_seconds.get_or_create(&labels));
            }
        }
        Self {
            registry,
            ..metrics
        }
    }

    fn policy_type_label(&self, policy_type: &str) -> String {
        let Ok(mut seen) = self.policy_types.lock() else {
            return "_other".to_owned();
        };
        if seen.contains(policy_type) {
            return policy_type.to_owned();
        }
        if seen.len() < MAX_POLICY_TYPE_LABELS {
            seen.insert(policy_type.to_owned());
            return policy_type.to_owned();
        }
        "_other".to_owned()
    }

    /// Exports an endpoint's webhook figures from the start, at zero.
    pub fn webhook_endpoint(&self, endpoint: &str) {
        for outcome in WebhookOutcome::ALL {
            drop(self.webhook_deliveries.get_or_create(&WebhookLabels {
                endpoint: endpoint.to_owned(),
                outcome: outcome.as_str().to_owned(),
            }));
        }
        drop(self.webhook_backlog_age.get_or_create(&EndpointLabels {
            endpoint: endpoint.to_owned(),
        }));
    }

    /// Counts one delivery attempt to `endpoint`.
    pub fn webhook_delivery(&self, endpoint: &str, outcome: WebhookOutcome) {
        self.webhook_deliveries
            .get_or_create(&WebhookLabels {
                endpoint: endpoint.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// The age of the oldest event still to deliver to `endpoint`.
    pub fn webhook_backlog(&self, endpoint: &str, age: Duration) {
        self.webhook_backlog_age
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .set(age.as_secs_f64());
    }

    /// Counts a created request.
    pub fn created(&self, request: &ApprovalRequest) {
        let labels = CreatedLabels {
            level: request.level.clone(),
            policy_type: self.policy_type_label(&request.change.policy_type),
        };
        self.created.get_or_create(&labels).inc();
    }

    /// Counts a decision made by an action, with the request as decided.
    pub fn decided(&self, outcome: Outcome, request: &ApprovalRequest) {
        let labels = OutcomeLabels {
            outcome: outcome.as_str().to_owned(),
        };
        self.decisions.get_or_create(&labels).inc();
        let millis = request
            .updated_at
            .as_millis()
            .saturating_sub(request.created_at.as_millis());
        let seconds = millis.max(0) as f64 / 1000.0;
        self.decision_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Counts requests the sweeper expired.
    pub fn expired(&self, count: u32) {
        let labels = OutcomeLabels {
            outcome: Outcome::Expired.as_str().to_owned(),
        };
        self.decisions
            .get_or_create(&labels)
            .inc_by(u64::from(count));
    }

    /// Counts one sweeper batch, and whether it failed.
    pub fn swept(&self, failed: bool) {
        self.sweeps.inc();
        if failed {
            self.sweep_failures.inc();
        }
    }

    /// Counts a rate-limited create.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts an `invalid_request` answer.
    pub fn invalid(&self) {
        self.invalid.inc();
    }

    /// Records one HTTP call.
    pub fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.http.get_or_create(&labels).observe(seconds);
    }

    /// Records what the store promised at start-up, and its partitions.
    pub fn set_store(&self, durability: Option<&crate::cache::Durability>, partitions: u16) {
        let labels = match durability {
            Some(durability) => StoreLabels {
                backend: "redis".to_owned(),
                maxmemory_policy: durability.maxmemory_policy.clone(),
                appendonly: durability.appendonly.clone(),
                appendfsync: durability.appendfsync.clone(),
            },
            None => StoreLabels {
                backend: "memory-or-unknown".to_owned(),
                maxmemory_policy: String::new(),
                appendonly: String::new(),
                appendfsync: String::new(),
            },
        };
        self.store.get_or_create(&labels).set(1);
        self.partitions.set(i64::from(partitions));
    }

    /// Sets the gauges from the engine's figures.
    pub fn set_stats(&self, stats: Result<Stats, ()>, now: Timestamp, rules: &Value) {
        match stats {
            Ok(stats) => {
                self.pending
                    .set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
                let age_ms = stats.oldest_pending_created_at.map_or(0, |created| {
                    now.as_millis().saturating_sub(created.as_millis())
                });
                let age = age_ms.max(0) as f64 / 1000.0;
                self.oldest_pending_age.set(age);
                let count = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
                self.open_reviews.set(count(stats.open_reviews));
                self.overdue_reviews.set(count(stats.overdue_reviews));
            }
            Err(()) => {
                self.stats_failures.inc();
            }
        }
        self.level_ttl.clear();
        if let Some(levels) = rules.get("levels").and_then(Value::as_array) {
            for level in levels {
                if let (Some(name), Some(ttl)) = (
                    level.get("name").and_then(Value::as_str),
                    level.get("ttlSeconds").and_then(Value::as_i64),
                ) {
                    self.level_ttl
                        .get_or_create(&LevelLabels {
                            level: name.to_owned(),
                        })
                        .set(ttl);
                }
            }
        }
    }

    /// The exposition text (OpenMetrics, which Prometheus also reads as its
    /// classic text format).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// Reads the engine's figures into `metrics` now, then every `period`, until
/// `stop` turns true (or its sender goes away).
pub async fn refresh(
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    period: Duration,
    stop: watch::Receiver<bool>,
) {
    super::ticker::every(period, stop, || async {
        let stats = engine.stats().await.map_err(|error| {
            tracing::warn!(error = %error, "metrics: pending figures unavailable");
        });
        let (rules, _) = engine.rules().await;
        let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
        metrics.set_stats(stats, now, &rules);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gauges_and_counters_render() {
        let metrics = Metrics::new();
        metrics.rate_limited();
        metrics.invalid();
        metrics.expired(3);
        metrics.http("GET", "/healthz", 200, 0.001);
        metrics.set_stats(
            Ok(Stats {
                pending: 4,
                oldest_pending_created_at: Some(Timestamp::from_millis(1_000)),
                open_reviews: 3,
                overdue_reviews: 1,
            }),
            Timestamp::from_millis(61_000),
            &json!({ "levels": [{ "name": "peer", "ttlSeconds": 60, "stages": [] }] }),
        );
        let text = metrics.render();
        for line in [
            "signoff_rate_limited_total 1",
            "signoff_invalid_requests_total 1",
            "signoff_decisions_total{outcome=\"expired\"} 3",
            "signoff_pending_requests 4",
            "signoff_oldest_pending_age_seconds 60.0",
            "signoff_emergency_reviews_open 3",
            "signoff_emergency_reviews_overdue 1",
            "signoff_level_ttl_seconds{level=\"peer\"} 60",
            "signoff_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn policy_type_labels_are_bounded() {
        let metrics = Metrics::new();
        for index in 0..MAX_POLICY_TYPE_LABELS {
            assert_eq!(
                metrics.policy_type_label(&format!("t{index}")),
                format!("t{index}")
            );
        }
        assert_eq!(metrics.policy_type_label("one-more"), "_other");
        assert_eq!(metrics.policy_type_label("t0"), "t0");
    }
}
