//! The crate's one error type, and the OAuth error codes it carries as data.

use std::fmt;
use std::time::Duration;

/// The OAuth `error` codes, shared with the proxy (defined once in `oauth-types`).
pub use oauth_types::OAuthErrorCode;

/// Everything that can go wrong in a login or a refresh, sorted by what the app should do about it.
///
/// The split that matters most:
/// - [`Error::GrantInvalid`] / [`Error::LoginRequired`]: the grant is dead. Retrying will not help;
///   send the user through the login again.
/// - [`Error::Temporary`]: nothing is known to be wrong with the grant; try again later
///   (after [`Error::retry_after`] when the server said so).
/// - [`Error::Rejected`] / [`Error::Config`]: the request itself is wrong (a bug or a misconfiguration);
///   retrying the same request gives the same answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The proxy answered `400` with `error=invalid_grant` (RFC 6749 §5.2): the authorization code is
    /// expired or already used, the PKCE verifier does not match, or the refresh token was revoked.
    #[error("the grant is no longer valid; the user has to log in again")]
    GrantInvalid {
        /// The sanitised `error_description` the proxy passed on, if any.
        description: Option<String>,
    },

    /// [`crate::TokenManager`] holds no usable grant: nobody logged in yet, the user logged out, or
    /// the grant died (the store has been cleared). Start a new login.
    #[error("login required")]
    LoginRequired,

    /// A failure that says nothing about the grant: the proxy is rate limiting (`429 slow_down`),
    /// shedding load (`503 temporarily_unavailable`), could not reach the provider
    /// (`502 error_kick_server_error`), or the network failed.
    #[error("temporary failure ({kind}){}", fmt_retry_after(*.retry_after))]
    Temporary {
        /// What kind of temporary failure.
        kind: TemporaryKind,
        /// How long the server asked us to wait (`Retry-After`, RFC 9110 §10.2.3), if it said.
        retry_after: Option<Duration>,
    },

    /// The proxy refused the request for a reason retrying cannot fix: `400 invalid_request`, another
    /// OAuth error code than `invalid_grant` (RFC 6749 §5.2), `405`, `413` or `415`.
    #[error("request rejected by the proxy: HTTP {status}, {error}")]
    Rejected {
        /// HTTP status of the answer.
        status: u16,
        /// The `error` field of the answer (RFC 6749 §5.2 code or the proxy's own).
        error: OAuthErrorCode,
        /// The sanitised `error_description`, if any.
        description: Option<String>,
    },

    /// The client is set up wrongly: a malformed or non-HTTPS URL, an unknown provider (`404` from the
    /// proxy), a redirect URI the loopback listener cannot serve, a verifier of the wrong length.
    #[error("configuration error: {0}")]
    Config(String),

    /// The proxy answered `200` but the body is not a token response (RFC 6749 §5.1), or it was too big.
    #[error("unexpected response from the proxy: {0}")]
    InvalidResponse(String),

    /// The authorization server redirected back with an error (RFC 6749 §4.1.2.1), e.g. the user
    /// pressed "deny" (`access_denied`).
    #[error("authorization failed: {error}")]
    Authorization {
        /// The `error` parameter of the redirect.
        error: OAuthErrorCode,
        /// The `error_description` parameter, if any (not trusted: shown only in logs/UI text).
        description: Option<String>,
    },

    /// The `state` in the redirect is missing or is not the one this login sent (RFC 6749 §10.12):
    /// a stale browser tab or a forged redirect. The code, if any, was not used.
    #[error("the redirect's state does not match this login (possible CSRF); ignored")]
    StateMismatch,

    /// The redirect could not be understood: no `code`, a parameter given twice (RFC 6749 §3.1),
    /// or a URL that is not the expected callback.
    #[error("malformed authorization callback: {0}")]
    Callback(String),

    /// No redirect reached the loopback listener in time.
    #[error("timed out waiting for the browser to come back")]
    CallbackTimeout,

    /// Binding or serving the loopback listener failed.
    #[error("loopback listener: {0}")]
    Io(#[from] std::io::Error),

    /// The token store failed to load, save or clear.
    #[error("token store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The operating system's random number generator failed; no secret could be generated.
    #[error("the system random number generator failed")]
    Random,
}

fn fmt_retry_after(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {}s", d.as_secs()),
        None => String::new(),
    }
}

impl Error {
    /// Wraps an error from a [`crate::TokenStore`] implementation.
    pub fn store<E>(error: E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        Error::Store(error.into())
    }

    /// `true` for [`Error::Temporary`]: the same request may succeed later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Temporary { .. })
    }

    /// `true` when the user has to log in again ([`Error::GrantInvalid`], [`Error::LoginRequired`]).
    pub fn is_login_required(&self) -> bool {
        matches!(self, Error::GrantInvalid { .. } | Error::LoginRequired)
    }

    /// The `Retry-After` delay the server asked for, if this is a [`Error::Temporary`] that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Temporary { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Why a [`Error::Temporary`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemporaryKind {
    /// `429 slow_down` (RFC 6585 §4): the proxy is rate limiting this client.
    RateLimited,
    /// `503 temporarily_unavailable`: the proxy is shedding load or draining.
    Unavailable,
    /// `502 error_kick_server_error`: the proxy could not get an answer from the provider.
    Upstream,
    /// Another 5xx status from the proxy or something in front of it.
    Server(u16),
    /// The connection could not be made; the request was never sent.
    Connect,
    /// The request was sent but no complete answer arrived in time.
    Timeout,
    /// Another network failure after the request may have been sent.
    Network,
}

impl fmt::Display for TemporaryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemporaryKind::RateLimited => f.write_str("rate limited"),
            TemporaryKind::Unavailable => f.write_str("proxy unavailable"),
            TemporaryKind::Upstream => f.write_str("provider unreachable through the proxy"),
            TemporaryKind::Server(status) => write!(f, "HTTP {status}"),
            TemporaryKind::Connect => f.write_str("could not connect"),
            TemporaryKind::Timeout => f.write_str("timed out"),
            TemporaryKind::Network => f.write_str("network error"),
        }
    }
}

/// Keeps text that came from outside printable: visible ASCII and spaces only (RFC 6749 §5.2 limits
/// `error_description` to that set), at most `max` characters. Protects logs and UI from control
/// characters and floods.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~'))
        .take(max)
        .collect()
}
