//! OAuth 2.0 wire types: the provider's error codes (RFC 6749 §5.2) and the token response
//! (RFC 6749 §5.1), normalised to the proxy's contract.

use crate::secret::{AuthorizationCode, CodeVerifier, RefreshToken};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// An `error` code from the provider's token endpoint. Data, not strings scattered in handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// RFC 6749 §5.2 `invalid_request`.
    InvalidRequest,
    /// RFC 6749 §5.2 `invalid_client`: the provider rejected *our* credentials.
    InvalidClient,
    /// RFC 6749 §5.2 `invalid_grant`: code or refresh token expired, used, revoked or mismatched.
    InvalidGrant,
    /// RFC 6749 §5.2 `unauthorized_client`: our client may not use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// RFC 6749 §5.2 `invalid_scope`.
    InvalidScope,
    /// Any other syntactically valid code (`access_denied`, `server_error`, …).
    Other(String),
}

impl OAuthErrorCode {
    /// Parses a provider's `error` value. `None` when it is not an OAuth error code at all (a WAF's
    /// `"Request blocked by security policy."` is a sentence, not a code).
    pub fn parse(code: &str) -> Option<Self> {
        let valid = !code.is_empty()
            && code.len() <= 64
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
            other => Self::Other(other.to_owned()),
        })
    }

    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Other(code) => code,
        }
    }

    /// True when the error is about the caller's grant, so the caller should see it (400). False
    /// when it is about this server's client registration or the provider's health: the caller can
    /// do nothing about those, so they become a 502 and an ERROR log line.
    pub fn is_about_the_grant(&self) -> bool {
        match self {
            Self::InvalidClient | Self::UnauthorizedClient | Self::UnsupportedGrantType => false,
            Self::Other(code) => {
                !matches!(code.as_str(), "server_error" | "temporarily_unavailable")
            }
            _ => true,
        }
    }

    /// A fixed description for when the provider sent none (or one we will not repeat).
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

/// The secret inputs of one request, so a provider description that echoes one of them is dropped.
#[derive(Default)]
pub struct RequestSecrets<'a> {
    /// The values to look for.
    pub values: Vec<&'a str>,
}

impl<'a> RequestSecrets<'a> {
    /// From an authorization-code request.
    pub fn code(code: &'a AuthorizationCode, verifier: &'a CodeVerifier) -> Self {
        Self {
            values: vec![code.secret(), verifier.secret()],
        }
    }

    /// From a refresh request.
    pub fn refresh(token: &'a RefreshToken) -> Self {
        Self {
            values: vec![token.secret()],
        }
    }
}

/// Maximum length of a description passed through to the caller.
pub const MAX_DESCRIPTION_LEN: usize = 512;

/// Keeps a provider's `error_description` only if it is safe to show: the RFC 6749 §5.2 character
/// set (printable ASCII without `"` and `\`), at most 512 characters, and not containing any of the
/// request's own secrets.
pub fn sanitize_description(raw: Option<&str>, secrets: &RequestSecrets<'_>) -> Option<String> {
    let cleaned: String = raw?
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(MAX_DESCRIPTION_LEN)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty()
        || secrets
            .values
            .iter()
            .any(|s| s.len() >= 4 && cleaned.contains(s))
    {
        return None;
    }
    Some(cleaned.to_owned())
}

/// A successful token response (RFC 6749 §5.1), normalised: `expires_in` an integer, `scope` one
/// space-separated string, `token_type` `Bearer`; everything else passes through unchanged.
///
/// Its `Debug` shows field names only: every value may be a credential.
pub struct TokenResponse {
    fields: Map<String, Value>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a 2xx body is not a token response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenResponseError {
    /// Not a JSON object.
    NotJson,
    /// No non-empty string `access_token`.
    NoAccessToken,
}

/// The order fields are written in; the rest follow as the provider sent them.
const KNOWN_FIELDS: [&str; 5] = [
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
];

impl TokenResponse {
    /// Parses and normalises a provider's 2xx body, whatever its `Content-Type` said.
    pub fn from_provider_body(body: &[u8]) -> Result<Self, TokenResponseError> {
        let mut fields: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| TokenResponseError::NotJson)?;
        match fields.get("access_token") {
            Some(Value::String(token)) if !token.is_empty() => {}
            _ => return Err(TokenResponseError::NoAccessToken),
        }
        let token_type = match fields.get("token_type") {
            Some(Value::String(t)) if !t.eq_ignore_ascii_case("bearer") => t.clone(),
            _ => "Bearer".to_owned(),
        };
        fields.insert("token_type".into(), Value::String(token_type));
        if let Some(expires_in) = fields.remove("expires_in") {
            match normalize_expires_in(&expires_in) {
                Some(secs) => {
                    fields.insert("expires_in".into(), Value::from(secs));
                }
                None => tracing::warn!(
                    "provider sent an expires_in that is not a non-negative integer; omitted"
                ),
            }
        }
        if let Some(scope) = fields.remove("scope") {
            match scope {
                Value::String(s) => {
                    fields.insert("scope".into(), Value::String(s));
                }
                Value::Array(items) => {
                    let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    fields.insert("scope".into(), Value::String(joined.join(" ")));
                }
                _ => tracing::warn!(
                    "provider sent a scope that is neither a string nor a list; omitted"
                ),
            }
        }
        if matches!(fields.get("refresh_token"), Some(Value::Null)) {
            fields.remove("refresh_token");
        }
        Ok(Self { fields })
    }

