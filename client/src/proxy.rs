//! The HTTP client for kick-oauth-proxy's `/api/v1/{provider}/{token,refresh,revoke}` endpoints.
//!
//! # When a request is retried, and why that is safe
//!
//! An authorization code is single-use (RFC 6749 §4.1.2) and a replayed refresh can, with some
//! providers, revoke the whole grant (RFC 6819 §5.2.2.3). So a token or refresh request is repeated
//! only when the proxy cannot have obtained a token for it:
//! - **connect failures**: the request never left this machine;
//! - **`429 slow_down`** and **`503 temporarily_unavailable`**: the proxy refuses before calling the
//!   provider (rate limit, load shedding);
//! - **`502 error_kick_server_error`**: the proxy got no usable answer from the provider, so no token
//!   reached anyone. In the rare case the provider did issue one that got lost, the worst a retry can
//!   do is return `invalid_grant` for an already-used code, which is where the login would have ended
//!   anyway; refresh tokens at Kick are reusable since 2025-11-25. And the proxy answers an identical
//!   retry of a successful exchange or refresh from its replay store, so a lost answer is recovered.
//!
//! Timeouts and broken connections *after* the request was sent are **not** retried for `/token` and
//! `/refresh` (the proxy may have used the code), and are reported as [`Error::Temporary`]. `/revoke`
//! is idempotent (RFC 7009 §2.2), so every temporary failure is retried there.
//!
//! Waits grow exponentially with jitter ([`RetryPolicy`]); a `Retry-After` header (RFC 9110 §10.2.3)
//! is honoured as the wait, and one longer than [`RetryPolicy::max_retry_after`] ends the retries at
//! once, leaving the decision to the caller through [`Error::retry_after`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::authorize::parse_endpoint;
use crate::error::sanitize;
use crate::tokens::{AuthorizationCode, RefreshToken, TokenResponse};
use crate::{random, Error, OAuthErrorCode, PkceVerifier, TemporaryKind};

/// Default overall deadline for one HTTP attempt (connect, send, whole answer). The proxy itself
/// gives the provider 10 s, so 15 s leaves room for its answer to arrive.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest answer read from the proxy; a token response is well under 4 KiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How many times, and how patiently, a safe-to-retry request is repeated. See the [module
/// docs](self) for which failures count as safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; `1` disables retries.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each later one (then jittered).
    pub initial_backoff: Duration,
    /// Cap on the exponential wait.
    pub max_backoff: Duration,
    /// Longest `Retry-After` this client will sit through; a longer one is returned to the caller.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 500 ms then 1 s (±jitter), `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// The `token_type_hint` of a revocation request, shared with the proxy (defined once in
/// `oauth-types`).
pub use oauth_types::TokenTypeHint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token,
    Refresh,
    Revoke,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Refresh => "refresh",
            Endpoint::Revoke => "revoke",
        }
    }
}

/// Builder for [`ProxyClient`].
#[derive(Debug, Clone)]
pub struct ProxyClientBuilder {
    base_url: String,
    provider: String,
    timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
}

impl ProxyClientBuilder {
    /// Deadline for one attempt: connect, send and the whole answer (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retry policy (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `User-Agent` header (default `kick-oauth-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Checks the settings and builds the client (one connection pool, reused for every call).
    pub fn build(self) -> Result<ProxyClient, Error> {
        let mut base = parse_endpoint(&self.base_url, "proxy base URL")?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(
                "proxy base URL must not have a query or fragment".into(),
            ));
        }
        let valid_provider = !self.provider.is_empty()
            && self.provider.len() <= 64
            && self
                .provider
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_provider {
            return Err(Error::Config(
                "provider must be 1-64 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be greater than zero".into()));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::Config(
                "retry max_attempts must be at least 1".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            // Token answers are never redirected; following one could send the code elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(ProxyClient {
            http,
            base,
            provider: self.provider,
            retry: self.retry,
        })
    }
}

/// Calls the proxy's token, refresh and revoke endpoints (see `docs/contract.md`), which add the
/// client secret Kick requires and forward to `https://id.kick.com/oauth/token` (RFC 6749 §4.1.3, §6)
/// and `/oauth/revoke` (RFC 7009).
///
/// Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    base: Url,
    provider: String,
    retry: RetryPolicy,
}

#[derive(Serialize)]
struct ExchangeBody<'a> {
    code: &'a str,
    code_verifier: &'a str,
    redirect_uri: &'a str,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    refresh_token: &'a str,
}

