//! The one error type handlers return, and its JSON rendering.
//!
//! Every error body is `{"error": "<code>", "error_description": "<fixed, safe text>"}`
//! (RFC 6749 §5.2 shape). Descriptions are fixed strings or a provider's sanitised description; they
//! never echo what the caller sent. The underlying cause goes to the log, never to the caller.

use crate::oauth::OAuthErrorCode;
use crate::routes::Outcome;
use crate::upstream::UpstreamError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

/// Names a provider in its 502 body: `error_kick_server_error`, "… with Kick OAuth server".
#[derive(Debug)]
pub struct ProviderLabel {
    /// The config name (`kick`).
    pub name: String,
    /// `error_<name>_server_error`.
    pub server_error_code: String,
    /// `Failed to communicate with <Display> OAuth server`.
    pub server_error_text: String,
}

impl ProviderLabel {
    /// Precomputes the 502 texts once per provider.
    pub fn new(name: &str, display_name: &str) -> Self {
        Self {
            name: name.to_owned(),
            server_error_code: format!("error_{name}_server_error"),
            server_error_text: format!("Failed to communicate with {display_name} OAuth server"),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: a field missing, empty, malformed, or a redirect URI not allowed; a
    /// body that is not JSON or a form.
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// 400 with the provider's own code: the provider refused the caller's grant.
    #[error("provider refused the grant: {code}")]
    Grant {
        /// Provider's code (`invalid_grant`, …).
        code: OAuthErrorCode,
        /// Sanitised description or the code's fixed text.
        description: Option<String>,
        /// The provider's HTTP status, for the log line.
        upstream_status: u16,
    },
    /// 400 `unsupported_grant_type` (RFC 6749 §5.2): a `grant_type` at `/token` other than
    /// `authorization_code` or `refresh_token`. The provider is not called.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// 502 `error_<provider>_server_error`: the provider could not be used (unreachable, timed out,
    /// 5xx, WAF, HTML, redirect, oversized, no token, or it refused our credentials).
    #[error("upstream failure at {}: {source}", provider.name)]
    Upstream {
        /// Which provider, for the body.
        provider: Arc<ProviderLabel>,
        /// What happened, for the log.
        #[source]
        source: UpstreamError,
    },
    /// 408 `invalid_request`: the body did not arrive within the body-read deadline.
    #[error("request body not received in time")]
    BodyTimeout,
    /// 413 `invalid_request`: body over the 16 KiB limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415 `invalid_request`: neither JSON nor a form (or a charset other than UTF-8).
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// 404 `not_found`: unknown provider or path.
    #[error("not found")]
    NotFound,
    /// 405 `invalid_request`: the router adds the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 503 `temporarily_unavailable` with `Retry-After`: too many provider calls in flight, or the
    /// provider's circuit breaker is open.
    #[error("temporarily unavailable ({reason})")]
    Unavailable {
        /// Seconds the caller should wait.
        retry_after: u64,
        /// For the log line: `overloaded` or `breaker_open`.
        reason: &'static str,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::Grant { .. } | Self::UnsupportedGrantType => {
                StatusCode::BAD_REQUEST
            }
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &str {
        match self {
            Self::Grant { code, .. } => code.as_str(),
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::Upstream { provider, .. } => &provider.server_error_code,
            Self::NotFound => "not_found",
            Self::Unavailable { .. } => "temporarily_unavailable",
            _ => "invalid_request",
        }
    }

    fn description(&self) -> &str {
        match self {
            Self::InvalidRequest(text) => text,
            Self::Grant {
                code, description, ..
            } => description
                .as_deref()
                .unwrap_or_else(|| code.default_description()),
            Self::UnsupportedGrantType => {
                "The grant_type must be authorization_code (or absent) or refresh_token."
            }
            Self::Upstream { provider, .. } => &provider.server_error_text,
            Self::BodyTimeout => "The request body was not received in time.",
            Self::PayloadTooLarge => "The request body is larger than 16 KiB.",
            Self::UnsupportedMediaType => {
                "Send application/json or application/x-www-form-urlencoded (UTF-8)."
            }
            Self::NotFound => "No such endpoint or provider.",
            Self::MethodNotAllowed => "Method not allowed for this endpoint.",
            Self::Unavailable { .. } => {
                "The service is busy or the provider is failing; retry later."
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Reply::from(self).into_response()
    }
}

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
    /// `Retry-After` seconds, on 503.
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

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        let details = match &error {
            // The TeamBattles shape keeps a `details` copy of the description on 502s.
            ApiError::Upstream { provider, .. } => Some(provider.server_error_text.as_str()),
            _ => None,
        };
        let body = ErrorBody {
            error: error.code(),
            error_description: error.description(),
            details,
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let outcome = Outcome {
            error: Some(error.code().to_owned()),
            upstream_status: match &error {
                ApiError::Upstream { source, .. } => source.status().map(|s| s.as_u16()),
                ApiError::Grant {
                    upstream_status, ..
                } => Some(*upstream_status),
                _ => None,
            },
            upstream: match &error {
                ApiError::Upstream { source, .. } => Some(source.kind()),
                ApiError::Grant { .. } => Some("oauth_error"),
                ApiError::Unavailable { reason, .. } => Some(reason),
                _ => None,
            },
            ..Outcome::default()
        };
        Self {
            status: error.status(),
            body,
            outcome,
            retry_after: match &error {
                ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
                _ => None,
            },
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
