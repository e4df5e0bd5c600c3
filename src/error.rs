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
            Self::InvalidRequest(_) | Self::Grant { .. } => StatusCode::BAD_REQUEST,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &str {
        match self {
            Self::Grant { code, .. } => code.as_str(),
            Self::Upstream { provider, .. } => &provider.server_error_code,
            Self::NotFound => "not_found",
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
            Self::Upstream { provider, .. } => &provider.server_error_text,
            Self::BodyTimeout => "The request body was not received in time.",
            Self::PayloadTooLarge => "The request body is larger than 16 KiB.",
            Self::UnsupportedMediaType => {
                "Send application/json or application/x-www-form-urlencoded (UTF-8)."
            }
            Self::NotFound => "No such endpoint or provider.",
            Self::MethodNotAllowed => "Method not allowed for this endpoint.",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = match &self {
            // The TeamBattles shape keeps a `details` copy of the description on 502s.
            Self::Upstream { provider, .. } => Some(provider.server_error_text.as_str()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code(),
            error_description: self.description(),
            details,
        };
        let mut response =
            json_response(self.status(), serde_json::to_vec(&body).unwrap_or_default());
        let outcome = Outcome {
            error: Some(self.code().to_owned()),
            upstream_status: match &self {
                Self::Upstream { source, .. } => source.status().map(|s| s.as_u16()),
                Self::Grant {
                    upstream_status, ..
                } => Some(*upstream_status),
                _ => None,
            },
            upstream: match &self {
                Self::Upstream { source, .. } => Some(source.kind()),
                Self::Grant { .. } => Some("oauth_error"),
                _ => None,
            },
            ..Outcome::default()
        };
        response.extensions_mut().insert(outcome);
        response
    }
}

/// A JSON response with the headers every token-bearing response carries (RFC 6749 §5.1).
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
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
