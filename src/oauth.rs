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

/// The secrets of one request that a provider's text must never carry back to the caller: the
/// request's own code and verifier, or token, and this server's client secrets (the current one
/// and, during a rotation, the next one), so a provider description that echoes one is dropped.
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

    /// Adds client secrets (the current one, the next one during a rotation).
    pub fn with_client_secrets(mut self, secrets: impl IntoIterator<Item = &'a str>) -> Self {
        self.values.extend(secrets);
        self
    }
}

/// Maximum length of a description passed through to the caller.
pub const MAX_DESCRIPTION_LEN: usize = 512;

/// Secrets shorter than this are not looked for: they would match ordinary words by chance, and
/// every real code, verifier, token and client secret is far longer.
const MIN_SECRET_LEN: usize = 4;

/// The RFC 6749 §5.2 `error_description` character set: printable ASCII without `"` and `\`.
fn is_description_char(c: char) -> bool {
    matches!(c, ' '..='~') && c != '"' && c != '\\'
}

/// Keeps a provider's `error_description` only if it is safe to show: the RFC 6749 §5.2 character
/// set (printable ASCII without `"` and `\`), at most 512 characters, and not containing any of the
/// request's secrets ([`RequestSecrets`]).
///
/// The secrets are looked for in the whole text, before it is cut: a secret standing across the
/// 512th character would otherwise be missed and its first characters shown. They are looked for
/// both in the text as received and in the text as it would be shown (disallowed characters
/// removed), so neither a secret broken up by control characters nor one holding a `"` gets
/// through. Only then is the text cut; nothing is derived from it before the check.
pub fn sanitize_description(raw: Option<&str>, secrets: &RequestSecrets<'_>) -> Option<String> {
    let raw = raw?;
    let shown: String = raw.chars().filter(|c| is_description_char(*c)).collect();
    if secrets
        .values
        .iter()
        .any(|secret| carries_secret(raw, &shown, secret))
    {
        return None;
    }
    // Only ASCII is left, so a byte index is a character index.
    let cut = shown[..shown.len().min(MAX_DESCRIPTION_LEN)].trim();
    if cut.is_empty() {
        return None;
    }
    Some(cut.to_owned())
}

/// True when `secret` appears in the text as received (`raw`) or as it would be shown (`shown`).
fn carries_secret(raw: &str, shown: &str, secret: &str) -> bool {
    if secret.len() >= MIN_SECRET_LEN && raw.contains(secret) {
        return true;
    }
    let visible: String = secret.chars().filter(|c| is_description_char(*c)).collect();
    visible.len() >= MIN_SECRET_LEN && shown.contains(visible.as_str())
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

    const CLIENT: &str = "test-client-secret-CANARY";
    const NEXT: &str = "next-client-secret-CANARY";
    const TOKEN: &str = "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI";

    /// The description with `secret` placed so that it starts `at` characters in, in 1,000
    /// characters of otherwise harmless text.
    fn placed(secret: &str, at: usize) -> String {
        let mut text = "A".repeat(at);
        text.push_str(secret);
        text.push_str(&"B".repeat(1000usize.saturating_sub(text.len())));
        text
    }

    #[test]
    fn a_secret_anywhere_in_the_whole_text_drops_the_description() {
        let token = RefreshToken::new(TOKEN.into());
        let secrets = RequestSecrets::refresh(&token).with_client_secrets([CLIENT, NEXT]);
        for secret in [CLIENT, NEXT, TOKEN] {
            // At the start, in the middle of the kept part, straddling the cut (the first
            // characters before it, the rest after), wholly after the cut, at the very end.
            for at in [
                0,
                200,
                MAX_DESCRIPTION_LEN - 12,
                MAX_DESCRIPTION_LEN - 1,
                MAX_DESCRIPTION_LEN,
                600,
                1000 - secret.len(),
            ] {
                assert_eq!(
                    sanitize_description(Some(&placed(secret, at)), &secrets),
                    None,
                    "{secret} at {at}"
                );
            }
        }
        // The same text without a secret is kept, cut to 512.
        assert_eq!(
            sanitize_description(Some(&placed("harmless", 500)), &secrets).map(|d| d.len()),
            Some(MAX_DESCRIPTION_LEN)
        );
    }

    #[test]
    fn the_issue_12_body_no_longer_shows_the_secrets_first_characters() {
        let secrets = RequestSecrets::default().with_client_secrets([CLIENT]);
        let description = format!("{}{CLIENT}", "A".repeat(500));
        assert_eq!(sanitize_description(Some(&description), &secrets), None);
    }

    #[test]
    fn a_secret_broken_up_by_characters_that_are_removed_is_still_found() {
        let code = AuthorizationCode::new("CANARYCODE123".into());
        let verifier = CodeVerifier::new("v".repeat(43));
        let secrets = RequestSecrets::code(&code, &verifier).with_client_secrets([CLIENT]);
        for text in [
            "code CANARY\nCODE123 used",
            "code CANA\u{7}RY\"CODE\\123 used",
            "secret test-client-\u{202e}secret-CANARY",
            "secret test-client-s\u{e9}ecret-CANARY",
        ] {
            assert_eq!(sanitize_description(Some(text), &secrets), None, "{text:?}");
        }
        // A secret holding characters the description may not show is found as shown, too.
        let quoted = RequestSecrets::default().with_client_secrets(["se\"cr\\et-CANARY"]);
        for text in ["x se\"cr\\et-CANARY y", "x secret-CANARY y"] {
            assert_eq!(sanitize_description(Some(text), &quoted), None, "{text:?}");
        }
    }

    #[test]
    fn short_values_and_harmless_text_are_not_mistaken_for_secrets() {
        let secrets = RequestSecrets::default().with_client_secrets(["abc"]);
        assert_eq!(
            sanitize_description(Some("abc is fine"), &secrets).as_deref(),
            Some("abc is fine")
        );
        assert_eq!(sanitize_description(Some(" \n\t "), &secrets), None);
        assert_eq!(sanitize_description(None, &secrets), None);
    }
}
