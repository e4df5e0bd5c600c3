//! What a request was and how it ended, as the per-request log line and the metrics see it.

use axum::http::HeaderName;
use std::sync::Arc;

/// `x-request-id`: accepted from the caller when sane, generated otherwise, echoed back.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The proxy's endpoints, named as in the log line: what a request did, which for a refresh sent to
/// `/token` (`grant_type=refresh_token`) is [`Endpoint::Refresh`]. The rate limit, chosen before
/// the body is read, goes by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Authorization-code exchange.
    Token,
    /// Refresh-token grant, at `/refresh` or at `/token`.
    Refresh,
    /// Token revocation.
    Revoke,
}

impl Endpoint {
    /// The log and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Refresh => "refresh",
            Self::Revoke => "revoke",
        }
    }
}

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

/// What a handler or a front-door layer reports about its request for the log line, carried in
/// response extensions.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Provider name (from config, never from the path as sent).
    pub provider: Option<Arc<ProviderLabel>>,
    /// `token`, `refresh`, …
    pub endpoint: Option<&'static str>,
    /// The `error` code of the response body.
    pub error: Option<String>,
    /// The provider's HTTP status, when it answered.
    pub upstream_status: Option<u16>,
    /// What kind of upstream outcome (`ok`, `timeout`, `5xx`, …).
    pub upstream: Option<&'static str>,
    /// `replay` (answered from the replay cache) or `shared` (waited on an identical request's
    /// provider call); absent when this request made its own call.
    pub served_from: Option<&'static str>,
}
