//! Webhooks: every event an endpoint asks for is POSTed to it, signed, at
//! least once, in order (docs/CONTRACT.md section 12).
//!
//! **Where the state lives.** Delivery follows each partition's event log
//! (ids increase within a partition, and a request lives in one partition,
//! so per-partition order is per-request order). For every endpoint and
//! partition the store holds one delivery record (`p<N>:webhook:<endpoint>`,
//! see [`signoff_core::keys::Layout::webhook_delivery`]): the last event
//! delivered (or given up), the retry schedule of the next, and a lease
//! naming the server that delivers it. Every change to the record is a
//! compare-and-swap on its version, so it survives restarts and is shared
//! by every server on the store.
//!
//! **One server per endpoint and partition.** A server delivers only while
//! it holds the record's lease (taken by compare-and-swap, renewed before it
//! would lapse during a delivery, released at shutdown). Two servers on one
//! store therefore never deliver the same event in normal operation; a
//! server that dies mid-delivery holds its lease until it lapses
//! ([`Settings::lease`]), then another (or the restarted one) delivers the
//! event again: at least once.
//!
//! **Retries.** Anything but a 2xx within the timeout is a failure: the
//! same event is tried again after 1 s, doubling to 1 h, and events after it
//! wait (order). An event that has failed for the whole retry period (24 h)
//! is given up, counted, and the next one goes.
//!
//! **Where an endpoint starts.** The first time a store sees an endpoint,
//! its records start at each partition's newest event: it receives the
//! events committed after the first server that knew it started.

mod endpoint;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, header};
use serde::{Deserialize, Serialize};
use signoff_core::cache::{Batch, Check, IndexEntry, Put};
use signoff_core::events::Head;
use signoff_core::{CacheError, CommitOutcome, Event};
use tokio::sync::watch;

pub use self::endpoint::{
    ADVISED_SECRET_BYTES, Endpoint, EndpointsError, MAX_ENDPOINTS, MAX_SECRET_BYTES,
    MIN_SECRET_BYTES, parse, read,
};
use super::metrics::{Metrics, WebhookOutcome};
use crate::cache::CacheBackend;
use crate::engine::Engine;
use crate::outbound::{Outbound, OutboundError};

/// The events read from a partition's log per round.
const BATCH: u32 = 32;
/// The most of an endpoint's answer read (the answer itself is ignored).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How deliveries are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long one delivery may take, connection included.
    pub timeout: Duration,
    /// How long an event is retried before it is given up.
    pub give_up_after: Duration,
    /// The first retry's delay; each next one doubles, up to `max_retry`.
    pub first_retry: Duration,
    /// The longest delay between two tries.
    pub max_retry: Duration,
    /// How often the logs are looked at for new events.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            give_up_after: Duration::from_secs(24 * 3600),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(3600),
            poll: Duration::from_millis(250),
        }
    }
}

impl Settings {
    /// How long a lease lasts: long enough for two deliveries, so that it is
    /// renewed well before one could outlast it.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }

    /// The wait before try `attempt + 1` of an event that failed `attempt`
    /// (1, 2, ...) times.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_retry
            .saturating_mul(1_u32 << doublings)
            .min(self.max_retry)
    }
}

/// One endpoint's delivery of one partition's events, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    /// The last event delivered or given up: the next is the first after it
    /// (`None`: from the log's start).
    after: Option<String>,
    /// Failed tries of the next event.
    attempts: u32,
    /// When the first of them failed (epoch ms).
    failing_since: Option<i64>,
    /// Not before then is it tried again (epoch ms).
    retry_at: Option<i64>,
    /// When the failing event happened (epoch ms): the backlog's age while
    /// it waits.
    failing_event_at: Option<i64>,
    /// The server delivering.
    owner: Option<String>,
    /// Until when `owner` holds the lease (epoch ms).
    lease_until: i64,
}

