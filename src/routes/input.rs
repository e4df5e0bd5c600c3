//! Reading and checking what a caller sends, before anything reaches the provider.
//!
//! Both encodings OAuth clients use are accepted (`application/json`, as Battles Record sends, and
//! `application/x-www-form-urlencoded`, as standard OAuth libraries send) and reduced to the same
//! list of fields, so the rules below are written once. Unknown fields (including a caller's
//! `client_id` or `client_secret`) are ignored and never forwarded. `grant_type` is read at
//! `/token` only, to pick the grant ([`TokenGrantType`]), and never forwarded either: the proxy
//! sends the grant type of what it does.

use crate::error::ApiError;
// The RFC 7636 verifier rule and RFC 7009 hint are shared with the client (`oauth-types`).
pub use crate::oauth::{is_valid_verifier, TokenTypeHint};
use crate::secret::{AnyToken, AuthorizationCode, CodeVerifier, RefreshToken};
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Largest request body read (contract: 16 KiB); larger ones get 413 without being read to the end.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest code or token accepted. Real ones are 30 to ~2,000 characters.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// The request's body fields in order; `None` for a JSON value that is not a string.
#[derive(Default)]
pub struct Fields(Vec<(String, Option<String>)>);

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values are codes, verifiers and tokens.
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Form,
}

/// Reads the body under the size limit and the body-read deadline, and splits it into fields.
pub async fn read_fields(request: Request, deadline: Duration) -> Result<Fields, ApiError> {
    // Two Content-Type headers are ambiguous (which one would a front end have judged?): refused.
    let mut content_types = request.headers().get_all(header::CONTENT_TYPE).iter();
    let content_type = content_types.next().and_then(|v| v.to_str().ok());
    if content_types.next().is_some() {
        return Err(ApiError::UnsupportedMediaType);
    }
    let encoding = encoding(content_type)?;
    if declared_length(request.headers()).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(deadline, body.collect()).await {
        Err(_) => return Err(ApiError::BodyTimeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::PayloadTooLarge)
        }
        Ok(Err(_)) => return Err(invalid("The request body could not be read.")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    decode(encoding, &bytes)
}

/// Decodes a complete body given its `Content-Type` (the fuzz target's entry point: everything a
/// caller controls, without the network).
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    decode(encoding(content_type)?, body)
}

fn decode(encoding: Encoding, bytes: &[u8]) -> Result<Fields, ApiError> {
    match encoding {
        // JSON is UTF-8 (RFC 8259 §8.1) throughout, ignored fields included: checked first, since
        // the parser only validates the strings it decodes.
        Encoding::Json => std::str::from_utf8(bytes)
            .map_err(|_| invalid("The request body is not valid UTF-8."))
            .and_then(|text| {
                serde_json::from_str::<Fields>(text)
                    .map_err(|_| invalid("The request body is not a valid JSON object."))
            }),
        Encoding::Form => Ok(Fields(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), Some(v.into_owned())))
                .collect(),
        )),
    }
}

fn invalid(text: &'static str) -> ApiError {
    ApiError::InvalidRequest(Cow::Borrowed(text))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `application/json` or `application/x-www-form-urlencoded`, optionally with a UTF-8 `charset`.
fn encoding(content_type: Option<&str>) -> Result<Encoding, ApiError> {
    let value = content_type.ok_or(ApiError::UnsupportedMediaType)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let encoding = if essence.eq_ignore_ascii_case("application/json") {
        Encoding::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Encoding::Form
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|c| charset.eq_ignore_ascii_case(c))
            {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
    }
    Ok(encoding)
}

impl Fields {
    /// The field's value if present once. Present twice is an error (RFC 6749 §3.2: parameters
    /// "MUST NOT be included more than once"); a JSON non-string is an error.
    fn optional(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is included more than once.").into(),
            ));
        }
        match first {
            None => Ok(None),
            Some((_, None)) => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter must be a string.").into(),
            )),
            Some((_, Some(v))) => Ok(Some(v)),
        }
    }

    /// The field's value; missing or empty is an error.
    fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.optional(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is empty.").into(),
            )),
            None => Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is missing.").into(),
            )),
        }
    }

    /// A code or token: visible ASCII only (RFC 6749 Appendix A.11 `VSCHAR` minus space), bounded.
    fn credential(&self, name: &'static str) -> Result<String, ApiError> {
        let value = self.required(name)?;
        if value.len() > MAX_CREDENTIAL_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::InvalidRequest(
                format!("The `{name}` parameter is malformed.").into(),
            ));
        }
        Ok(value.to_owned())
    }
}

