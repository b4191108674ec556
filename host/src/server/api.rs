//! The handlers of the `/v1` routes, `/metrics` and the health checks.
//!
//! Each handler checks in the order of the contract's "which error wins": it
//! authenticates first (the [`Caller`] extractor, which also takes the
//! caller's fair-share slot), then reads the body (content type, size, syntax,
//! time), then lets the engine decide, which checks the body's fields before
//! it looks at the stored request.
//!
//! Each handler also says, in its `utoipa::path` attribute, what it answers:
//! every status, header and body, named by the types it sends. That is what
//! `/openapi.json` publishes ([`super::openapi`]); a doc comment's first line
//! is the operation's summary and the rest its description.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use signoff_core::input::{
    ActionName, ApprovalBody, CancellationBody, CommentBody, RejectionBody, ReviewBody,
};
use signoff_core::rules_store::ensure_may_replace;
use signoff_core::simulation::RulesFindings;
use signoff_core::{
    ApprovalRequest, Error, ErrorCode, IfMatch, ListQuery, PolicyChange, Preview, Principal,
    ReviewFilter, Rules, Simulation, SimulationBody, SimulationRequest, Status, View,
};
use subtle::ConstantTimeEq;

use super::auth::Authenticator;
use super::body::Payload;
use super::caller::Caller;
use super::error::ApiError;
use super::fair_share::FairShare;
use super::metrics::{Metrics, Outcome};
use super::openapi::responses::{
    Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge, PreconditionFailed,
    RateLimited, RequestTimeout, Unauthenticated, Unavailable, UnsupportedMediaType,
};
use super::openapi::tags;
use super::query_pairs::QueryPairs;
use crate::cache::Durability;
use crate::engine::Engine;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Who may call.
    pub auth: Arc<Authenticator>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The calls each principal has in flight.
    pub fair_share: Arc<FairShare>,
    /// How long a body may take to arrive.
    pub body_timeout: Duration,
    /// The sha256 of the token `/metrics` asks for, if any.
    pub metrics_token: Option<[u8; 32]>,
    /// Turns `true` when the server starts shutting down: long-lived
    /// answers (event streams) end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
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