    /// The normalised `expires_in`, if any.
    pub fn expires_in(&self) -> Option<u64> {
        self.fields.get("expires_in").and_then(Value::as_u64)
    }

    /// The response body, JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for TokenResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for key in KNOWN_FIELDS {
            if let Some(v) = self.fields.get(key) {
                map.serialize_entry(key, v)?;
            }
        }
        for (k, v) in &self.fields {
            if !KNOWN_FIELDS.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// `7200`, `"7200"` and `7200.0` all mean 7200 seconds.
fn normalize_expires_in(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<TokenResponse, TokenResponseError> {
        TokenResponse::from_provider_body(body.as_bytes())
    }

    #[test]
    fn kick_response_keeps_its_shape_and_order() {
        let r = parse(r#"{"scope":"user:read","refresh_token":"r","expires_in":7200,"token_type":"Bearer","access_token":"a"}"#)
            .expect("valid");
        assert_eq!(
            String::from_utf8(r.to_json()).expect("utf8"),
            r#"{"access_token":"a","token_type":"Bearer","expires_in":7200,"refresh_token":"r","scope":"user:read"}"#
        );
    }

    #[test]
    fn expires_in_as_string_becomes_integer() {
        let r = parse(r#"{"access_token":"a","expires_in":"3600"}"#).expect("valid");
        assert_eq!(r.expires_in(), Some(3600));
        let r = parse(r#"{"access_token":"a","expires_in":3600.0}"#).expect("valid");
        assert_eq!(r.expires_in(), Some(3600));
        let r = parse(r#"{"access_token":"a","expires_in":"soon"}"#).expect("valid");
        assert_eq!(r.expires_in(), None);
    }

    #[test]
    fn scope_list_is_joined_and_lowercase_bearer_is_normalised() {
        let r = parse(r#"{"access_token":"a","token_type":"bearer","scope":["a:b","c:d"],"id_token":"x.y.z"}"#)
            .expect("valid");
        let v: Value = serde_json::from_slice(&r.to_json()).expect("json");
        assert_eq!(v["scope"], "a:b c:d");
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["id_token"], "x.y.z");
    }

    #[test]
    fn bodies_without_a_token_are_refused() {
        assert_eq!(parse("<html>").err(), Some(TokenResponseError::NotJson));
        assert_eq!(parse("[]").err(), Some(TokenResponseError::NotJson));
        assert_eq!(
            parse(r#"{"access_token":""}"#).err(),
            Some(TokenResponseError::NoAccessToken)
        );
        assert_eq!(
            parse(r#"{"access_token":5}"#).err(),
            Some(TokenResponseError::NoAccessToken)
        );
    }

    #[test]
    fn waf_sentence_is_not_an_error_code() {
        assert_eq!(
            OAuthErrorCode::parse("Request blocked by security policy."),
            None
        );
        assert_eq!(
            OAuthErrorCode::parse("invalid_grant"),
            Some(OAuthErrorCode::InvalidGrant)
        );
        assert!(!OAuthErrorCode::InvalidClient.is_about_the_grant());
        assert!(OAuthErrorCode::InvalidGrant.is_about_the_grant());
    }

    #[test]
    fn descriptions_are_sanitised_and_never_echo_secrets() {
        let code = AuthorizationCode::new("CANARYCODE123".into());
        let verifier = CodeVerifier::new("v".repeat(43));
        let secrets = RequestSecrets::code(&code, &verifier);
        assert_eq!(
            sanitize_description(Some("bad \"code\"\n\u{7}é ok"), &secrets).as_deref(),
            Some("bad code ok")
        );
        assert_eq!(
            sanitize_description(Some("code CANARYCODE123 used"), &secrets),
            None
        );
        let long = "x".repeat(2000);
        assert_eq!(
            sanitize_description(Some(&long), &secrets).map(|d| d.len()),
            Some(MAX_DESCRIPTION_LEN)
        );
    }
}
