//! [`UpstreamError`]: every way a provider call can fail, and [`Class`], the one table of what
//! each means.

use super::MAX_RESPONSE_BYTES;
use crate::oauth::OAuthErrorCode;
use hyper::StatusCode;
use std::time::Duration;

/// The cause of a [`UpstreamError::Connect`] or [`UpstreamError::Transport`]: the HTTP client's,
/// the TLS library's or the socket's own error. None of them carries the URL (a revoke URL carries
/// a token in its query) or a header value.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to the provider. Every variant but [`UpstreamError::Grant`] is a 502.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered an OAuth error about the caller's grant: the caller sees it (400).
    #[error("provider refused the grant: {code}")]
    Grant {
        /// The provider's code.
        code: OAuthErrorCode,
        /// Its description, sanitised; `None` to use the code's fixed text.
        description: Option<String>,
        /// The HTTP status it came with.
        status: StatusCode,
    },
    /// The provider refused for a reason the caller cannot fix: *our* client credentials or
    /// registration (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`), or its own
    /// trouble (`server_error`, `temporarily_unavailable`).
    #[error("provider refused this server's request: {code} (HTTP {status})")]
    Refused {
        /// The provider's code.
        code: OAuthErrorCode,
        /// The HTTP status.
        status: StatusCode,
    },
    /// No answer within the deadline (connect, send and body together).
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The TCP/TLS connection (or the egress proxy's tunnel) could not be made: nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(#[source] Cause),
    /// The connection failed after the request may have been sent (reset, truncated body).
    #[error("transport failure: {0}")]
    Transport(#[source] Cause),
    /// A 3xx: never followed.
    #[error("provider answered with a redirect (HTTP {0})")]
    Redirect(StatusCode),
    /// A 5xx.
    #[error("provider error (HTTP {0})")]
    ServerError(StatusCode),
    /// An HTML page: a CDN challenge, an outage page.
    #[error("provider answered an HTML page (HTTP {0})")]
    Html(StatusCode),
    /// A JSON body with an `error` that is not an OAuth error (Kick's WAF answers 403 so).
    #[error("provider's firewall blocked the request (HTTP {0})")]
    Blocked(StatusCode),
    /// A body that is not JSON, or JSON we do not understand, with a non-2xx status.
    #[error("provider answered an unexpected body (HTTP {0})")]
    Unexpected(StatusCode),
    /// A 2xx whose body is not a JSON object.
    #[error("provider answered 2xx without a JSON body")]
    NotJson,
    /// A 2xx JSON body without `access_token`.
    #[error("provider answered 2xx without an access_token")]
    NoAccessToken,
    /// More than [`MAX_RESPONSE_BYTES`].
    #[error("provider response exceeds {MAX_RESPONSE_BYTES} bytes")]
    Oversized,
}

/// What an upstream outcome means, decided once for every use: the log and metrics label, the
/// breaker, the caller's answer and the operator's alarm all read it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// A short stable label for logs and metrics: what kind of outcome this was.
    pub kind: &'static str,
    /// The provider is unusable right now (the breaker counts these): no answer in time, no
    /// connection, a broken one, or a 5xx. Not a WAF or HTML page, nor any 4xx: what the caller
    /// sends (a code, a token) can provoke those, and one client must not be able to open the
    /// breaker for everyone.
    pub provider_failure: bool,
    /// The caller's own problem (its grant was refused): the caller sees the provider's code with
    /// a 400. Everything else is a 502 naming the provider.
    pub callers: bool,
    /// The provider refused *our* client credentials or registration: an operator must act.
    pub our_credentials: bool,
}

impl UpstreamError {
    /// The one classification of an outcome.
    pub fn class(&self) -> Class {
        let class = |kind, provider_failure| Class {
            kind,
            provider_failure,
            callers: false,
            our_credentials: false,
        };
        match self {
            Self::Grant { .. } => Class {
                callers: true,
                ..class("oauth_error", false)
            },
            Self::Refused { code, .. } => Class {
                our_credentials: matches!(
                    code,
                    OAuthErrorCode::InvalidClient
                        | OAuthErrorCode::UnauthorizedClient
                        | OAuthErrorCode::UnsupportedGrantType
                ),
                ..class("refused", false)
            },
            Self::Timeout(_) => class("timeout", true),
            Self::Connect(_) => class("connect", true),
            Self::Transport(_) => class("transport", true),
            Self::Redirect(_) => class("redirect", false),
            Self::ServerError(_) => class("5xx", true),
            Self::Html(_) | Self::Blocked(_) => class("waf_or_html", false),
            Self::Unexpected(_) | Self::NotJson | Self::NoAccessToken => {
                class("bad_response", false)
            }
            Self::Oversized => class("oversized", false),
        }
    }

    /// [`Class::kind`].
    pub fn kind(&self) -> &'static str {
        self.class().kind
    }

    /// [`Class::provider_failure`].
    pub fn is_provider_failure(&self) -> bool {
        self.class().provider_failure
    }

    /// [`Class::callers`].
    pub fn is_callers(&self) -> bool {
        self.class().callers
    }

    /// The provider's HTTP status, when it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Grant { status, .. } | Self::Refused { status, .. } => Some(*status),
            Self::Redirect(s) | Self::ServerError(s) | Self::Html(s) | Self::Blocked(s) => Some(*s),
            Self::Unexpected(s) => Some(*s),
            _ => None,
        }
    }
}
