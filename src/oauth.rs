//! OAuth 2.0 wire types: the provider's error codes (RFC 6749 §5.2) and the token response
//! (RFC 6749 §5.1), normalised to the proxy's contract.
//!
//! The vocabulary the desktop client shares ([`OAuthErrorCode`], [`TokenTypeHint`], the RFC 7636
//! verifier rule) is defined once in the `oauth-types` crate and re-exported here; what only the
//! server needs (sanitising a provider's description, normalising its token response) is below.

use crate::secret::{AuthorizationCode, CodeVerifier, RefreshToken};
pub use oauth_types::is_valid_verifier;
pub use oauth_types::{OAuthErrorCode, TokenTypeHint};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

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
/// Held as the JSON the caller gets, written once while the provider's body is read: the known
/// fields first, in [`KNOWN_FIELDS`] order, then the others by name (as a JSON object map orders
/// them), a name sent twice counting once with its last value. Strings are borrowed from the
/// provider's body while it is read, not copied into a tree of values.
///
/// Its `Debug` shows field names only: every value may be a credential.
pub struct TokenResponse {
    json: Vec<u8>,
    expires_in: Option<u64>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Map<String, Value> = serde_json::from_slice(&self.json).unwrap_or_default();
        f.debug_struct("TokenResponse")
            .field("fields", &fields.keys().collect::<Vec<_>>())
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

/// The order fields are written in; the rest follow, ordered by name.
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
        // Checked as UTF-8 once, as a whole, then parsed as text: `from_slice` checks each
        // string on its own, which costs more than the one pass (JSON is UTF-8 throughout,
        // RFC 8259 §8.1, and every field is read, so nothing it accepted is refused here).
        let text = std::str::from_utf8(body).map_err(|_| TokenResponseError::NotJson)?;
        let Provided { known, mut others } =
            serde_json::from_str(text).map_err(|_| TokenResponseError::NotJson)?;
        let [access_token, token_type, expires_in, refresh_token, scope] = known;
        let access_token = match access_token {
            Some(Field::Str(token)) if !token.is_empty() => token,
            _ => return Err(TokenResponseError::NoAccessToken),
        };
        let mut out = Json::with_capacity(body.len() + 32);
        out.string_field("access_token", &access_token);
        match &token_type {
            Some(Field::Str(t)) if !t.eq_ignore_ascii_case("bearer") => {
                out.string_field("token_type", t);
            }
            _ => out.string_field("token_type", "Bearer"),
        }
        let expires_in = expires_in.and_then(|value| {
            let secs = match &value {
                Field::Str(s) => s.trim().parse::<u64>().ok(),
                Field::Other(v) => normalize_expires_in(v),
            };
            if secs.is_none() {
                tracing::warn!(
                    "provider sent an expires_in that is not a non-negative integer; omitted"
                );
            }
            secs
        });
        if let Some(secs) = expires_in {
            out.key("expires_in");
            out.value(&secs);
        }
        match refresh_token {
            None | Some(Field::Other(Value::Null)) => {}
            Some(value) => out.field("refresh_token", &value),
        }
        match scope {
            None => {}
            Some(Field::Str(s)) => out.string_field("scope", &s),
            Some(Field::Other(Value::Array(items))) => {
                let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                out.string_field("scope", &joined.join(" "));
            }
            Some(Field::Other(_)) => {
                tracing::warn!("provider sent a scope that is neither a string nor a list; omitted")
            }
        }
        // As a JSON object map keeps them: ordered by name, the last of a name sent twice.
        others.reverse();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        others.dedup_by(|later, first| later.0 == first.0);
        for (name, value) in &others {
            out.field(name, value);
        }
        Ok(Self {
            json: out.finish(),
            expires_in,
        })
    }

    /// The normalised `expires_in`, if any.
    pub fn expires_in(&self) -> Option<u64> {
        self.expires_in
    }

    /// The response body, JSON.
    pub fn to_json(&self) -> Vec<u8> {
        self.json.clone()
    }

    /// The response body, JSON, without a copy.
    pub fn into_json(self) -> Vec<u8> {
        self.json
    }
}

/// A provider's token response as read: the known fields by position in [`KNOWN_FIELDS`], the
/// others in the order sent.
struct Provided<'a> {
    known: [Option<Field<'a>>; 5],
    others: Vec<(Cow<'a, str>, Field<'a>)>,
}

/// One field's value: a string (borrowed from the body unless it held an escape), or any other
/// JSON value.
enum Field<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Provided<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Provided<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Provided<'de>, A::Error> {
                let mut provided = Provided {
                    known: Default::default(),
                    others: Vec::new(),
                };
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    let value = map.next_value::<Field<'de>>()?;
                    match KNOWN_FIELDS.iter().position(|known| *known == name) {
                        Some(at) => provided.known[at] = Some(value),
                        None => provided.others.push((name, value)),
                    }
                }
                Ok(provided)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// A field name, borrowed from the body unless it held an escape.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Field::Other)
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// A JSON object written field by field, as `serde_json::to_vec` writes a map.
struct Json(Vec<u8>);

impl Json {
    fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self(out)
    }

    fn key(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.string(name);
        self.0.push(b':');
    }

    fn string(&mut self, value: &str) {
        self.value(value);
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        // Writing into a Vec cannot fail, nor can serialising a string, a number or a `Value`.
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn string_field(&mut self, name: &str, value: &str) {
        self.key(name);
        self.string(value);
    }

    fn field(&mut self, name: &str, value: &Field<'_>) {
        self.key(name);
        match value {
            Field::Str(s) => self.string(s),
            Field::Other(v) => self.value(v),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
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
    fn descriptions_are_sanitised_and_never_echo_secrets() {
        let code = AuthorizationCode::new("CANARYCODE123");
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
        let token = RefreshToken::new(TOKEN);
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
        let code = AuthorizationCode::new("CANARYCODE123");
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