/// File a change
///
/// Files the change for the caller and decides its level; a level without
/// stages is approved at once. Rate-limited per requester.
#[utoipa::path(
    post,
    path = "/v1/requests",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "1..=255 visible ASCII characters, scoped to the caller and kept 24 hours: a retry with the same key answers the first `201` instead of filing a second request; the same key with another change is `409 conflict`."),
    ),
    request_body = PolicyChange,
    responses(
        (status = 201, description = "The stored request (the first one, on a replay).", body = ApprovalRequest,
            headers(
                ("Location" = String, description = "`/v1/requests/{id}` of the request."),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a retry with an `Idempotency-Key` used before."),
            )),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
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

/// List requests
///
/// One page of the requests in one status. Pending requests come by priority
/// (urgent first), then creation time, then id; the others most recently
/// updated first, then id. An empty value means the parameter is absent; an
/// unknown or repeated parameter is `400`.
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(
        ("status" = Option<Status>, Query, description = "The status to list; `pending` when absent."),
        ("policyType" = Option<String>, Query, description = "Only requests of this policy type."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "The page size; 50 when absent."),
        ("cursor" = Option<String>, Query,
            description = "The `nextCursor` of the previous page, valid only with the same filters (`status`, `policyType`, `actionableBy`, `emergencyReview`, `q`)."),
        ("view" = Option<View>, Query,
            description = "`full` (the default) or `summary`: each request without `change.diff`, `change.justification` and `history`."),
        ("actionableBy" = Option<ActionableBy>, Query,
            description = "`me`: only the pending requests the caller may approve now. Valid only with `status=pending`."),
        ("emergencyReview" = Option<ReviewFilter>, Query,
            description = "`open` or `overdue`: only emergency requests whose after-the-fact review is open (or open past its `dueAt`), by `dueAt`. Implies `status=approved`."),
        // Empty means absent (as for every parameter); otherwise some
        // character that is not a space. The length is counted after
        // trimming, which a schema cannot say: the description does.
        ("q" = Option<String>, Query, pattern = r"^$|\S",
            description = "Search: only the requests whose `title` or `policyId` holds this text, ASCII letters compared without case. 1..=200 characters after trimming; no control or bidi character. Empty means absent."),
    ),
    responses(
        (status = 200, description = "`items` is always present; `nextCursor` only when more may follow.",
            body = ref("#/components/schemas/ListingPage")),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult {
    // Which parameters exist, and what they may hold, is the core's.
    let object = ListQuery::object_from_pairs(pairs, &caller.principal)?;
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

/// Read a request
///
/// The request, brought up to date with the clock: a request pending past
/// its `expiresAt` is answered (and stored) expired.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    responses(
        (status = 200, description = "The request.", body = ApprovalRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = id_of(path);
    match state.engine.get_as(&id, Some(&caller.principal)).await? {
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

/// Approve a request
///
/// Counts the caller's approval for the current stage; after the last stage
/// the request is `approved`. The body may be left out. `403` is
/// `self_approval` or `not_eligible`; `409` is `not_pending`, `expired` or
/// `already_approved`.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/approve",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body(content = Option<ApprovalBody>, description = "Optional."),
    responses(
        (status = 200, description = "The request after the approval.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Approve).await
}

/// Reject a request
///
/// Rejects the request at its current stage, with a reason. Checked like an
/// approval: `403` is `self_approval` or `not_eligible`; `409` is
/// `not_pending`, `expired` or `already_approved`.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/reject",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body = RejectionBody,
    responses(
        (status = 200, description = "The rejected request.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Reject).await
}

/// Cancel a request
///
/// The requester withdraws a pending request. No body, or `{}`. `403` is
/// `forbidden` for anyone but the requester; `409` is `not_pending` or
/// `expired`.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/cancel",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body(content = Option<CancellationBody>, description = "Optional, and empty."),
    responses(
        (status = 200, description = "The cancelled request.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Cancel).await
}

/// Comment on a request
///
/// Any principal, in any state (terminal included), until the history holds
/// 1000 entries. Only `version` and `history` move.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/comments",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "The request with the comment.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn comment(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Comment).await
}

/// Amend a request
///
/// The requester replaces the change of a pending request. The new change is
/// validated and its level decided again under the rules in force (a new
/// `rulesDigest`). Approvals are kept only when the level stays and the
/// change differs in `title`, `justification` or `metadata` alone; else
/// they are dropped and the request starts again at its first stage, with a
/// new `expiresAt`. The history entry says `approvalsReset`. `403` is
/// `forbidden` for anyone but the requester; `409` is `not_pending` or
/// `expired`.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/amend",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body = PolicyChange,
    responses(
        (status = 200, description = "The amended request.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn amend(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    let change = payload
        .required_json(&headers, "the amended change")
        .await?;
    let id = id_of(path);
    let request = state.engine.amend(&id, &caller.principal, &change).await?;
    Ok(Json(request).into_response())
}

/// Review an emergency request
///
/// Closes the after-the-fact review of a request filed as an emergency, as
/// `ratified` or `flagged`. Any principal eligible for a stage of the
/// request's level may, never its requester. `403` is `self_approval` or
/// `not_eligible`; `409` is `not_pending` when there is no open review.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/review",
    tag = tags::REQUESTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's UUID.")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The request with its review closed.", body = ApprovalRequest),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn review(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    payload: Payload,
) -> ApiResult {
    act(state, headers, caller, payload, path, ActionName::Review).await
}

/// What `actionableBy` may hold over HTTP: the caller.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "the schema of a query parameter: the core reads its value (`ListQuery::object_from_pairs`)"
)]
#[serde(rename_all = "lowercase")]
pub enum ActionableBy {
    /// The caller.
    Me,
}

/// Preview a change
///
/// Validates a change and decides its level; stores nothing and takes no
/// rate-limit token. Any JSON body answers `200`, with `valid: false` and
/// every problem when the change is invalid.
#[utoipa::path(
    post,
    path = "/v1/preview",
    tag = tags::PREVIEW,
    security(("bearer" = [])),
    request_body = PolicyChange,
    responses(
        (status = 200, description = "The validation and the level.", body = Preview),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
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

/// Who am I
///
/// The principal the bearer token names, so that a client can greet the
/// person and offer what they may do.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = tags::PRINCIPALS,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller.", body = Principal),
        (status = 401, response = Unauthenticated),
        (status = 429, response = RateLimited),
    ),
)]
pub async fn me(caller: Caller) -> ApiResult {
    Ok(Json(caller.principal).into_response())
}

/// The principals this server knows, so that a client can name who could
/// approve. Known only when people sign in through the principals file:
/// under OpenID Connect anybody the issuer vouches for may sign in, and the
/// list is empty with `known: false`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrincipalDirectory {
    /// Every principal of the principals file, by id (never a token).
    pub data: Vec<Principal>,
    /// Whether `data` is everybody who can sign in.
    pub known: bool,
}

/// Who can sign in
///
/// The principals of the principals file, ordered by id, with their roles
/// and never their tokens: what a client needs to name who could approve
/// a request. Any signed-in caller may read it. Under OpenID Connect the
/// server does not know everybody in advance: `data` is empty and `known`
/// false.
#[utoipa::path(
    get,
    path = "/v1/principals",
    tag = tags::PRINCIPALS,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The principals this server knows.", body = PrincipalDirectory),
        (status = 401, response = Unauthenticated),
        (status = 429, response = RateLimited),
    ),
)]
pub async fn principals(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let directory = match state.auth.known_principals() {
        Some(mut data) => {
            data.sort_by(|a, b| a.id.cmp(&b.id));
            PrincipalDirectory { data, known: true }
        }
        None => PrincipalDirectory {
            data: Vec::new(),
            known: false,
        },
    };
    Ok(Json(directory).into_response())
}