/// The grant a `/token` request asks for, from its `grant_type` (RFC 6749 §4.1.3, §6). `/refresh`
/// and `/revoke` never read `grant_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenGrantType {
    /// Absent, empty or `authorization_code`: the code exchange. Battles Record sends no
    /// `grant_type`, and RFC 6749 §3.2 treats a parameter sent without a value as omitted.
    AuthorizationCode,
    /// `refresh_token`: exactly what `/refresh` does (RFC 6749 §6), as standard client libraries
    /// send it to the token endpoint.
    RefreshToken,
}

impl TokenGrantType {
    /// Reads `grant_type`. Any other string is `unsupported_grant_type` (RFC 6749 §5.2, the value
    /// compared exactly: `Refresh_Token` is another grant type); a `grant_type` sent twice or that
    /// is not a string is a malformed request, `invalid_request`.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        match fields.optional("grant_type")? {
            None | Some("" | "authorization_code") => Ok(Self::AuthorizationCode),
            Some("refresh_token") => Ok(Self::RefreshToken),
            Some(_) => Err(ApiError::UnsupportedGrantType),
        }
    }
}

/// `POST /api/v1/{provider}/token` input (RFC 6749 §4.1.3 with RFC 7636 §4.5).
#[derive(Debug)]
pub struct CodeExchange {
    /// The authorization code.
    pub code: AuthorizationCode,
    /// The PKCE verifier.
    pub code_verifier: CodeVerifier,
    /// The redirect URI, byte-for-byte one of the allowlist's entries.
    pub redirect_uri: String,
}

impl CodeExchange {
    /// Applies the contract's input rules; `allowed` is the provider's redirect allowlist.
    pub fn from_fields(fields: &Fields, allowed: &[String]) -> Result<Self, ApiError> {
        let code = fields.credential("code")?;
        let verifier = fields.required("code_verifier")?;
        if !is_valid_verifier(verifier) {
            return Err(invalid(
                "The `code_verifier` must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1).",
            ));
        }
        let redirect_uri = fields.required("redirect_uri")?;
        // Byte-for-byte: no parsing, no normalisation (a parser turns look-alikes into the real
        // thing; RFC 9700 §4.1.3 asks for exact string matching).
        // The one exception: a loopback entry with a wildcard port (RFC 8252 §7.3), opted into per
        // entry, matches the same text with the `*` replaced by a port number.
        if !allowed.iter().any(|a| redirect_matches(a, redirect_uri)) {
            return Err(invalid("The `redirect_uri` is not one this server allows."));
        }
        Ok(Self {
            code: AuthorizationCode::new(code),
            code_verifier: CodeVerifier::new(verifier.to_owned()),
            redirect_uri: redirect_uri.to_owned(),
        })
    }
}

/// One allowlist entry against a request's `redirect_uri`. Byte-for-byte, except for an entry such
/// as `http://127.0.0.1:*/callback` (validated at start-up: loopback, `*` only as the port), which
/// matches the identical text with the `*` replaced by 1 to 5 ASCII digits, no leading zero, value
/// 1..=65535. Such an entry never matches itself (a literal `*`).
pub fn redirect_matches(entry: &str, redirect_uri: &str) -> bool {
    if !crate::config::is_wildcard_port_entry(entry) {
        return entry.as_bytes() == redirect_uri.as_bytes();
    }
    let Some((prefix, suffix)) = entry.split_once('*') else {
        return false;
    };
    let Some(port) = redirect_uri
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
    else {
        return false;
    };
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
}

