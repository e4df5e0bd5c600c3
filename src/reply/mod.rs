//! The vocabulary every stage of a request shares, below all of them: what the request was
//! ([`Endpoint`]), how it ended ([`Outcome`]), what it failed with ([`ApiError`]), and the one
//! place an answer becomes an HTTP response ([`Reply`], [`json_response`]).
//!
//! Every error body is `{"error": "<code>", "error_description": "<fixed, safe text>"}`
//! (RFC 6749 §5.2 shape), 429 and 503 included. Descriptions are fixed strings or a provider's
//! sanitised description; they never echo what the caller sent. The underlying cause goes to the
//! log, never to the caller.

mod error;
mod outcome;

pub use error::ApiError;
pub use outcome::{Endpoint, Outcome, ProviderLabel, REQUEST_ID};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

/// A rendered answer: what single-flight waiters share and replay returns. Its `Debug` omits the
/// body, which holds tokens.
#[derive(Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Bytes,
    /// For the log line.
    pub outcome: Outcome,
    /// `Retry-After` seconds, on 429 and 503.
    pub retry_after: Option<u64>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// A 200 with a token (or revocation) body.
    pub fn ok(body: Bytes, upstream_status: Option<u16>) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            outcome: Outcome {
                upstream_status,
                upstream: Some("ok"),
                ..Outcome::default()
            },
            retry_after: None,
        }
    }

    /// A 200 answered from replay: an earlier identical request's body, no provider call.
    pub fn replayed(body: Bytes) -> Self {
        let mut reply = Self::ok(body, None);
        reply.outcome.upstream = None;
        reply.outcome.served_from = Some("replay");
        reply
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response {
        let mut response = json_response(self.status, self.body);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self.outcome);
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Reply::from(self).into_response()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        let body = ErrorBody {
            error: error.code(),
            error_description: &error.description(),
            details: error.details(),
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let (upstream, upstream_status) = match &error {
            ApiError::Upstream { source, .. } => {
                (Some(source.kind()), source.status().map(|s| s.as_u16()))
            }
            ApiError::Unavailable { reason, .. } => (Some(*reason), None),
            _ => (None, None),
        };
        Self {
            status: error.status(),
            body,
            outcome: Outcome {
                error: Some(error.code().to_owned()),
                upstream,
                upstream_status,
                ..Outcome::default()
            },
            retry_after: error.retry_after(),
        }
    }
}

/// A JSON response with the headers every token-bearing response carries (RFC 6749 §5.1).
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let body: Bytes = body.into();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
