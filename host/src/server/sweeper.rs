//! The expiry sweeper: a background task that expires due requests in
//! bounded batches.
//!
//! Every tick it asks the engine to expire up to `batch` due requests, and
//! goes on while batches come back full (at most `max_batches` per tick, so a
//! backlog is worked off without starving the server). Several servers
//! sharing one Redis may sweep at once: each expiry is a compare-and-swap, and
//! a request another server expired first is simply not counted here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::metrics::Metrics;
use crate::engine::Engine;

/// How the sweeper paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// Time between ticks.
    pub interval: Duration,
    /// Requests expired per batch (1..=500).
    pub batch: u32,
    /// Batches per tick at most.
    pub max_batches: u32,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 100,
            max_batches: 50,
        }
    }
}

/// One tick: expires due requests until a batch comes back short. Returns how
/// many requests it expired.
pub async fn tick(engine: &Engine, metrics: &Metrics, config: SweepConfig) -> u64 {
    let batch = config.batch.clamp(1, 500);
    let mut total = 0_u64;
    for _ in 0..config.max_batches.max(1) {
        match engine.expire_due(batch).await {
            Ok(report) => {
                metrics.swept(false);
                metrics.expired(report.expired);
                total += u64::from(report.expired);
                if report.expired < batch {
                    break;
                }
            }
            Err(error) => {
                metrics.swept(true);
                tracing::warn!(code = %error.code(), error = %error, "expiry sweep failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(expired = total, "expiry sweep");
    }
    total
}

/// Runs ticks until `stop` turns true (or its sender goes away).
pub async fn run(
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    config: SweepConfig,
    stop: watch::Receiver<bool>,
) {
    super::ticker::every(config.interval, stop, || async {
        tick(&engine, &metrics, config).await;
    })
    .await;
}
