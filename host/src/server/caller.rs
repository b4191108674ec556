//! [`Caller`]: the authenticated principal of a call, holding its fair-share
//! slot.
//!
//! It is an extractor that reads only the request head, so axum runs it
//! before the body extractor ([`super::body::Payload`], which reads nothing
//! until a handler asks): an unauthenticated or over-share call is answered
//! without a byte of its body being read. When such a call announced a body,
//! the answer says `Connection: close`, since the unread body cannot be
//! skipped cheaply; with `Expect: 100-continue` the client never sends it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::json;
use signoff_core::{ErrorCode, Principal};

use super::api::AppState;
use super::error::ApiError;
use super::fair_share::Slot;

/// The principal of an authenticated call within its fair share.
#[derive(Debug)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Freed when the handler returns.
    _slot: Slot,
}

/// The principal [`super::serving::settle_unread_body`] already
/// authenticated for this call, so that its token is checked once.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Whether the request announced a body (which then is still unread).
fn announces_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|value| value.to_str().map_or(true, |length| length.trim() != "0"))
}

fn closing(error: ApiError, headers: &HeaderMap) -> ApiError {
    if announces_body(headers) {
        error.with_header(header::CONNECTION, HeaderValue::from_static("close"))
    } else {
        error
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = match parts.extensions.remove::<Authenticated>() {
            Some(Authenticated(principal)) => principal,
            None => state
                .auth
                .authenticate(&parts.headers)
                .await
                .map_err(|error| closing(error, &parts.headers))?,
        };
        let Some(slot) = state.fair_share.enter(&principal.id) else {
            let error = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "this principal already has {} calls in flight; retry when one has finished",
                    state.fair_share.limit()
                ),
            )
            .with_details(json!({ "retryAfterSeconds": 1 }))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(closing(error, &parts.headers));
        };
        Ok(Self {
            principal,
            _slot: slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_announced_by_its_length_or_its_encoding() {
        let mut headers = HeaderMap::new();
        assert!(!announces_body(&headers));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!announces_body(&headers));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert!(announces_body(&headers));
        let mut chunked = HeaderMap::new();
        chunked.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(announces_body(&chunked));
    }
}