/// Simulate a rules draft
///
/// What the draft would decide for the pending requests and up to `limit` of
/// the most recently decided ones, with its warnings judged against the
/// principals this server knows (docs/CONTRACT.md section 13). Needs the
/// `admin` role, like a replacement. An invalid draft is answered (`valid:
/// false`), not refused. Nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/rules/simulate",
    tag = tags::RULES,
    security(("bearer" = [])),
    request_body = SimulationBody,
    responses(
        (status = 200, description = "What the draft would change.", body = Simulation),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn simulate_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    payload: Payload,
) -> ApiResult {
    // docs/CONTRACT.md section 9: a broken body (400) is said before a
    // missing role (403).
    let body = payload
        .required_json(&headers, "the rules draft to simulate")
        .await?;
    let request = SimulationRequest::parse(&body)?;
    ensure_may_replace(&caller.principal).map_err(ApiError::from)?;
    let simulation = state
        .engine
        .simulate_rules(
            &request.rules,
            request.limit,
            state.auth.known_principals().as_deref(),
        )
        .await?;
    Ok(Json(simulation).into_response())
}

/// Read the rules
///
/// The rules document in force, with its digest (the `rulesDigest` every
/// request records) as `ETag`.
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = tags::RULES,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules in force.", body = Rules,
            headers(("ETag" = String, description = "The rules' digest, quoted."))),
        (status = 401, response = Unauthenticated),
        (status = 429, response = RateLimited),
    ),
)]
pub async fn get_rules(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let (document, digest) = state.engine.rules().await;
    Ok(rules_response(&document, &digest))
}

fn precondition_failed(message: &str, current: &str) -> ApiError {
    let error = ApiError::new(ErrorCode::PreconditionFailed, message)
        .with_details(serde_json::json!({ "currentDigest": current }));
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

/// Replace the rules
///
/// Needs the `admin` role. Checks run in this order: `401`, `403 forbidden`,
/// `412 precondition_failed` (an `If-Match` that is not the digest in
/// force), then `400` with every problem of the document. Requests already
/// filed keep the stages they were decided with.
#[utoipa::path(
    put,
    path = "/v1/rules",
    tag = tags::RULES,
    security(("bearer" = [])),
    params(
        ("If-Match" = Option<String>, Header,
            description = "The `ETag` the rules were read with, so that a change not seen is never overwritten; `*`, or no `If-Match`, replaces whatever is in force."),
    ),
    request_body = Rules,
    responses(
        (status = 200, description = "The rules now in force, with `warnings`.",
            body = ref("#/components/schemas/RulesReplaced"),
            headers(("ETag" = String, description = "The new rules' digest, quoted."))),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    ),
)]
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
            // The stages the known principals could never meet: warnings
            // beside the document, which they never refuse. Under OIDC
            // anybody may sign in, so nothing can be said.
            let principals = state.auth.known_principals();
            let warnings = RulesFindings::of(&document, principals.as_deref()).warnings;
            let mut answer = document.clone();
            if let Some(object) = answer.as_object_mut() {
                object.insert(
                    "warnings".to_owned(),
                    serde_json::to_value(&warnings).unwrap_or_default(),
                );
            }
            Ok(rules_response(&answer, &digest))
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

/// Metrics
///
/// Prometheus text, or OpenMetrics when `Accept` asks for
/// `application/openmetrics-text`, rendered from figures kept in memory: a
/// scrape never waits on the cache or on an engine instance (see
/// `super::metrics::refresh`). Open, unless the server has a metrics token:
/// then the scrape must bear it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = tags::OPERATIONS,
    security((), ("metricsToken" = [])),
    responses(
        (status = 200, description = "The metrics.", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
        (status = 401, response = Unauthenticated),
    ),
)]
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

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: LiveStatus,
}

/// The one status of a live process.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    /// The process answers.
    Ok,
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: ReadyStatus,
    /// What the Redis deployment promised at start-up; `null` for the
    /// in-memory cache, or when Redis could not be asked then.
    // Written as `null` rather than left out, so the field is always there.
    #[schema(required = true)]
    pub store: Option<Durability>,
    /// The store's partitions.
    pub partitions: u16,
}

/// The one status of a ready server.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// The cache answers.
    Ready,
}

/// Liveness
///
/// The process serves. Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = tags::OPERATIONS,
    responses((status = 200, description = "The process serves.", body = Liveness)),
)]
pub async fn healthz() -> Response {
    Json(Liveness {
        status: LiveStatus::Ok,
    })
    .into_response()
}

/// Readiness
///
/// The cache answers, with what the store promised at start-up. Needs no
/// token. The server reconnects to Redis by itself.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tags::OPERATIONS,
    responses(
        (status = 200, description = "The cache answers.", body = Readiness),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult {
    if state.engine.ready().await {
        Ok(Json(Readiness {
            status: ReadyStatus::Ready,
            store: state.engine.durability().cloned(),
            partitions: state.engine.layout().partitions(),
        })
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
