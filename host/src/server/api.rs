//! The handlers of the `/v1` routes, `/metrics` and the health checks.
//!
//! Each handler checks in the order of the contract's "which error wins": it
//! authenticates first (the [`Caller`] extractor, which also takes the
//! caller's fair-share slot), then reads the body (content type, size, syntax,
//! time), then lets the engine decide, which checks the body's fields before
//! it looks at the stored request.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use signoff_core::input::ActionName;
use signoff_core::rules_store::ensure_may_replace;
use signoff_core::{
    ApprovalRequest, Error, ErrorCode, IfMatch, ListQuery, SimulationRequest, Status, ViolationCode,
};
use subtle::ConstantTimeEq;

use super::auth::Principals;
use super::body::Payload;
use super::caller::Caller;
use super::error::ApiError;
use super::fair_share::FairShare;
use super::metrics::{Metrics, Outcome};
use crate::engine::Engine;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Who may call.
    pub principals: Arc<Principals>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The calls each principal has in flight.
    pub fair_share: Arc<FairShare>,
    /// How long a body may take to arrive.
    pub body_timeout: Duration,
    /// The sha256 of the token `/metrics` asks for, if any.
    pub metrics_token: Option<[u8; 32]>,
}

type ApiResult = Result<Response, ApiError>;

fn etag(digest: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{digest}\"")).ok()
}

fn id_of(path: Result<Path<String>, PathRejection>) -> String {
    // An id that is not even a string cannot name a request: let the engine
    // answer `not_found` after it has judged the body.
    path.map(|Path(id)| id).unwrap_or_default()
}

/// The `Idempotency-Key` header as text; several headers are joined so the
/// engine refuses them as one malformed key.
fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    let values: Vec<String> = headers
        .get_all("idempotency-key")
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `POST /v1/requests`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    payload: Payload,
) -> ApiResult {
    let principal = &caller.principal;
    let change = payload
        .required_json(&headers, "the change to file")
        .await?;
    let key = idempotency_key(&headers);
    let created = state
        .engine
        .create(&change, principal, key.as_deref())
        .await?;
    if !created.replayed {
        state.metrics.created(&created.request);
    }
    let mut response = (StatusCode::CREATED, Json(&created.request)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/requests/{}", created.request.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/requests?status=&policyType=&limit=&cursor=&view=`.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let Ok(Query(pairs)) = query else {
        return Err(ApiError::invalid_one(
            "the query string is malformed",
            "",
            ViolationCode::InvalidFormat,
            "is not a valid query string",
        ));
    };
    // Which parameters exist, and what they may hold, is the core's.
    let object = ListQuery::object_from_pairs(pairs)?;
    // The engine answers the page's JSON, built around the stored items'
    // bytes: it goes out as it is, with no decoding per item.
    let page = state.engine.list_json(&object).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        page,
    )
        .into_response())
}

/// `GET /v1/requests/{id}`.
pub async fn get_request(
    State(state): State<AppState>,
    _caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = id_of(path);
    match state.engine.get(&id).await? {
        Some(request) => Ok(Json(request).into_response()),
        None => Err(Error::NotFound(id).into()),
    }
}

async fn act(
    state: AppState,
    headers: HeaderMap,
    caller: Caller,
    payload: Payload,
    path: Result<Path<String>, PathRejection>,
    action: ActionName,
) -> ApiResult {
    let body = payload.json(&headers).await?;
    let id = id_of(path);
    let request = state
        .engine
        .act(action, &id, &caller.principal, body.as_ref())
        .await?;
    count_decision(&state.metrics, action, &request);
    Ok(Json(request).into_response())
}

fn count_decision(metrics: &Metrics, action: ActionName, request: &ApprovalRequest) {
    let outcome = match (action, request.status) {
        (ActionName::Approve, Status::Approved) => Outcome::Approved,
        (ActionName::Reject, Status::Rejected) => Outcome::Rejected,
        (ActionName::Cancel, Status::Cancelled) => Outcome::Cancelled,
        _ => return,
    };
    metrics.decided(outcome, request);
}

/// `POST /v1/requests/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Approve).await
}

/// `POST /v1/requests/{id}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Reject).await
}

/// `POST /v1/requests/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Cancel).await
}

/// `POST /v1/requests/{id}/comments`.
pub async fn comment(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Comment).await
}

/// `POST /v1/preview`.
pub async fn preview(
    State(state): State<AppState>,
    headers: HeaderMap,
    _caller: Caller,
    payload: Payload,
) -> ApiResult {
    let change = payload
        .required_json(&headers, "the change to preview")
        .await?;
    let preview = state.engine.preview(&change).await?;
    Ok(Json(preview).into_response())
}

