//! The thin-proxy baseline of `cargo xtask load`: the server's HTTP stack
//! and Redis round trips, with no engine.
//!
//! What a call to `signoff serve` costs is the HTTP stack, the Redis round
//! trips and the engine (the core in wasmtime). To tell how much of it is
//! the engine, `cargo xtask load` runs the same load against this program,
//! on the same Redis, in phases interleaved with the server's. It serves
//!
//! - `POST /v1/requests`: one read of the partition's event head (`MGET`
//!   when the request shares the requester's partition, else `GET`, as the
//!   core does), then one commit (`EVALSHA` of the server's commit script)
//!   writing the request, its index entries, its events and the new head;
//!   answers 201 with the stored request;
//! - `POST /v1/requests/{id}/approve`: one `MGET` of the request and its
//!   partition's event head, then one commit moving it from the pending
//!   indexes to the approved ones, with its events; answers 200 with the
//!   request;
//! - `GET /v1/requests?limit=N[&cursor=C]`: the 16 partitions' pending
//!   indexes ranged one after the other (`ZRANGE … BYLEX LIMIT`), the
//!   candidates merged, then one batched read of the page's values under
//!   the server's byte budget (its `GETRANGE` script); answers the values
//!   as `{ "items": [...], "nextCursor": ... }`, as the server does without
//!   decoding them.
//!
//! The round trips go through the server's own storage code
//! ([`CacheBackend`]: the same Redis client, connection manager, commit
//! script and key layout), so the Redis side of each call is the server's.
//! The batches are the core's: at start-up the program creates and approves
//! one request with the native core's `Manager` over a recording cache, and
//! keeps the two commits it made. Each call replays its commit with the
//! request's id, partition, event ids and the versions it just read put in
//! (same checks, puts, sizes, TTLs and index changes; the sort keys are the
//! recorded ones, which have the same length, so the indexes' order is by
//! id among equal keys). No change is parsed, no rule evaluated, no request
//! decoded: that is the engine, and what the comparison leaves out.
//!
//! The HTTP side is the server's stack: the same connection loop
//! (`signoff_host::server::serving::serve`, hyper's HTTP/1.1 with its
//! timer), the same tower layers in the same order (panic guard, request id
//! set and propagated, a log line and a latency histogram per call, JSON
//! errors, the timeout) and the same bearer-token check against the demo
//! principals. What it leaves out there: the per-principal fair share (a
//! mutex and a map entry per call) and the body timeout.
//!
//! ```text
//! thin_proxy --listen 127.0.0.1:PORT --redis-url redis://127.0.0.1:PORT [--key-prefix thin:]
//! ```
//!
//! `cargo test --release --workspace --no-run` builds it as
//! `target/release/examples/thin_proxy`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "a measurement program: a broken setup must fail loudly"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde_json::json;
use signoff_core::keys::Layout;
use signoff_core::{
    Batch, Cache, CacheError, CommitOutcome, Entry, IndexEntry, Manager, MemoryCache, Principal,
    Rules, Timestamp,
};
use signoff_host::cache::{CacheBackend, RedisOptions};
use signoff_host::server::auth::Principals;
use signoff_host::server::serving::{self, ServingLimits};
use signoff_host::server::{cli, demo};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use uuid::Uuid;

/// The change `cargo xtask load` files.
const CHANGE: &str = r#"{"policyId":"iam/load","policyType":"iam","changeKind":"update","title":"Load test change","justification":"Measuring the server under load."}"#;

/// The rules of `cargo xtask load`: one engineer's approval, no rate limit.
const RULES: &str = r#"{
  "levels": [{ "name": "peer", "ttlSeconds": 86400, "stages": [
    { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
  ]}],
  "defaultLevel": "peer"
}"#;

/// The byte budget of a listing page's batched read (the core's
/// `listing::PAGE_BUDGET_BYTES`).
const PAGE_BUDGET_BYTES: u64 = 4 * 1024 * 1024;

/// A memory cache that keeps a copy of every commit.
#[derive(Clone, Default)]
struct Recorder {
    cache: MemoryCache,
    commits: Arc<Mutex<Vec<Batch>>>,
}

