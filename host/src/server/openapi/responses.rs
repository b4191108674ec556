//! The error answers that several routes share, as reusable OpenAPI
//! responses: each is the error body ([`ErrorEnvelope`]) with the statuses
//! and headers of docs/CONTRACT.md, section 7. The types are never built;
//! they exist for the document (`components.responses`).

use crate::server::error::ErrorEnvelope;

/// `invalid_request`: malformed JSON, a body or query that breaks the
/// schema, a bad cursor or idempotency key; `details` lists every problem
/// as `{ path, code, message }`.
#[derive(utoipa::ToResponse)]
pub struct InvalidRequest(pub ErrorEnvelope);

/// `unauthenticated`: no valid bearer token.
#[derive(utoipa::ToResponse)]
pub struct Unauthenticated(pub ErrorEnvelope);

/// `forbidden`, `self_approval` or `not_eligible`: the caller may not do
/// this.
#[derive(utoipa::ToResponse)]
pub struct Forbidden(pub ErrorEnvelope);

/// `not_found`: no such request (an id that is not a UUID included).
#[derive(utoipa::ToResponse)]
pub struct NotFound(pub ErrorEnvelope);

/// `unavailable`: the body did not arrive within the body timeout; the
/// connection is closed.
#[derive(utoipa::ToResponse)]
pub struct RequestTimeout(pub ErrorEnvelope);

/// `conflict` (an idempotency key reused with another change, or a write
/// that kept losing to concurrent writers), `not_pending`, `expired` or
/// `already_approved`.
#[derive(utoipa::ToResponse)]
pub struct Conflict(pub ErrorEnvelope);

/// `precondition_failed`: `If-Match` is not the digest in force (nor `*`);
/// `details.currentDigest` and `ETag` give the current one.
#[derive(utoipa::ToResponse)]
#[response(headers(("ETag" = String, description = "The digest in force, quoted.")))]
pub struct PreconditionFailed(pub ErrorEnvelope);

/// `payload_too_large`: a body over 1 MiB.
#[derive(utoipa::ToResponse)]
pub struct PayloadTooLarge(pub ErrorEnvelope);

/// `unsupported_media_type`: a non-empty body that is not
/// `application/json`.
#[derive(utoipa::ToResponse)]
pub struct UnsupportedMediaType(pub ErrorEnvelope);

/// `rate_limited`: the requester's bucket is empty, or the caller already
/// has its fair share of calls in flight; `Retry-After` and
/// `details.retryAfterSeconds` give the wait.
#[derive(utoipa::ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Whole seconds to wait, at least 1.")))]
pub struct RateLimited(pub ErrorEnvelope);

/// `unavailable`: the cache does not answer, or the call timed out; retry
/// later.
#[derive(utoipa::ToResponse)]
pub struct Unavailable(pub ErrorEnvelope);
