//! Request bodies: read once, bounded, and judged only when a handler asks.
//!
//! A middleware reads every body into memory up to [`MAX_BODY_BYTES`] before
//! routing reaches a handler, and drains (then forgets) what lies beyond, so
//! the client always gets to read the answer. Handlers authenticate first and
//! only then look at the body through [`Payload::json`], which turns every
//! problem into the JSON error of its code: `unsupported_media_type`,
//! `payload_too_large` or `invalid_request`.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use signoff_core::ViolationCode;

use super::error::ApiError;

/// The largest body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Beyond the limit, the server keeps reading (and discarding) up to this many
/// bytes so that the client sees the `413` instead of a reset connection.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// What came with a request.
#[derive(Debug, Clone)]
pub enum Payload {
    /// No body, or an empty one.
    Empty,
    /// The body, at most [`MAX_BODY_BYTES`].
    Bytes(Bytes),
    /// A body over the limit.
    TooLarge,
    /// The connection failed while the body was read.
    Broken,
}

async fn read(body: Body, declared: Option<usize>) -> Payload {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        // Do not buffer what is already known to be too large; drain it if
        // that stays reasonable, else let the connection close.
        if declared.is_some_and(|length| length <= MAX_DRAIN_BYTES) {
            while let Some(Ok(_)) = body.frame().await {}
        }
        return Payload::TooLarge;
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Payload::Broken;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        } else if seen > MAX_DRAIN_BYTES {
            return Payload::TooLarge;
        }
    }
    if seen > MAX_BODY_BYTES {
        Payload::TooLarge
    } else if kept.is_empty() {
        Payload::Empty
    } else {
        Payload::Bytes(Bytes::from(kept))
    }
}

/// Middleware: reads the body into a [`Payload`] request extension.
pub async fn buffer(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok());
    let payload = read(body, declared).await;
    parts.extensions.insert(payload);
    next.run(Request::from_parts(parts, Body::empty())).await
}

impl<S: Send + Sync> FromRequestParts<S> for Payload {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(ApiError::internal)
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

impl Payload {
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
                signoff_core::ErrorCode::PayloadTooLarge,
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
        signoff_core::ErrorCode::UnsupportedMediaType,
        "the request body must be `application/json`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use signoff_core::ErrorCode;

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
        assert!(matches!(small, Payload::Bytes(ref bytes) if bytes.as_ref() == b"{}"));
        assert!(matches!(read(Body::empty(), None).await, Payload::Empty));
        let big = read(Body::from(vec![b' '; MAX_BODY_BYTES + 1]), None).await;
        assert!(matches!(big, Payload::TooLarge));
        let exact = read(Body::from(vec![b' '; MAX_BODY_BYTES]), None).await;
        assert!(matches!(exact, Payload::Bytes(_)));
    }

    #[test]
    fn content_type_and_syntax_are_checked() {
        let body = Payload::Bytes(Bytes::from_static(b"{\"a\":1}"));
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
        let broken = Payload::Bytes(Bytes::from_static(b"{\"a\":"));
        assert_eq!(
            broken.json(&json_headers()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            Payload::TooLarge.json(&json_headers()).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert!(Payload::Empty.json(&HeaderMap::new()).unwrap().is_none());
        let deep = "[".repeat(10_000);
        let deep = Payload::Bytes(Bytes::from(deep));
        assert_eq!(
            deep.json(&json_headers()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
