//! [`QueryPairs`]: a URL's query string as its `(name, value)` pairs, in
//! order and with repeats, for the core to judge (which parameters exist,
//! and a parameter given twice, are the core's to say). A query string that
//! cannot be decoded is `400 invalid_request` here.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use signoff_core::ViolationCode;

use super::error::ApiError;

/// The decoded `(name, value)` pairs of the query string.
#[derive(Debug)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(Self(pairs)),
            Err(_) => Err(ApiError::invalid_one(
                "the query string is malformed",
                "",
                ViolationCode::InvalidFormat,
                "is not a valid query string",
            )),
        }
    }
}
