//! Errors: one enum for every failed operation, each with a stable code.
//!
//! The codes are the contract: they travel unchanged to HTTP bodies, JS
//! `Error.code` and the component's error variant. Messages are for people and
//! may change; codes never do.

use serde::{Deserialize, Serialize};

use crate::request::Status;
use crate::validation::Violation;

/// Stable snake_case error codes shared by every build and transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorCode {
    /// The caller did not authenticate (HTTP only).
    Unauthenticated,
    /// The input is malformed; `details` lists every problem.
    InvalidRequest,
    /// No request with that id.
    NotFound,
    /// The request expired (or is pending past its `expiresAt`).
    Expired,
    /// The request is in a terminal state.
    NotPending,
    /// The requester tried to approve or reject their own request.
    SelfApproval,
    /// The principal already approved this request.
    AlreadyApproved,
    /// The principal holds no eligible role for the current stage.
    NotEligible,
    /// The principal may not perform this action.
    Forbidden,
    /// The requester's rate limit is exhausted.
    RateLimited,
    /// A conflicting write or a reused idempotency key.
    Conflict,
    /// The cache behind the engine is unreachable.
    Unavailable,
    /// An `If-Match` precondition failed (HTTP only).
    PreconditionFailed,
    /// A body over the size limit (HTTP only).
    PayloadTooLarge,
    /// A body that is not JSON (HTTP only).
    UnsupportedMediaType,
    /// A method the route does not serve (HTTP only).
    MethodNotAllowed,
    /// An unexpected failure; never carries internals.
    Internal,
    /// An export of the JS package's web build used before `init()` (or
    /// `initSync()`) instantiated its WebAssembly (JS only).
    NotInitialized,
}

impl ErrorCode {
    /// The code as it appears on the wire, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }

    /// Parses a wire code back into the enum.
    pub fn parse(code: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of the cache behind the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// Why an engine operation failed.
///
/// It serializes as `{ "code": "<snake_case code>", "data": ... }`, the form
/// in which the component hands an error to its host, so that both sides
/// read the same typed error.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "data", rename_all = "snake_case")]
pub enum Error {
    /// The input is malformed; `details` lists every problem found.
    #[error("{message}")]
    InvalidRequest {
        /// A one-line summary.
        message: String,
        /// Every problem, in document order.
        details: Vec<Violation>,
    },
    /// No request with that id exists.
    #[error("request `{0}` was not found")]
    NotFound(String),
    /// The request expired before the action.
    #[error("request `{0}` has expired")]
    Expired(String),
    /// The request is in a terminal state.
    #[error("request `{id}` is {status}, not pending")]
    NotPending {
        /// The request's id.
        id: String,
        /// Its terminal status.
        status: Status,
    },
    /// A review was asked of a request that has no open after-the-fact
    /// review (code `not_pending`).
    #[error("request `{0}` has no open review")]
    NoOpenReview(String),
    /// The requester acted on their own request.
    #[error("`{0}` requested this change and cannot approve, reject or review it")]
    SelfApproval(String),
    /// The principal approved this request before.
    #[error("`{0}` has already approved this request")]
    AlreadyApproved(String),
    /// The principal holds none of the current stage's eligible roles.
    #[error("`{principal}` holds none of the roles eligible for stage `{stage}`")]
    NotEligible {
        /// The acting principal.
        principal: String,
        /// The current stage.
        stage: String,
    },
    /// The principal may not perform this action.
    #[error("{0}")]
    Forbidden(String),
    /// The requester has no token left; retry after the given seconds.
    #[error("rate limit reached; retry in {retry_after_seconds} s")]
    RateLimited {
        /// Seconds until one token is available, at least 1.
        retry_after_seconds: u64,
    },
    /// A conflicting write, or an idempotency key reused with another body.
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` precondition did not hold: `current` is the digest of
    /// the rules in force.
    #[error("the rules changed since they were read: the digest in force is `{current}`")]
    PreconditionFailed {
        /// The digest in force.
        current: String,
    },
    /// The cache failed.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded; never the caller's fault.
    #[error("stored data is corrupt: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Expired(_) => ErrorCode::Expired,
            Self::NotPending { .. } | Self::NoOpenReview(_) => ErrorCode::NotPending,
            Self::SelfApproval(_) => ErrorCode::SelfApproval,
            Self::AlreadyApproved(_) => ErrorCode::AlreadyApproved,
            Self::NotEligible { .. } => ErrorCode::NotEligible,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// An `invalid_request` error listing `details`.
    pub fn invalid(message: impl Into<String>, details: Vec<Violation>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            details,
        }
    }

    /// The machine-readable details: validation items, or the retry delay.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::InvalidRequest { details, .. } => serde_json::to_value(details).ok(),
            Self::RateLimited {
                retry_after_seconds,
            } => Some(serde_json::json!({ "retryAfterSeconds": retry_after_seconds })),
            _ => None,
        }
    }

    /// The transport-neutral form of this error.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            details: self.details(),
        }
    }
}

impl From<CacheError> for Error {
    fn from(error: CacheError) -> Self {
        Self::Unavailable(error.0)
    }
}

/// An error as every transport carries it: `{ code, message, details? }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Validation items, or `{ retryAfterSeconds }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::SelfApproval,
            ErrorCode::PreconditionFailed,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::NotInitialized,
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
        assert_eq!(ErrorCode::NotInitialized.as_str(), "not_initialized");
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn rate_limited_details_carry_the_wait() {
        let error = Error::RateLimited {
            retry_after_seconds: 7,
        };
        assert_eq!(error.code(), ErrorCode::RateLimited);
        assert_eq!(
            error.details(),
            Some(serde_json::json!({ "retryAfterSeconds": 7 }))
        );
    }
}