fn rules_response(document: &Value, digest: &str) -> Response {
    let mut response = Json(document).into_response();
    if let Some(tag) = etag(digest) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// `GET /v1/me`: the principal the caller's token names, `{ id, roles }`.
pub async fn me(caller: Caller) -> ApiResult {
    Ok(Json(caller.principal).into_response())
}

/// `POST /v1/rules/simulate` `{ rules, limit? }`: what the draft would
/// decide for the pending requests and up to `limit` of the most recently
/// decided ones, with its warnings judged against the principals this
/// server knows. Needs `admin`, like a replacement; stores nothing.
pub async fn simulate_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    payload: Payload,
) -> ApiResult {
    ensure_may_replace(&caller.principal).map_err(ApiError::from)?;
    let body = payload
        .required_json(&headers, "the rules draft to simulate")
        .await?;
    let request = SimulationRequest::parse(&body)?;
    let simulation = state
        .engine
        .simulate_rules(&request.rules, request.limit, Some(&state.principals.all()))
        .await?;
    Ok(Json(simulation).into_response())
}

/// `GET /v1/rules`.
pub async fn get_rules(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let (document, digest) = state.engine.rules().await;
    Ok(rules_response(&document, &digest))
}

fn precondition_failed(message: &str, current: &str) -> ApiError {
    let error = ApiError::new(ErrorCode::PreconditionFailed, message)
        .with_details(json!({ "currentDigest": current }));
    match etag(current) {
        Some(tag) => error.with_header(header::ETAG, tag),
        None => error,
    }
}

/// The values of the `If-Match` headers, `None` when there is none. A value
/// that is not visible ASCII is kept as `""`, which matches no digest: a
/// precondition the server cannot read never passes.
fn if_match_values(headers: &HeaderMap) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|value| value.to_str().unwrap_or_default().to_owned())
        .collect();
    (!values.is_empty()).then_some(values)
}

/// `PUT /v1/rules`: needs `admin`; an `If-Match` other than the digest in
/// force (or `*`) is refused. Checks run 401, 403, 412, then the body.
pub async fn put_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    payload: Payload,
) -> ApiResult {
    let principal = &caller.principal;
    // The engine checks `admin`, then `If-Match`, then the document (the
    // order of section 9); the body is read only after the first two checks
    // passed.
    ensure_may_replace(principal).map_err(ApiError::from)?;
    let if_match = if_match_values(&headers);
    let (_, current) = state.engine.rules().await;
    if let Some(values) = &if_match
        && !IfMatch::parse(values.iter().map(String::as_str)).holds(&current)
    {
        return Err(precondition_failed(
            "the rules changed since they were read: `If-Match` is not the digest in force",
            &current,
        ));
    }
    let document = payload
        .required_json(&headers, "the rules document")
        .await?;
    match state
        .engine
        .replace_rules(&document, principal, if_match.as_deref())
        .await
    {
        Ok(_) => {
            let (document, digest) = state.engine.rules().await;
            tracing::info!(actor = %principal.id, digest = %digest, "rules replaced");
            Ok(rules_response(&document, &digest))
        }
        Err(Error::PreconditionFailed { current }) => Err(precondition_failed(
            "the rules changed since they were read: `If-Match` is not the digest in force",
            &current,
        )),
        Err(error) => Err(ApiError::from(error)),
    }
}

/// Whether the request carries `Authorization: Bearer <token>` for the token
/// whose sha256 is `expected` (compared in constant time).
fn bears_token(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|text| {
        let (scheme, token) = text.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }) else {
        return false;
    };
    bool::from(super::auth::token_digest(token).ct_eq(expected))
}

/// `GET /metrics`: Prometheus text (OpenMetrics when asked for), rendered
/// from the figures in memory: a scrape never waits on the cache or on an
/// engine instance (see [`super::metrics::refresh`]). When the server has a
/// metrics token, the scrape must bear it.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    if let Some(expected) = &state.metrics_token
        && !bears_token(&headers, expected)
    {
        return Err(ApiError::unauthenticated(
            "/metrics needs `Authorization: Bearer <metrics token>`",
        ));
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        state.metrics.render(),
    )
        .into_response())
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: the cache answers; with what the store promised at
/// start-up (`store`: its durability settings, `null` for memory).
pub async fn readyz(State(state): State<AppState>) -> ApiResult {
    if state.engine.ready().await {
        Ok(Json(json!({
            "status": "ready",
            "store": state.engine.durability(),
            "partitions": state.engine.layout().partitions(),
        }))
        .into_response())
    } else {
        Err(ApiError::unavailable())
    }
}

/// Any route that does not exist.
pub async fn no_route() -> ApiError {
    ApiError::no_route()
}

/// A route that exists, called with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not serve that method",
    )
}