#[derive(Serialize)]
struct RevokeBody<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type_hint: Option<&'static str>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

impl ProxyClient {
    /// A client for `base_url` (the proxy's root, e.g. `https://teambattles.gg`) and `provider`
    /// (the `{provider}` path segment, e.g. `kick`), with default settings.
    pub fn new(base_url: impl Into<String>, provider: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url, provider).build()
    }

    /// A builder for non-default timeout, retry policy or user agent.
    pub fn builder(base_url: impl Into<String>, provider: impl Into<String>) -> ProxyClientBuilder {
        ProxyClientBuilder {
            base_url: base_url.into(),
            provider: provider.into(),
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            user_agent: concat!("kick-oauth-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// The provider name this client calls.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Exchanges an authorization code for tokens: `POST {base}/api/v1/{provider}/token` with
    /// `code`, `code_verifier` (RFC 7636 §4.5) and the same `redirect_uri` as the authorization
    /// request (RFC 6749 §4.1.3).
    pub async fn exchange(
        &self,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
        redirect_uri: &str,
    ) -> Result<TokenResponse, Error> {
        let body = serde_json::to_vec(&ExchangeBody {
            code: code.secret(),
            code_verifier: verifier.secret(),
            redirect_uri,
        })
        .map_err(|_| Error::Config("could not encode the token request".into()))?;
        let bytes = self.post(Endpoint::Token, body).await?;
        parse_token_response(&bytes)
    }

    /// Gets new tokens with a refresh token (RFC 6749 §6): `POST {base}/api/v1/{provider}/refresh`.
    /// The answer may or may not contain a new refresh token.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenResponse, Error> {
        let body = serde_json::to_vec(&RefreshBody {
            refresh_token: refresh_token.secret(),
        })
        .map_err(|_| Error::Config("could not encode the refresh request".into()))?;
        let bytes = self.post(Endpoint::Refresh, body).await?;
        parse_token_response(&bytes)
    }

    /// Revokes a token (RFC 7009 §2.1): `POST {base}/api/v1/{provider}/revoke`. Pass the secret
    /// (`token.secret()`). Succeeds for unknown tokens too (RFC 7009 §2.2).
    pub async fn revoke(&self, token: &str, hint: Option<TokenTypeHint>) -> Result<(), Error> {
        let body = serde_json::to_vec(&RevokeBody {
            token,
            token_type_hint: hint.map(TokenTypeHint::as_str),
        })
        .map_err(|_| Error::Config("could not encode the revoke request".into()))?;
        self.post(Endpoint::Revoke, body).await.map(drop)
    }

    fn url(&self, endpoint: Endpoint) -> Result<Url, Error> {
        self.base
            .join(&format!("api/v1/{}/{}", self.provider, endpoint.as_str()))
            .map_err(|e| Error::Config(format!("proxy URL: {e}")))
    }

    /// POSTs `body` with retries; returns the 2xx body or the classified error.
    async fn post(&self, endpoint: Endpoint, body: Vec<u8>) -> Result<Bytes, Error> {
        let url = self.url(endpoint)?;
        let body = Bytes::from(body);
        let mut attempt: u32 = 1;
        loop {
            let err = match self.attempt(&url, endpoint, body.clone()).await {
                Ok(bytes) => return Ok(bytes),
                Err(err) => err,
            };
            let wait = match retry_wait(&err, endpoint, attempt, &self.retry) {
                Some(wait) => wait,
                None => return Err(err),
            };
            tracing::warn!(
                provider = %self.provider,
                endpoint = endpoint.as_str(),
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "temporary failure from the OAuth proxy; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &Url, endpoint: Endpoint, body: Bytes) -> Result<Bytes, Error> {
        let started = std::time::Instant::now();
        let mut response = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(&e, &self.provider, endpoint))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));

        let mut bytes = Vec::new();
        let mut oversized = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        oversized = true;
                        break;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The status line arrived, so the proxy did process the request: a body failure is
                // reported, never retried as a connect error.
                Err(e) => return Err(network_error(&e, &self.provider, endpoint)),
            }
        }
        tracing::debug!(
            provider = %self.provider,
            endpoint = endpoint.as_str(),
            status = status.as_u16(),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "OAuth proxy answered"
        );

        if status.is_success() {
            if oversized {
                return Err(Error::InvalidResponse("answer larger than 64 KiB".into()));
            }
            return Ok(Bytes::from(bytes));
        }
        let parsed: Option<ErrorBody> = if oversized {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        let code = parsed.as_ref().and_then(|b| b.error.as_deref());
        let description = parsed
            .as_ref()
            .and_then(|b| b.error_description.as_deref())
            .map(|d| sanitize(d, 512));
        Err(classify_status(
            status,
            code,
            description,
            retry_after,
            &self.provider,
        ))
    }
}