/// `POST /api/v1/{provider}/refresh` input (RFC 6749 §6).
#[derive(Debug)]
pub struct Refresh {
    /// The refresh token.
    pub refresh_token: RefreshToken,
}

impl Refresh {
    /// Applies the contract's input rules.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        Ok(Self {
            refresh_token: RefreshToken::new(fields.credential("refresh_token")?),
        })
    }
}

/// `POST /api/v1/{provider}/revoke` input (RFC 7009 §2.1).
#[derive(Debug)]
pub struct Revocation {
    /// The token to revoke.
    pub token: AnyToken,
    /// `access_token` or `refresh_token`, when the caller said.
    pub token_type_hint: Option<TokenTypeHint>,
}

impl Revocation {
    /// Applies the contract's input rules.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        let token = AnyToken::new(fields.credential("token")?);
        let token_type_hint = match fields.optional("token_type_hint")? {
            None | Some("") => None,
            Some("access_token") => Some(TokenTypeHint::AccessToken),
            Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
            Some(_) => {
                return Err(invalid(
                    "The `token_type_hint` must be access_token or refresh_token.",
                ))
            }
        };
        Ok(Self {
            token,
            token_type_hint,
        })
    }
}

// The request bodies as the OpenAPI document (`crate::openapi`) describes them. Documentation
// only: the handlers read [`Fields`] and apply the rules above, which these schemas restate (the
// tests in `tests/api/openapi.rs` and the schemathesis run keep the two in step).

/// `POST /api/v1/{provider}/token` body: a JSON object or a form, in one of two shapes chosen by
/// `grant_type` (RFC 6749 §4.1.3, §6): the code exchange (no `grant_type`, an empty one, or
/// `authorization_code`) or a refresh (`refresh_token`), which is exactly `POST /refresh`. Any
/// other `grant_type` is 400 `unsupported_grant_type`. Other fields (a `client_id` or
/// `client_secret` included) are ignored and never forwarded; a field sent twice is refused.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
pub enum TokenRequest {
    /// The code exchange.
    AuthorizationCode(AuthorizationCodeGrant),
    /// A refresh, as standard OAuth client libraries send it to the token endpoint.
    RefreshToken(RefreshTokenGrant),
}

/// The code exchange at `/token` (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5): what Battles Record
/// sends, without a `grant_type`.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "code": "NZQ4ZWE3OTCTMJC5ZS0ZNJQ5LWE2NZUTYMZMNDQZYTC5OGY3",
    "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "redirect_uri": "battles-record://oauth/callback"
})))]
pub struct AuthorizationCodeGrant {
    /// Optional: absent or empty (RFC 6749 §3.2: a parameter without a value counts as omitted)
    /// means `authorization_code` too.
    #[schema(required = false, nullable = false, inline)]
    pub grant_type: Option<AuthorizationCodeGrantType>,
    /// The authorization code from the provider's redirect: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub code: String,
    /// The PKCE verifier (RFC 7636 §4.1): 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
    #[schema(min_length = 43, max_length = 128, pattern = r"^[A-Za-z0-9._~-]+$")]
    pub code_verifier: String,
    /// Byte-for-byte one of the provider's `allowed_redirect_uris` (no normalisation); any other
    /// value is 400 `invalid_request`. Only an entry configured as a loopback wildcard port
    /// (`http://127.0.0.1:*/callback`, RFC 8252 §7.3) also matches that text with any port
    /// 1..=65535 in place of the `*`.
    #[schema(min_length = 1)]
    pub redirect_uri: String,
}

/// `grant_type` of the code exchange.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AuthorizationCodeGrantType {
    /// `authorization_code`.
    AuthorizationCode,
}

/// A refresh at `/token` (RFC 6749 §6): exactly `POST /refresh` (the same input rules; replay and
/// single-flight shared with the same refresh at `/refresh`), rate limited in the `/token` bucket.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "grant_type": "refresh_token",
    "refresh_token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI"
})))]
pub struct RefreshTokenGrant {
    /// `refresh_token`.
    #[schema(inline)]
    pub grant_type: RefreshTokenGrantType,
    /// The refresh token: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub refresh_token: String,
}

