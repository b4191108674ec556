//! The event log over HTTP: `GET /v1/events` pages through it and
//! `GET /v1/events/stream` follows it as server-sent events
//! (docs/CONTRACT.md section 12). Both read on behalf of the caller, so the
//! rules' `visibility` applies.
//!
//! The stream polls the engine for what follows the last event it sent: the
//! log lives in the cache, which several servers share, so there is no
//! in-process notification that would see another server's writes. A
//! stream holds no fair-share slot of its caller while it waits (it would
//! hold one forever); each poll is one engine call.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use signoff_core::events::parse_cursor;
use signoff_core::{Event, EventPage, EventsQuery, Principal};

use super::api::AppState;
use super::caller::Caller;
use super::error::ApiError;
use super::openapi::tags;
use super::query_pairs::QueryPairs;

/// How often a stream asks the log for what is new.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How many events a stream reads at once.
const STREAM_BATCH: u32 = 100;
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// List events
///
/// One page of the event log, oldest first: every change to a request and
/// every rules replacement appends its events in the same commit as the
/// change. `after` is an event id (every id is a cursor); `nextCursor`, the
/// id of the page's last event, is present when the page is full. A
/// traversal returns each event once, and the events of one request in the
/// order they happened. Events of requests the caller may not see (the
/// rules' `visibility`) are left out.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = tags::EVENTS,
    security(("bearer" = [])),
    params(
        ("after" = Option<String>, Query, pattern = r"^([0-9]{13}-[0-9]{4}-[0-9]{12})?$",
            description = "An event id: the page starts after it; from the oldest event kept when absent (or empty)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "The page size; 100 when absent."),
    ),
    responses(
        (status = 200, description = "The events, oldest first.", body = EventPage),
        (status = 400, response = super::openapi::responses::InvalidRequest),
        (status = 401, response = super::openapi::responses::Unauthenticated),
        (status = 429, response = super::openapi::responses::RateLimited),
        (status = 503, response = super::openapi::responses::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let query = EventsQuery::from_pairs(pairs)?;
    let page = state
        .engine
        .events(query.after.as_deref(), query.limit, Some(&caller.principal))
        .await?;
    Ok(Json(page).into_response())
}

/// Follow events
///
/// The event log as server-sent events: each event is sent with `id:` (its
/// cursor), `event:` (its type) and `data:` (its JSON). With
/// `Last-Event-ID` the stream resumes after that event; without it, it
/// starts with the next event. A comment line comes every 15 s.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = tags::EVENTS,
    security(("bearer" = [])),
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: the stream resumes after it."),
    ),
    responses(
        (status = 200, description = "The stream, until the client closes it.", content_type = "text/event-stream", body = String),
        (status = 400, response = super::openapi::responses::InvalidRequest),
        (status = 401, response = super::openapi::responses::Unauthenticated),
        (status = 429, response = super::openapi::responses::RateLimited),
        (status = 503, response = super::openapi::responses::Unavailable),
    ),
)]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("!").to_owned());
    let after = match resume {
        Some(id) => {
            parse_cursor(&id)?;
            Some(id)
        }
        None => state.engine.latest_event().await?,
    };
    // The caller's fair-share slot is released here: the stream may last
    // for hours.
    let principal = caller.principal.clone();
    drop(caller);
    let events = follow(state, principal, after);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text(""))
        .into_response())
}

/// What a stream holds between two events it sends.
struct Following {
    state: AppState,
    principal: Principal,
    after: Option<String>,
    ready: VecDeque<Event>,
}

/// The events after `after`, forever: polls the log when it has sent all
/// it read.
fn follow(
    state: AppState,
    principal: Principal,
    after: Option<String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let following = Following {
        state,
        principal,
        after,
        ready: VecDeque::new(),
    };
    stream::unfold(following, |mut following| async move {
        loop {
            if let Some(event) = following.ready.pop_front() {
                following.after = Some(event.id.clone());
                let data = serde_json::to_string(&event).unwrap_or_default();
                let sent = SseEvent::default()
                    .id(event.id.clone())
                    .event(event.kind.as_str())
                    .data(data);
                return Some((Ok(sent), following));
            }
            let page = following
                .state
                .engine
                .events(
                    following.after.as_deref(),
                    STREAM_BATCH,
                    Some(&following.principal),
                )
                .await;
            match page {
                Ok(page) => {
                    // Events the caller may not see leave a page short:
                    // move past them all the same.
                    if page.items.is_empty()
                        && let Some(next) = page.next_cursor
                    {
                        following.after = Some(next);
                        continue;
                    }
                    following.ready.extend(page.items);
                }
                // The cache is away: try again at the next poll.
                Err(error) => tracing::warn!(%error, "the event stream could not read the log"),
            }
            if following.ready.is_empty() {
                // A server shutting down ends its streams (a client's
                // `EventSource` reconnects, with `Last-Event-ID`).
                let mut stopping = following.state.stopping.clone();
                if *stopping.borrow() {
                    return None;
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stopping.changed() => return None,
                }
            }
        }
    })
}