fn network_error(e: &reqwest::Error, provider: &str, endpoint: Endpoint) -> Error {
    // reqwest's message names the URL (no secret: those travel in the body) and the cause.
    tracing::debug!(provider, endpoint = endpoint.as_str(), error = %e, "OAuth proxy request failed");
    let kind = if e.is_connect() {
        TemporaryKind::Connect
    } else if e.is_timeout() {
        TemporaryKind::Timeout
    } else {
        TemporaryKind::Network
    };
    Error::Temporary {
        kind,
        retry_after: None,
    }
}

fn classify_status(
    status: StatusCode,
    code: Option<&str>,
    description: Option<String>,
    retry_after: Option<Duration>,
    provider: &str,
) -> Error {
    let temporary = |kind| Error::Temporary { kind, retry_after };
    match status.as_u16() {
        400 if code == Some("invalid_grant") => Error::GrantInvalid { description },
        404 => Error::Config(format!(
            "the proxy has no provider {provider:?} (404); check the base URL and provider name"
        )),
        429 => temporary(TemporaryKind::RateLimited),
        502 => temporary(TemporaryKind::Upstream),
        503 => temporary(TemporaryKind::Unavailable),
        s @ 500..=599 => temporary(TemporaryKind::Server(s)),
        s => Error::Rejected {
            status: s,
            error: OAuthErrorCode::parse_lossy(code.unwrap_or("")),
            description,
        },
    }
}

/// How long to wait before the next attempt, or `None` to give up now.
fn retry_wait(
    err: &Error,
    endpoint: Endpoint,
    attempt: u32,
    policy: &RetryPolicy,
) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let Error::Temporary { kind, retry_after } = err else {
        return None;
    };
    let safe = match kind {
        TemporaryKind::Connect
        | TemporaryKind::RateLimited
        | TemporaryKind::Unavailable
        | TemporaryKind::Upstream => true,
        // Sent, maybe processed: only an idempotent revoke may be repeated.
        TemporaryKind::Timeout | TemporaryKind::Network | TemporaryKind::Server(_) => {
            endpoint == Endpoint::Revoke
        }
    };
    if !safe {
        return None;
    }
    match retry_after {
        Some(wait) if *wait > policy.max_retry_after => None,
        Some(wait) => Some(*wait),
        None => Some(random::backoff(
            attempt,
            policy.initial_backoff,
            policy.max_backoff,
        )),
    }
}

fn parse_token_response(bytes: &[u8]) -> Result<TokenResponse, Error> {
    // serde's message could quote part of the body (a token): report a fixed text instead.
    let response: TokenResponse = serde_json::from_slice(bytes).map_err(|_| {
        Error::InvalidResponse("the body is not an RFC 6749 §5.1 token response".into())
    })?;
    if response.access_token.secret().is_empty() {
        return Err(Error::InvalidResponse("empty access_token".into()));
    }
    Ok(response)
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) turned into a delay from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let when = parse_imf_fixdate(value)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT"
        || parts.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn sent_requests_are_not_retried_except_revoke() {
        let policy = RetryPolicy::default();
        let timeout = Error::Temporary {
            kind: TemporaryKind::Timeout,
            retry_after: None,
        };
        assert!(retry_wait(&timeout, Endpoint::Token, 1, &policy).is_none());
        assert!(retry_wait(&timeout, Endpoint::Refresh, 1, &policy).is_none());
        assert!(retry_wait(&timeout, Endpoint::Revoke, 1, &policy).is_some());
        let connect = Error::Temporary {
            kind: TemporaryKind::Connect,
            retry_after: None,
        };
        assert!(retry_wait(&connect, Endpoint::Token, 1, &policy).is_some());
        assert!(retry_wait(&connect, Endpoint::Token, 3, &policy).is_none());
        let grant = Error::GrantInvalid { description: None };
        assert!(retry_wait(&grant, Endpoint::Refresh, 1, &policy).is_none());
    }
}