/// `grant_type` of a refresh.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RefreshTokenGrantType {
    /// `refresh_token`.
    RefreshToken,
}

/// `POST /api/v1/{provider}/refresh` body: a JSON object or a form. Other fields (a `grant_type`
/// included) are ignored.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({"refresh_token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI"})))]
pub struct RefreshRequest {
    /// The refresh token: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub refresh_token: String,
}

/// `POST /api/v1/{provider}/revoke` body (RFC 7009 §2.1): a JSON object or a form. Other fields
/// are ignored.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI",
    "token_type_hint": "refresh_token"
})))]
pub struct RevokeRequest {
    /// The access or refresh token to revoke: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub token: String,
    /// Which kind of token `token` is, when the caller knows.
    #[schema(required = false, nullable = false)]
    pub token_type_hint: Option<TokenTypeHint>,
}

/// A top-level JSON object read as ordered fields, keeping duplicates so they can be refused
/// (serde_json's maps keep only the last).
impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, FieldValue(value))) = map.next_entry::<String, FieldValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// A JSON value: a string, or anything else (consumed and remembered as "not a string").
struct FieldValue(Option<String>);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue(Some(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<FieldValue, E> {
                Ok(FieldValue(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<FieldValue, E> {
                Ok(FieldValue(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<FieldValue, E> {
                Ok(FieldValue(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<FieldValue, E> {
                Ok(FieldValue(None))
            }
            fn visit_unit<E>(self) -> Result<FieldValue, E> {
                Ok(FieldValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FieldValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FieldValue(None))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_wildcard_port_entry_matches_only_a_valid_port() {
        for entry in [
            "http://127.0.0.1:*/callback",
            "http://[::1]:*/callback",
            "http://localhost:*/callback",
        ] {
            let with = |port: &str| entry.replace('*', port);
            for port in ["1", "8080", "65535"] {
                assert!(redirect_matches(entry, &with(port)), "{entry} {port}");
            }
            for port in [
                "0", "65536", "01420", "", "*", "123456", "80a", "+80", " 80",
            ] {
                assert!(!redirect_matches(entry, &with(port)), "{entry} {port:?}");
            }
            for other in [
                with("8080/"),
                with("8080?x=1"),
                with("8080").replace("/callback", "/other"),
                with("8080").replace("http://", "https://"),
                format!("{}/", with("8080")),
                format!("{}?code=x", with("8080")),
            ] {
                assert!(!redirect_matches(entry, &other), "{other}");
            }
        }
        assert!(!redirect_matches(
            "http://127.0.0.1:*/callback",
            "http://127.0.0.2:8080/callback"
        ));
        assert!(redirect_matches(
            "http://localhost:1420/cb",
            "http://localhost:1420/cb"
        ));
        assert!(!redirect_matches(
            "http://localhost:1420/cb",
            "http://localhost:1421/cb"
        ));
    }

    use super::*;

    fn json(body: &str) -> Fields {
        serde_json::from_str(body).expect("object")
    }

    #[test]
    fn verifier_rules_follow_rfc_7636() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a-._~Z9".repeat(19)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(43))));
    }

    #[test]
    fn json_duplicates_and_non_strings_are_refused() {
        assert!(json(r#"{"refresh_token":"a","refresh_token":"b"}"#)
            .required("refresh_token")
            .is_err());
        assert!(json(r#"{"refresh_token":5}"#)
            .required("refresh_token")
            .is_err());
        assert!(json(r#"{"refresh_token":null}"#)
            .required("refresh_token")
            .is_err());
        assert_eq!(
            json(r#"{"x":[1,{"y":2}],"refresh_token":"ok"}"#)
                .required("refresh_token")
                .ok(),
            Some("ok")
        );
        assert!(serde_json::from_str::<Fields>("[]").is_err());
    }

    #[test]
    fn debug_shows_names_not_values() {
        let printed = format!("{:?}", json(r#"{"code":"CANARY"}"#));
        assert!(!printed.contains("CANARY"));
        assert!(printed.contains("code"));
    }
}
