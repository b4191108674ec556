//! Request bodies: read only when a handler asks, bounded in size and time.
//!
//! [`Payload`] is the last extractor of a handler and reads nothing: the
//! handler authenticates first (see [`super::caller::Caller`]) and only then
//! reads the body through [`Payload::json`]. The body is read into memory up
//! to [`MAX_BODY_BYTES`], and what lies beyond is drained (then forgotten) so
//! the client gets to read the answer. Every problem becomes the JSON error of
//! its code: `unsupported_media_type`, `payload_too_large`,
//! `invalid_request`, or `408` when the body does not arrive within the body
//! timeout (the connection is then closed).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use signoff_core::{ErrorCode, ViolationCode};

use super::api::AppState;
use super::error::ApiError;

/// The largest body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Beyond the limit, the server keeps reading (and discarding) up to this many
/// bytes so that the client sees the `413` instead of a reset connection.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// What came with a request, once read.
#[derive(Debug, Clone)]
pub enum Received {
    /// No body, or an empty one.
    Empty,
    /// The body, at most [`MAX_BODY_BYTES`].
    Bytes(Bytes),
    /// A body over the limit.
    TooLarge,
    /// The connection failed while the body was read.
    Broken,
}

async fn read(body: Body, declared: Option<usize>) -> Received {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        // Do not buffer what is already known to be too large; drain it if
        // that stays reasonable, else let the connection close.
        if declared.is_some_and(|length| length <= MAX_DRAIN_BYTES) {
            while let Some(Ok(_)) = body.frame().await {}
        }
        return Received::TooLarge;
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Received::Broken;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        } else if seen > MAX_DRAIN_BYTES {
            return Received::TooLarge;
        }
    }
    if seen > MAX_BODY_BYTES {
        Received::TooLarge
    } else if kept.is_empty() {
        Received::Empty
    } else {
        Received::Bytes(Bytes::from(kept))
    }
}

/// The body of a request, not read yet.
#[derive(Debug)]
pub struct Payload {
    body: Body,
    declared: Option<usize>,
    timeout: Duration,
}

impl FromRequest<AppState> for Payload {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<usize>().ok());
        Ok(Self {
            body: request.into_body(),
            declared,
            timeout: state.body_timeout,
        })
    }
}

impl Payload {
    /// Reads the body within the body timeout; `408` (and the connection
    /// closed) when it does not arrive in time.
    async fn receive(self) -> Result<Received, ApiError> {
        tokio::time::timeout(self.timeout, read(self.body, self.declared))
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the request body did not arrive within {} s",
                        self.timeout.as_secs_f64()
                    ),
                )
                .with_status(StatusCode::REQUEST_TIMEOUT)
                .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            })
    }

    /// Reads the body as JSON: `None` when empty (no content type needed
    /// then).
    pub async fn json(self, headers: &HeaderMap) -> Result<Option<Value>, ApiError> {
        self.receive().await?.json(headers)
    }

    /// Reads the body as JSON, which must be present.
    pub async fn required_json(self, headers: &HeaderMap, what: &str) -> Result<Value, ApiError> {
        self.receive().await?.required_json(headers, what)
    }
}

/// Whether the content type is `application/json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value.to_str().is_ok_and(|text| {
        let essence = text.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    })
}

impl Received {
    /// The body as JSON: `None` when empty (no content type needed then).
    pub fn json(&self, headers: &HeaderMap) -> Result<Option<Value>, ApiError> {
        match self {
            Self::Empty => Ok(None),
            Self::Broken => Err(ApiError::invalid_one(
                "the request body could not be read",
                "",
                ViolationCode::InvalidFormat,
                "the body ended before it was complete",
            )),
            Self::TooLarge if !is_json(headers) => Err(unsupported()),
            Self::TooLarge => Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than 1 MiB",
            )),
            Self::Bytes(_) if !is_json(headers) => Err(unsupported()),
            Self::Bytes(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => Ok(Some(value)),
                Err(error) => Err(ApiError::invalid_one(
                    "the request body is not valid JSON",
                    "",
                    ViolationCode::InvalidFormat,
                    &format!("is not JSON: {error}"),
                )),
            },
        }
    }

    /// The body as JSON, which must be present.
    pub fn required_json(&self, headers: &HeaderMap, what: &str) -> Result<Value, ApiError> {
        self.json(headers)?.ok_or_else(|| {
            ApiError::invalid_one(
                format!("the request needs a JSON body: {what}"),
                "",
                ViolationCode::Required,
                "a JSON body is required",
            )
        })
    }
}

fn unsupported() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "the request body must be `application/json`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        headers
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        let small = read(Body::from("{}"), None).await;
        assert!(matches!(small, Received::Bytes(ref bytes) if bytes.as_ref() == b"{}"));
        assert!(matches!(read(Body::empty(), None).await, Received::Empty));
        let big = read(Body::from(vec![b' '; MAX_BODY_BYTES + 1]), None).await;
        assert!(matches!(big, Received::TooLarge));
        let exact = read(Body::from(vec![b' '; MAX_BODY_BYTES]), None).await;
        assert!(matches!(exact, Received::Bytes(_)));
    }

    #[test]
    fn content_type_and_syntax_are_checked() {
        let body = Received::Bytes(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(body.json(&json_headers()).unwrap().unwrap()["a"], 1);
        assert_eq!(
            body.json(&HeaderMap::new()).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/json"));
        assert_eq!(
            body.json(&text).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        let broken = Received::Bytes(Bytes::from_static(b"{\"a\":"));
        assert_eq!(
            broken.json(&json_headers()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            Received::TooLarge.json(&json_headers()).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert!(Received::Empty.json(&HeaderMap::new()).unwrap().is_none());
        let deep = "[".repeat(10_000);
        let deep = Received::Bytes(Bytes::from(deep));
        assert_eq!(
            deep.json(&json_headers()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
