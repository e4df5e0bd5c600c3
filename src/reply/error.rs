//! [`ApiError`]: everything a request can fail with, from the front door to the provider, and
//! what each failure shows the caller. Rendered in one place, [`super::Reply`].

use super::outcome::ProviderLabel;
use crate::upstream::UpstreamError;
use axum::http::StatusCode;
use std::borrow::Cow;
use std::sync::Arc;

/// Everything a request can fail with. Each variant's doc says its status and `error` code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: a field missing, empty, malformed, or a redirect URI not allowed; a
    /// body that is not JSON or a form.
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// 400 `unsupported_grant_type` (RFC 6749 §5.2): a `grant_type` at `/token` other than
    /// `authorization_code` or `refresh_token`. The provider is not called.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// The provider's answer: 400 with the provider's own code when it refused the caller's grant
    /// ([`UpstreamError::Grant`]); else 502 `error_<provider>_server_error`, the provider could
    /// not be used (unreachable, timed out, 5xx, WAF, HTML, redirect, oversized, no token, or it
    /// refused our credentials).
    #[error("upstream failure at {}: {source}", provider.name)]
    Upstream {
        /// Which provider, for the body.
        provider: Arc<ProviderLabel>,
        /// What happened: classified once, in [`crate::upstream`].
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
    /// 429 `slow_down` with `Retry-After`: this client's bucket for the endpoint is empty.
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds until the bucket has room again (at least 1).
        retry_after: u64,
    },
    /// 503 `temporarily_unavailable` with `Retry-After: 1`: more API requests in the service than
    /// `limits.max_concurrent_requests` (load shedding).
    #[error("overloaded")]
    Overloaded,
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

/// The one 503 text, whatever made the service unavailable.
const UNAVAILABLE: &str = "The service is busy or the provider is failing; retry later.";

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Self::Upstream { source, .. } if source.is_callers() => StatusCode::BAD_REQUEST,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &str {
        match self {
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::Upstream {
                source: UpstreamError::Grant { code, .. },
                ..
            } => code.as_str(),
            Self::Upstream { provider, .. } => &provider.server_error_code,
            Self::NotFound => "not_found",
            Self::RateLimited { .. } => "slow_down",
            Self::Overloaded | Self::Unavailable { .. } => "temporarily_unavailable",
            Self::InvalidRequest(_)
            | Self::BodyTimeout
            | Self::PayloadTooLarge
            | Self::UnsupportedMediaType
            | Self::MethodNotAllowed => "invalid_request",
        }
    }

    /// The `error_description`: a fixed text, or a provider's sanitised description. Never what
    /// the caller sent.
    pub fn description(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Self::InvalidRequest(text) => text,
            Self::UnsupportedGrantType => {
                "The grant_type must be authorization_code (or absent) or refresh_token."
            }
            Self::Upstream {
                source:
                    UpstreamError::Grant {
                        code, description, ..
                    },
                ..
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
            Self::RateLimited { retry_after } => {
                let unit = if *retry_after == 1 {
                    "second"
                } else {
                    "seconds"
                };
                return Cow::Owned(format!(
                    "Too many requests; retry after {retry_after} {unit}."
                ));
            }
            Self::Overloaded | Self::Unavailable { .. } => UNAVAILABLE,
        })
    }

    /// The TeamBattles shape keeps a `details` copy of the description on 502s.
    pub fn details(&self) -> Option<&str> {
        match self {
            Self::Upstream { provider, source } if !source.is_callers() => {
                Some(&provider.server_error_text)
            }
            _ => None,
        }
    }

    /// `Retry-After` seconds, on 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Overloaded => Some(1),
            _ => None,
        }
    }
}