impl Cache for Recorder {
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.cache.get_now(key))
    }

    async fn get_many(
        &self,
        keys: &[String],
        max_bytes: Option<u64>,
    ) -> Result<Vec<Option<Entry>>, CacheError> {
        Ok(self.cache.get_many_now(keys, max_bytes))
    }

    async fn commit(&self, batch: Batch) -> Result<CommitOutcome, CacheError> {
        self.commits.lock().unwrap().push(batch.clone());
        Ok(self.cache.commit_now(batch))
    }

    async fn range(
        &self,
        index: &str,
        after: Option<&IndexEntry>,
        limit: u32,
    ) -> Result<Vec<IndexEntry>, CacheError> {
        Ok(self.cache.range_now(index, after, limit))
    }
}

/// One recorded commit, to be replayed for another request.
struct Template {
    batch: Batch,
    /// The recorded request's id and partition.
    id: String,
    partition: u16,
    /// The ids of the events the commit appends.
    event_ids: Vec<String>,
}

/// Polls a future over the memory cache, which is ready at once.
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the memory cache never waits"),
    }
}

/// The create and the approve commits of one request, as the core makes
/// them.
fn record(layout: Layout) -> (Template, Template) {
    let recorder = Recorder::default();
    let rules = Rules::parse_str(RULES).unwrap();
    let manager = Manager::new(
        recorder.clone(),
        || Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        Uuid::new_v4,
        rules,
    )
    .with_layout(layout);
    let change: serde_json::Value = serde_json::from_str(CHANGE).unwrap();
    let alice = Principal::new("alice", &["engineer"]);
    let bob = Principal::new("bob", &["engineer"]);
    let created = ready(manager.create(&change, &alice, None)).unwrap();
    let id = created.request.id;
    let after_create = recorder.commits.lock().unwrap().len();
    ready(manager.approve(&id.to_string(), &bob, None)).unwrap();
    let commits = recorder.commits.lock().unwrap().clone();
    let request_key = layout.request(&id);
    let holds_request = |batch: &&Batch| batch.puts.iter().any(|put| put.key == request_key);
    let create = commits[..after_create]
        .iter()
        .rfind(holds_request)
        .expect("the create's commit")
        .clone();
    let approve = commits[after_create..]
        .iter()
        .rfind(holds_request)
        .expect("the approve's commit")
        .clone();
    let partition = layout.partition_of_id(&id);
    let template = |batch: Batch| {
        let marker = format!("p{partition}:event:");
        let event_ids = batch
            .puts
            .iter()
            .filter_map(|put| put.key.strip_prefix(&marker).map(str::to_owned))
            .collect();
        Template {
            batch,
            id: id.to_string(),
            partition,
            event_ids,
        }
    };
    (template(create), template(approve))
}

/// Replaces every `from` in `bytes` by `to` (of the same length).
fn replace_bytes(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    debug_assert_eq!(from.len(), to.len());
    if from.is_empty() || bytes.len() < from.len() {
        return;
    }
    let mut at = 0;
    while at + from.len() <= bytes.len() {
        if bytes[at..].starts_with(from) {
            bytes[at..at + from.len()].copy_from_slice(to);
            at += from.len();
        } else {
            at += 1;
        }
    }
}

/// A fresh event id of the same length as `like`: a counter, zero-padded.
fn fresh_event_id(like: &str, counter: &AtomicU64) -> String {
    let number = counter.fetch_add(1, Ordering::Relaxed);
    let text = format!("{number:0width$}", width = like.len());
    text[text.len() - like.len()..].to_owned()
}

