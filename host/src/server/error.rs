//! HTTP errors: the one table from error code to status, and the JSON body
//! `{ "error": { "code", "message", "details"? } }` every failure answers with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use signoff_core::{Error, ErrorBody, ErrorCode, Violation, ViolationCode};

/// The message of every `internal` error: internals never reach the caller.
pub const INTERNAL_MESSAGE: &str = "internal error; the server logged the details";

/// The message of every `unavailable` error caused by the cache.
pub const UNAVAILABLE_MESSAGE: &str = "the cache behind the engine is unavailable; retry later";

/// The HTTP status of each error code: the one place that decides it.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::SelfApproval | ErrorCode::NotEligible => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict
        | ErrorCode::NotPending
        | ErrorCode::Expired
        | ErrorCode::AlreadyApproved => StatusCode::CONFLICT,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Only the JS package's web build throws `not_initialized`.
        ErrorCode::Internal | ErrorCode::NotInitialized => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error code that best names a bare HTTP status produced outside the
/// handlers (static files, timeouts, the HTTP stack).
pub fn code_of_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PRECONDITION_FAILED => ErrorCode::PreconditionFailed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Unavailable,
        status if status.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    }
}

/// The body of every error answer: `{ "error": { "code", "message",
/// "details"? } }` (docs/CONTRACT.md, section 7).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// A failed HTTP call, ready to be written as the JSON error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The stable code; decides the status.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Validation items, `{ retryAfterSeconds }`, or other machine details.
    pub details: Option<Value>,
    /// Extra headers (`Retry-After`, `ETag`, `Connection`).
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// A status other than the code's own (`408` for a body that did not
    /// arrive in time, whose code is `unavailable`).
    status: Option<StatusCode>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
            status: None,
        }
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// `400 invalid_request` listing `details`.
    pub fn invalid(message: impl Into<String>, details: Vec<Violation>) -> Self {
        let details = serde_json::to_value(details).ok();
        Self {
            details,
            ..Self::new(ErrorCode::InvalidRequest, message)
        }
    }

    /// `400 invalid_request` with one item.
    pub fn invalid_one(
        message: impl Into<String>,
        path: &str,
        code: ViolationCode,
        item: &str,
    ) -> Self {
        Self::invalid(message, vec![Violation::new(path, code, item)])
    }

    /// `404 not_found` for a route that does not exist.
    pub fn no_route() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    /// `500 internal`, with the generic message.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }

    /// `503 unavailable`, with the generic message.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, UNAVAILABLE_MESSAGE)
    }

    /// Adds machine details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Answers with `status` instead of the code's own.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| status_of(self.code))
    }

    /// The body, as the type its schema is made from.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        // A code, a string and a JSON value always serialize.
        serde_json::to_value(self.envelope()).unwrap_or_default()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match &error {
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "engine failed");
                Self::internal()
            }
            Error::Unavailable(detail) => {
                tracing::warn!(error = %detail, "cache unavailable");
                Self::unavailable()
            }
            Error::RateLimited {
                retry_after_seconds,
            } => {
                let seconds = (*retry_after_seconds).max(1);
                Self::new(ErrorCode::RateLimited, error.to_string())
                    .with_details(json!({ "retryAfterSeconds": seconds }))
                    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
            }
            _ => {
                let body = error.to_body();
                Self {
                    code: body.code,
                    message: body.message,
                    details: body.details,
                    headers: Vec::new(),
                    status: None,
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body().to_string();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(self.code);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status() {
        let table = [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::Unauthenticated, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::SelfApproval, 403),
            (ErrorCode::NotEligible, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::MethodNotAllowed, 405),
            (ErrorCode::Conflict, 409),
            (ErrorCode::NotPending, 409),
            (ErrorCode::Expired, 409),
            (ErrorCode::AlreadyApproved, 409),
            (ErrorCode::PreconditionFailed, 412),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::UnsupportedMediaType, 415),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::Internal, 500),
        ];
        for (code, status) in table {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
            assert_eq!(code_of_status(status_of(code)), code_or_generic(code));
        }
    }

    /// Codes that share a status map back to the generic one.
    fn code_or_generic(code: ErrorCode) -> ErrorCode {
        match code {
            ErrorCode::SelfApproval | ErrorCode::NotEligible => ErrorCode::Forbidden,
            ErrorCode::NotPending | ErrorCode::Expired | ErrorCode::AlreadyApproved => {
                ErrorCode::Conflict
            }
            other => other,
        }
    }

    #[test]
    fn internals_never_reach_the_body() {
        let error = ApiError::from(Error::Internal("stack trace at foo.rs:12".into()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.body().to_string().contains("foo.rs"));
        let down = ApiError::from(Error::Unavailable("connection refused 10.0.0.1".into()));
        assert!(!down.body().to_string().contains("10.0.0.1"));
    }

    #[test]
    fn rate_limits_carry_the_wait_twice() {
        let error = ApiError::from(Error::RateLimited {
            retry_after_seconds: 3,
        });
        assert_eq!(error.body()["error"]["details"]["retryAfterSeconds"], 3);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
}