impl Delivery {
    /// Done with the event `id` (delivered or given up): the next one
    /// starts with a clean slate.
    fn settle(&mut self, id: &str) {
        self.after = Some(id.to_owned());
        self.attempts = 0;
        self.failing_since = None;
        self.retry_at = None;
        self.failing_event_at = None;
    }
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A delivery record and the version it was read at.
struct Held {
    key: String,
    state: Delivery,
    version: u64,
}

/// What went wrong with the store while delivering.
#[derive(Debug, thiserror::Error)]
enum StoreTrouble {
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Another server changed the record: it holds the lease now.
    #[error("the lease was taken over")]
    LostLease,
    #[error("a stored record could not be read: {0}")]
    Corrupt(String),
}

/// The webhook deliverer of one server.
pub struct Deliverer {
    endpoints: Vec<Arc<Endpoint>>,
    cache: CacheBackend,
    layout: signoff_core::keys::Layout,
    client: Outbound,
    metrics: Arc<Metrics>,
    settings: Settings,
    /// This server's name in leases: random per start.
    me: String,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("endpoints", &self.endpoints)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// A deliverer of `endpoints` over the engine's store; it loads the
    /// system's trusted certificates when an endpoint is https.
    pub fn new(
        endpoints: Vec<Endpoint>,
        engine: &Engine,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Result<Self, OutboundError> {
        let client = Outbound::new(endpoints.iter().any(|endpoint| endpoint.url().is_tls()))?;
        for endpoint in &endpoints {
            metrics.webhook_endpoint(&endpoint.label());
        }
        Ok(Self {
            endpoints: endpoints.into_iter().map(Arc::new).collect(),
            cache: engine.cache().clone(),
            layout: engine.layout(),
            client,
            metrics,
            settings,
            me: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Creates the delivery records a store has not seen yet, each starting
    /// at its partition's newest event. Called before the server takes
    /// calls, so that nothing committed after start-up is skipped.
    pub async fn start_records(&self) -> Result<(), CacheError> {
        for partition in self.layout.all() {
            let head_key = self.layout.events_head(partition);
            let keys: Vec<String> = std::iter::once(head_key)
                .chain(
                    self.endpoints
                        .iter()
                        .map(|endpoint| self.layout.webhook_delivery(partition, endpoint.key())),
                )
                .collect();
            let found = self.cache.get_many(&keys, None).await?;
            let newest = found
                .first()
                .and_then(Option::as_ref)
                .and_then(|entry| serde_json::from_slice::<Head>(&entry.value).ok())
                .map(|head| head.id);
            for (key, entry) in keys.iter().zip(&found).skip(1) {
                if entry.is_some() {
                    continue;
                }
                let state = Delivery {
                    after: newest.clone(),
                    ..Delivery::default()
                };
                // Another server starting at once may create it first: then
                // its record stands.
                self.cache
                    .commit(Batch {
                        checks: vec![Check {
                            key: key.clone(),
                            version: None,
                        }],
                        puts: vec![put(key, &state)],
                        ..Batch::default()
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Delivers until `stop` turns true: one task per endpoint, so that a
    /// slow endpoint delays nobody else; then releases its leases.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .endpoints
            .iter()
            .map(|endpoint| {
                let deliverer = Arc::clone(&self);
                let endpoint = Arc::clone(endpoint);
                let stop = stop.clone();
                tokio::spawn(async move { deliverer.serve_endpoint(&endpoint, stop).await })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn serve_endpoint(&self, endpoint: &Endpoint, stop: watch::Receiver<bool>) {
        // A delivery in flight when the server stops is abandoned (its
        // lease lapses, and the event goes again): stopping never waits on
        // a receiver.
        super::ticker::every(self.settings.poll, stop, || self.round(endpoint)).await;
        self.release(endpoint).await;
    }

    /// One look at every partition's log for `endpoint`, the partitions
    /// delivered side by side.
    async fn round(&self, endpoint: &Endpoint) {
        // Each partition's delivery record and its log's head, in one
        // batched read: a partition whose head is not past the record's
        // position has nothing new, and costs no range read.
        let partitions: Vec<u16> = self.layout.all().collect();
        let keys: Vec<String> = partitions
            .iter()
            .map(|partition| self.layout.webhook_delivery(*partition, endpoint.key()))
            .chain(
                partitions
                    .iter()
                    .map(|partition| self.layout.events_head(*partition)),
            )
            .collect();
        let mut found = match self.cache.get_many(&keys, None).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.label(), error = %error, "webhook state unreadable");
                return;
            }
        };
        let heads = found.split_off(partitions.len());
        let now = wall_clock_ms();
        // The age of events waiting for a retry counts too: a stuck
        // endpoint shows as an old backlog, not as none.
        let mut waiting_ages = Vec::new();
        let mut work = Vec::new();
        for (((partition, key), entry), head) in
            partitions.into_iter().zip(keys).zip(found).zip(heads)
        {
            let Some(entry) = entry else { continue };
            let Ok(state) = serde_json::from_slice::<Delivery>(&entry.value) else {
                continue;
            };
            let newest = head
                .and_then(|head| serde_json::from_slice::<Head>(&head.value).ok())
                .map(|head| head.id);
            if newest.is_none() || newest <= state.after {
                continue;
            }
            let held_elsewhere = state.owner.as_deref().is_some_and(|owner| owner != self.me)
                && state.lease_until > now;
            if held_elsewhere {
                continue;
            }
            if state.retry_at.is_some_and(|at| at > now) {
                waiting_ages.extend(state.failing_event_at.map(|at| now - at));
                continue;
            }
            work.push((
                partition,
                Held {
                    key,
                    state,
                    version: entry.version,
                },
            ));
        }
        let ages = futures::future::join_all(
            work.into_iter()
                .map(|(partition, held)| self.deliver_partition(endpoint, partition, held)),
        )
        .await;
        let oldest = ages
            .into_iter()
            .flatten()
            .chain(waiting_ages)
            .max()
            .unwrap_or(0);
        self.metrics.webhook_backlog(
            &endpoint.label(),
            Duration::from_millis(u64::try_from(oldest).unwrap_or(0)),
        );
    }

    /// Delivers the events of `partition` after the record's position, in
    /// order, until one fails or the batch ends. Answers the age (ms) of
    /// the oldest event it found undelivered, if any.
    async fn deliver_partition(
        &self,
        endpoint: &Endpoint,
        partition: u16,
        mut held: Held,
    ) -> Option<i64> {
        match self.deliver_batch(endpoint, partition, &mut held).await {
            Ok(age) => age,
            Err(StoreTrouble::LostLease) => None,
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.label(), partition, error = %error, "webhook delivery interrupted");
                None
            }
        }
    }

    async fn deliver_batch(
        &self,
        endpoint: &Endpoint,
        partition: u16,
        held: &mut Held,
    ) -> Result<Option<i64>, StoreTrouble> {
        let after = held.state.after.clone().map(|id| IndexEntry {
            sort_key: id.clone(),
            member: id,
        });
        let entries = self
            .cache
            .range(&self.layout.events_index(partition), after.as_ref(), BATCH)
            .await?;
        if entries.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = entries
            .iter()
            .map(|entry| self.layout.event(partition, &entry.member))
            .collect();
        let records = self.cache.get_many(&keys, None).await?;
        self.renew_if_short(held, self.settings.timeout).await?;
        let mut oldest_age = None;
        let mut moved = false;
        for (entry, record) in entries.iter().zip(records) {
            // An event past its retention is gone: nothing to deliver.
            let Some(record) = record else {
                held.state.after = Some(entry.member.clone());
                moved = true;
                continue;
            };
            let event: Event = serde_json::from_slice(&record.value)
                .map_err(|error| StoreTrouble::Corrupt(error.to_string()))?;
            if !endpoint.wants(event.kind) {
                held.state.after = Some(event.id.clone());
                moved = true;
                continue;
            }
            let now = wall_clock_ms();
            oldest_age.get_or_insert(now - event.at.as_millis());
            if moved {
                self.write(held).await?;
                moved = false;
            }
            self.renew_if_short(held, self.settings.timeout).await?;
            match self.post(endpoint, &event, record.value).await {
                Ok(()) => {
                    self.metrics
                        .webhook_delivery(&endpoint.label(), WebhookOutcome::Delivered);
                    held.state.settle(&event.id);
                    self.write(held).await?;
                }
                Err(reason) => {
                    let now = wall_clock_ms();
                    let since = held.state.failing_since.unwrap_or(now);
                    if now - since >= millis(self.settings.give_up_after) {
                        self.metrics
                            .webhook_delivery(&endpoint.label(), WebhookOutcome::GivenUp);
                        tracing::error!(endpoint = %endpoint.label(), event = %event.id, attempts = held.state.attempts + 1, reason = %reason, "webhook event given up");
                        held.state.settle(&event.id);
                        self.write(held).await?;
                        continue;
                    }
                    self.metrics
                        .webhook_delivery(&endpoint.label(), WebhookOutcome::Failed);
                    held.state.attempts = held.state.attempts.saturating_add(1);
                    held.state.failing_since = Some(since);
                    held.state.failing_event_at = Some(event.at.as_millis());
                    let delay = self.settings.retry_delay(held.state.attempts);
                    held.state.retry_at = Some(now + millis(delay));
                    tracing::warn!(endpoint = %endpoint.label(), event = %event.id, attempts = held.state.attempts, retry_in_ms = millis(delay), reason = %reason, "webhook delivery failed");
                    self.write(held).await?;
                    return Ok(oldest_age);
                }
            }
        }
        if moved {
            self.write(held).await?;
        }
        Ok(oldest_age)
    }

    /// POSTs `body` (the event as stored) to `endpoint`, signed.
    async fn post(&self, endpoint: &Endpoint, event: &Event, body: Vec<u8>) -> Result<(), String> {
        let signature = endpoint.signature(wall_clock_ms().div_euclid(1000), &body);
        let value = |text: &str| HeaderValue::from_str(text).map_err(|error| error.to_string());
        let headers: [(HeaderName, HeaderValue); 4] = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("signoff-event-id"),
                value(&event.id)?,
            ),
            (
                HeaderName::from_static("signoff-event-type"),
                value(event.kind.as_str())?,
            ),
            (
                HeaderName::from_static("signoff-signature"),
                value(&signature)?,
            ),
        ];
        let sent = self.client.send(
            endpoint.url(),
            Method::POST,
            &headers,
            Bytes::from(body),
            MAX_ANSWER_BYTES,
        );
        match tokio::time::timeout(self.settings.timeout, sent).await {
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.settings.timeout.as_millis()
            )),
            Ok(Err(OutboundError::TooLarge(_))) => {
                Err(format!("answered more than {MAX_ANSWER_BYTES} bytes"))
            }
            Ok(Err(error)) => Err(error.to_string()),
            Ok(Ok(answer)) if answer.status.is_success() => Ok(()),
            Ok(Ok(answer)) => Err(format!("answered {}", answer.status)),
        }
    }

    /// Takes or renews the lease when it would lapse within `needed` plus
    /// half a lease.
    async fn renew_if_short(&self, held: &mut Held, needed: Duration) -> Result<(), StoreTrouble> {
        let now = wall_clock_ms();
        let lease = self.settings.lease();
        let mine = held.state.owner.as_deref() == Some(self.me.as_str());
        if mine && held.state.lease_until > now + millis(needed) + millis(lease) / 2 {
            return Ok(());
        }
        held.state.owner = Some(self.me.clone());
        held.state.lease_until = now + millis(lease);
        self.write(held).await
    }

    /// Writes the record if nobody changed it since it was read, then
    /// learns its new version.
    async fn write(&self, held: &mut Held) -> Result<(), StoreTrouble> {
        let outcome = self
            .cache
            .commit(Batch {
                checks: vec![Check {
                    key: held.key.clone(),
                    version: Some(held.version),
                }],
                puts: vec![put(&held.key, &held.state)],
                ..Batch::default()
            })
            .await?;
        if outcome == CommitOutcome::Conflict {
            return Err(StoreTrouble::LostLease);
        }
        let entry = self
            .cache
            .get(&held.key)
            .await?
            .ok_or(StoreTrouble::LostLease)?;
        let stored: Delivery = serde_json::from_slice(&entry.value)
            .map_err(|error| StoreTrouble::Corrupt(error.to_string()))?;
        if stored != held.state {
            return Err(StoreTrouble::LostLease);
        }
        held.version = entry.version;
        Ok(())
    }

    /// Gives up this server's leases of `endpoint`, so that another server
    /// (or this one restarted) goes on at once.
    async fn release(&self, endpoint: &Endpoint) {
        for partition in self.layout.all() {
            let key = self.layout.webhook_delivery(partition, endpoint.key());
            let Ok(Some(entry)) = self.cache.get(&key).await else {
                continue;
            };
            let Ok(mut state) = serde_json::from_slice::<Delivery>(&entry.value) else {
                continue;
            };
            if state.owner.as_deref() != Some(self.me.as_str()) {
                continue;
            }
            state.owner = None;
            state.lease_until = 0;
            let mut held = Held {
                key,
                state,
                version: entry.version,
            };
            let _ = self.write(&mut held).await;
        }
    }
}

fn put(key: &str, state: &Delivery) -> Put {
    Put {
        key: key.to_owned(),
        value: serde_json::to_vec(state).unwrap_or_default(),
        ttl_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_one_second_to_one_hour() {
        let settings = Settings::default();
        let delays: Vec<u64> = (1..=14)
            .map(|attempt| settings.retry_delay(attempt).as_secs())
            .collect();
        assert_eq!(
            delays,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600
            ]
        );
        assert_eq!(settings.retry_delay(u32::MAX).as_secs(), 3600);
        assert!(settings.lease() > settings.timeout * 2);
    }

    #[test]
    fn a_delivery_record_round_trips() {
        let state = Delivery {
            after: Some("0000000000001-0003-000000000007".to_owned()),
            attempts: 2,
            failing_since: Some(5),
            retry_at: Some(9),
            failing_event_at: Some(3),
            owner: Some("me".to_owned()),
            lease_until: 11,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains("\"failingSince\":5"), "{text}");
        assert_eq!(serde_json::from_str::<Delivery>(&text).unwrap(), state);
    }
}