impl Template {
    /// The commit for request `id`, with fresh event ids and the versions
    /// just read of the request (`None` for a create) and the event head.
    fn replay(
        &self,
        id: &str,
        partition: u16,
        request_version: Option<u64>,
        head_version: Option<u64>,
        events: &AtomicU64,
    ) -> Batch {
        let mut swaps: Vec<(String, String)> = vec![(self.id.clone(), id.to_owned())];
        for event in &self.event_ids {
            swaps.push((event.clone(), fresh_event_id(event, events)));
        }
        let from_prefix = format!("p{}:", self.partition);
        let to_prefix = format!("p{partition}:");
        let text = |value: &str| {
            let mut out = match value.strip_prefix(&from_prefix) {
                Some(rest) => format!("{to_prefix}{rest}"),
                None => value.to_owned(),
            };
            for (from, to) in &swaps {
                if out.contains(from.as_str()) {
                    out = out.replace(from.as_str(), to);
                }
            }
            out
        };
        let mut batch = self.batch.clone();
        for check in &mut batch.checks {
            check.version = if check.key.ends_with(":events:head") {
                head_version
            } else {
                request_version
            };
            check.key = text(&check.key);
        }
        for put in &mut batch.puts {
            put.key = text(&put.key);
            for (from, to) in &swaps {
                replace_bytes(&mut put.value, from.as_bytes(), to.as_bytes());
            }
        }
        for key in &mut batch.deletes {
            *key = text(key);
        }
        for change in batch.index_adds.iter_mut().chain(&mut batch.index_removes) {
            change.index = text(&change.index);
            change.entry.sort_key = text(&change.entry.sort_key);
            change.entry.member = text(&change.entry.member);
        }
        batch
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type Latencies = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn http_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Clone)]
struct AppState {
    cache: CacheBackend,
    layout: Layout,
    principals: Arc<Principals>,
    create: Arc<Template>,
    approve: Arc<Template>,
    events: Arc<AtomicU64>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": { "code": "error", "message": message } }).to_string(),
    )
        .into_response()
}

fn unavailable(failed: &CacheError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, &failed.to_string())
}

/// The stored request of a put, without the 8-byte version Redis keeps.
fn request_value<'a>(batch: &'a Batch, key: &str) -> &'a [u8] {
    batch
        .puts
        .iter()
        .find(|put| put.key == key)
        .map_or(&[][..], |put| &put.value[..])
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = state.principals.authenticate(&headers) {
        return refused.into_response();
    }
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the change to file is missing");
    }
    let id = Uuid::new_v4();
    let partition = state.layout.partition_of_id(&id);
    let same = partition == state.layout.partition_of_principal("alice");
    let head_key = state.layout.events_head(partition);
    let request_key = state.layout.request(&id);
    let id = id.to_string();
    for _ in 0..signoff_core::manager::MAX_ATTEMPTS {
        let head = if same {
            state
                .cache
                .get_many(std::slice::from_ref(&head_key), None)
                .await
        } else {
            state.cache.get(&head_key).await.map(|head| vec![head])
        };
        let head = match head {
            Ok(mut found) => found.pop().flatten(),
            Err(failed) => return unavailable(&failed),
        };
        let batch = state.create.replay(
            &id,
            partition,
            None,
            head.map(|entry| entry.version),
            &state.events,
        );
        let value = request_value(&batch, &request_key).to_vec();
        match state.cache.commit(batch).await {
            Ok(CommitOutcome::Committed) => {
                let mut response = (
                    StatusCode::CREATED,
                    [(header::CONTENT_TYPE, "application/json")],
                    value,
                )
                    .into_response();
                if let Ok(location) = HeaderValue::from_str(&format!("/v1/requests/{id}")) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                return response;
            }
            // Another create moved the partition's event head: read again.
            Ok(CommitOutcome::Conflict) => {}
            Err(failed) => return unavailable(&failed),
        }
    }
    error(StatusCode::CONFLICT, "too much contention")
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = state.principals.authenticate(&headers) {
        return refused.into_response();
    }
    let Ok(uuid) = Uuid::parse_str(&id) else {
        return error(StatusCode::NOT_FOUND, "no such request");
    };
    let partition = state.layout.partition_of_id(&uuid);
    let request_key = state.layout.request(&uuid);
    let keys = [request_key.clone(), state.layout.events_head(partition)];
    for _ in 0..signoff_core::manager::MAX_ATTEMPTS {
        let (request, head) = match state.cache.get_many(&keys, None).await {
            Ok(found) => {
                let mut found = found.into_iter();
                (found.next().flatten(), found.next().flatten())
            }
            Err(failed) => return unavailable(&failed),
        };
        let Some(request) = request else {
            return error(StatusCode::NOT_FOUND, "no such request");
        };
        let batch = state.approve.replay(
            &id,
            partition,
            Some(request.version),
            head.map(|entry| entry.version),
            &state.events,
        );
        let value = request_value(&batch, &request_key).to_vec();
        match state.cache.commit(batch).await {
            Ok(CommitOutcome::Committed) => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    value,
                )
                    .into_response();
            }
            Ok(CommitOutcome::Conflict) => {}
            Err(failed) => return unavailable(&failed),
        }
    }
    error(StatusCode::CONFLICT, "too much contention")
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = state.principals.authenticate(&headers) {
        return refused.into_response();
    }
    let limit = query
        .get("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 500);
    let after = query.get("cursor").and_then(|cursor| {
        let (sort_key, member) = cursor.split_once('~')?;
        Some(IndexEntry {
            sort_key: sort_key.to_owned(),
            member: member.to_owned(),
        })
    });
    let want = limit + 1;
    let mut candidates = Vec::new();
    for partition in state.layout.all() {
        let index = state
            .layout
            .status_index(partition, signoff_core::Status::Pending);
        match state
            .cache
            .range(&index, after.as_ref(), u32::try_from(want).unwrap_or(501))
            .await
        {
            Ok(entries) => candidates.extend(entries),
            Err(failed) => return unavailable(&failed),
        }
    }
    candidates.sort();
    candidates.truncate(want);
    let keys: Vec<String> = candidates
        .iter()
        .map(|entry| {
            Uuid::parse_str(&entry.member)
                .map(|id| state.layout.request(&id))
                .unwrap_or_default()
        })
        .collect();
    let values = if keys.is_empty() {
        Vec::new()
    } else {
        match state.cache.get_many(&keys, Some(PAGE_BUDGET_BYTES)).await {
            Ok(values) => values,
            Err(failed) => return unavailable(&failed),
        }
    };
    let mut out = Vec::with_capacity(values.iter().flatten().map(|v| v.value.len() + 1).sum());
    out.extend_from_slice(b"{\"items\":[");
    let mut last = None;
    let mut count = 0;
    for (entry, value) in candidates.iter().zip(values) {
        if count == limit {
            break;
        }
        if let Some(value) = value {
            if count > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&value.value);
            last = Some(entry);
            count += 1;
        }
    }
    out.push(b']');
    if candidates.len() > limit
        && let Some(last) = last
    {
        out.extend_from_slice(
            format!(",\"nextCursor\":\"{}~{}\"", last.sort_key, last.member).as_bytes(),
        );
    }
    out.push(b'}');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// The server's `observe`: a log line and a latency observation per call.
