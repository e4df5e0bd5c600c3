//! OAuth `error` codes as data (RFC 6749 §4.1.2.1 and §5.2), not strings matched in handlers.

use std::fmt;

/// An OAuth `error` code: the RFC 6749 §4.1.2.1 and §5.2 codes, RFC 8628 §3.5 `slow_down`, and
/// anything else as [`OAuthErrorCode::Other`].
///
/// The proxy reads it from a provider's token endpoint ([`OAuthErrorCode::parse`]); the client reads
/// it from the proxy's answers and from the authorization redirect ([`OAuthErrorCode::parse_lossy`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request` (RFC 6749 §5.2).
    InvalidRequest,
    /// `invalid_client` (RFC 6749 §5.2): the provider rejected the client's credentials.
    InvalidClient,
    /// `invalid_grant` (RFC 6749 §5.2): code or refresh token expired, used, revoked or mismatched.
    InvalidGrant,
    /// `unauthorized_client` (RFC 6749 §5.2): the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type` (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// `invalid_scope` (RFC 6749 §5.2).
    InvalidScope,
    /// `access_denied` (RFC 6749 §4.1.2.1): the user or the server refused.
    AccessDenied,
    /// `unsupported_response_type` (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// `server_error` (RFC 6749 §4.1.2.1).
    ServerError,
    /// `temporarily_unavailable` (RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
    /// `slow_down` (RFC 8628 §3.5), used by the proxy for rate limiting.
    SlowDown,
    /// Any other code, e.g. the proxy's `error_kick_server_error` or `not_found`.
    Other(String),
}

/// Longest `error` value kept.
const MAX_CODE_LEN: usize = 64;

impl OAuthErrorCode {
    /// Parses a provider's `error` value strictly. `None` when it is not an OAuth error code at all:
    /// empty, longer than 64 characters, or with characters other than `A-Z a-z 0-9 _ - .` (a WAF's
    /// `"Request blocked by security policy."` is a sentence, not a code).
    pub fn parse(code: &str) -> Option<Self> {
        let valid = !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !valid {
            return None;
        }
        Some(match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "slow_down" => Self::SlowDown,
            other => Self::Other(other.to_owned()),
        })
    }

    /// Parses any `error` value, never failing: what [`OAuthErrorCode::parse`] refuses becomes
    /// [`OAuthErrorCode::Other`] holding its printable ASCII characters (space to `~`), at most 64,
    /// so text that came from outside cannot carry control characters into logs or a UI.
    pub fn parse_lossy(code: &str) -> Self {
        Self::parse(code).unwrap_or_else(|| {
            Self::Other(
                code.chars()
                    .filter(|c| matches!(c, ' '..='~'))
                    .take(MAX_CODE_LEN)
                    .collect(),
            )
        })
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::SlowDown => "slow_down",
            Self::Other(code) => code,
        }
    }

    /// True when a provider's error is about the caller's grant, so the caller should see it (400).
    /// False when it is about the proxy's client registration (`invalid_client`,
    /// `unauthorized_client`, `unsupported_grant_type`) or the provider's health (`server_error`,
    /// `temporarily_unavailable`): the caller can do nothing about those, so the proxy answers 502
    /// and logs an ERROR line.
    pub fn is_about_the_grant(&self) -> bool {
        !matches!(
            self,
            Self::InvalidClient
                | Self::UnauthorizedClient
                | Self::UnsupportedGrantType
                | Self::ServerError
                | Self::TemporarilyUnavailable
        )
    }

    /// A fixed description for when the provider sent none (or one the proxy will not repeat).
    pub fn default_description(&self) -> &'static str {
        match self {
            Self::InvalidGrant => {
                "The authorization grant or refresh token is invalid, expired, revoked or was issued to another client."
            }
            Self::InvalidScope => "The requested scope is invalid, unknown or malformed.",
            Self::InvalidRequest => "The provider rejected the request as malformed.",
            _ => "The provider rejected the request.",
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waf_sentence_is_not_an_error_code() {
        assert_eq!(
            OAuthErrorCode::parse("Request blocked by security policy."),
            None
        );
        assert_eq!(OAuthErrorCode::parse(""), None);
        assert_eq!(OAuthErrorCode::parse(&"a".repeat(65)), None);
        assert_eq!(
            OAuthErrorCode::parse("invalid_grant"),
            Some(OAuthErrorCode::InvalidGrant)
        );
        assert_eq!(
            OAuthErrorCode::parse("error_kick_server_error"),
            Some(OAuthErrorCode::Other("error_kick_server_error".into()))
        );
    }

    #[test]
    fn every_named_code_round_trips() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "access_denied",
            "unsupported_response_type",
            "server_error",
            "temporarily_unavailable",
            "slow_down",
        ] {
            let parsed = OAuthErrorCode::parse(code).expect("a valid code");
            assert!(!matches!(parsed, OAuthErrorCode::Other(_)), "{code}");
            assert_eq!(parsed.as_str(), code);
            assert_eq!(parsed.to_string(), code);
        }
    }

    #[test]
    fn lossy_parse_keeps_printable_text_only() {
        assert_eq!(
            OAuthErrorCode::parse_lossy("access_denied"),
            OAuthErrorCode::AccessDenied
        );
        assert_eq!(
            OAuthErrorCode::parse_lossy("bad\u{1b}[31m code\n"),
            OAuthErrorCode::Other("bad[31m code".into())
        );
        assert_eq!(
            OAuthErrorCode::parse_lossy(&"x".repeat(100)),
            OAuthErrorCode::Other("x".repeat(64))
        );
    }

    #[test]
    fn only_grant_errors_are_the_callers_business() {
        assert!(OAuthErrorCode::InvalidGrant.is_about_the_grant());
        assert!(OAuthErrorCode::InvalidScope.is_about_the_grant());
        assert!(OAuthErrorCode::AccessDenied.is_about_the_grant());
        assert!(OAuthErrorCode::Other("anything".into()).is_about_the_grant());
        for code in [
            "invalid_client",
            "unauthorized_client",
            "unsupported_grant_type",
            "server_error",
            "temporarily_unavailable",
        ] {
            let parsed = OAuthErrorCode::parse(code).expect("a valid code");
            assert!(!parsed.is_about_the_grant(), "{code}");
        }
    }
}