async fn observe(
    State(latencies): State<Arc<Latencies>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    latencies
        .get_or_create(&HttpLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .observe(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    tracing::info!(
        request_id, method, route, path, status, latency_ms, "request"
    );
    response
}

/// The server's `json_errors`: a success passes through untouched.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    error(status, status.canonical_reason().unwrap_or("refused"))
}

fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn router(state: AppState) -> Router {
    let latencies: Arc<Latencies> = Arc::new(Family::new_with_constructor(http_buckets));
    Router::new()
        .route("/v1/requests", post(create).get(list))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panicked))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn_with_state(latencies, observe))
                .layer(middleware::map_response(json_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_secs(60),
                )),
        )
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1).cloned())
}

#[tokio::main]
async fn main() {
    cli::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = flag(&args, "--listen").unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let redis_url = flag(&args, "--redis-url").expect("--redis-url redis://HOST:PORT");
    let prefix = flag(&args, "--key-prefix").unwrap_or_else(|| "thin:".to_owned());
    let layout = Layout::default();
    let (create_template, approve_template) = record(layout);
    let cache = CacheBackend::redis(&redis_url, &prefix, RedisOptions::default()).unwrap();
    cache.ping().await.expect("Redis answers");
    let state = AppState {
        cache,
        layout,
        principals: Arc::new(demo::principals()),
        create: Arc::new(create_template),
        approve: Arc::new(approve_template),
        events: Arc::new(AtomicU64::new(1)),
    };
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    serving::serve(listener, router(state), ServingLimits::default(), stopped)
        .await
        .unwrap();
}
