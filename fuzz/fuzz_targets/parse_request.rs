//! `parse_request`: everything a caller controls about a request body (its `Content-Type` and its
//! bytes), through the same functions the handlers use, without the network.
//!
//! Input layout: the first byte selects the `Content-Type` (its value modulo 16: 0 to 11 pick from
//! a fixed list, 12 to 15 take the content type from the input itself, the bytes up to the first
//! `\n`, so the media-type parser is fuzzed too); the rest is the body.
//!
//! Checked on every input (a failed check is a crash):
//! - nothing panics, whatever the bytes;
//! - `decode_body` fails only with 413 (and only for bodies over 16 KiB, which it always refuses),
//!   415 or 400, always `invalid_request`;
//! - the field rules fail only with 400 `invalid_request`;
//! - an accepted `code_verifier` satisfies `is_valid_verifier` (43..=128 of `[A-Za-z0-9-._~]`);
//! - an accepted `redirect_uri` is byte-equal to an allowlist entry;
//! - an accepted `code`, `refresh_token` or `token` is 1..=4096 bytes of visible ASCII;
//! - an accepted `token_type_hint` is absent, empty, `access_token` or `refresh_token`;
//! - `grant_type` (read at `/token`): absent, empty or `authorization_code` is the code exchange,
//!   `refresh_token` the refresh, any other string 400 `unsupported_grant_type`, anything else
//!   (sent twice, not a string) 400 `invalid_request`;
//! - differential: whenever a reference decoder (`serde_json::Value` for JSON,
//!   `url::form_urlencoded` for forms) also reads the body, every accepted value is exactly the
//!   value that decoder finds under the same name, present once (no field is invented, merged,
//!   normalised or taken from a nested object).

#![no_main]

use kick_oauth_proxy::api::extract::{decode_body, MAX_BODY_BYTES, MAX_CREDENTIAL_LEN};
use kick_oauth_proxy::api::input::{
    is_valid_verifier, CodeExchange, Refresh, Revocation, TokenGrantType, TokenTypeHint,
};
use libfuzzer_sys::fuzz_target;

/// The allowlist the field rules compare against: the default config's two entries plus one that
/// differs from the second by a single byte's case, so "equal ignoring case" would be caught.
const ALLOWED: [&str; 3] = [
    "battles-record://oauth/callback",
    "http://localhost:1420/auth/callback",
    "http://localhost:1420/auth/callbacK",
];

/// Content types a caller might send; index = first input byte modulo 16.
const CONTENT_TYPES: [Option<&str>; 12] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    Some("APPLICATION/JSON"),
    Some("application/json;charset=\"utf-8\""),
    Some("application/json; charset=latin1"),
    Some("text/plain"),
    Some(""),
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match CONTENT_TYPES.get(usize::from(selector % 16)) {
        Some(fixed) => (*fixed, rest),
        None => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let body = rest.get(end + 1..).unwrap_or_default();
            (std::str::from_utf8(&rest[..end]).ok(), body)
        }
    };
    check(content_type, body);
});

fn check(content_type: Option<&str>, body: &[u8]) {
    let fields = match decode_body(content_type, body) {
        Ok(fields) => fields,
        Err(error) => {
            let status = error.status().as_u16();
            assert!(
                matches!(status, 400 | 413 | 415),
                "decode_body failed with {status}"
            );
            assert_eq!(error.code(), "invalid_request");
            assert_eq!(
                status == 413,
                body.len() > MAX_BODY_BYTES,
                "413 iff over the limit"
            );
            return;
        }
    };
    assert!(
        body.len() <= MAX_BODY_BYTES,
        "a body over the limit was decoded"
    );
    let reference = Reference::of(content_type, body);
    let allowed: Vec<String> = ALLOWED.iter().map(|s| (*s).to_owned()).collect();

    match TokenGrantType::from_fields(&fields) {
        Ok(grant) => {
            let expected = match grant {
                TokenGrantType::AuthorizationCode => &[None, Some(""), Some("authorization_code")][..],
                TokenGrantType::RefreshToken => &[Some("refresh_token")][..],
            };
            reference.agrees_with_one_of("grant_type", expected);
        }
        Err(error) => {
            assert_eq!(error.status().as_u16(), 400, "grant_type failed with another status");
            assert!(
                matches!(error.code(), "invalid_request" | "unsupported_grant_type"),
                "grant_type failed with {}",
                error.code()
            );
            if error.code() == "unsupported_grant_type" {
                reference.is_a_string_other_than(
                    "grant_type",
                    &["", "authorization_code", "refresh_token"],
                );
            }
        }
    }

    match CodeExchange::from_fields(&fields, &allowed) {
        Ok(exchange) => {
            assert_credential(exchange.code.secret());
            assert!(
                is_valid_verifier(exchange.code_verifier.secret()),
                "accepted an invalid verifier"
            );
            assert!(
                ALLOWED
                    .iter()
                    .any(|a| a.as_bytes() == exchange.redirect_uri.as_bytes()),
                "accepted a redirect_uri that is not an allowlist entry"
            );
            reference.agrees("code", exchange.code.secret());
            reference.agrees("code_verifier", exchange.code_verifier.secret());
            reference.agrees("redirect_uri", &exchange.redirect_uri);
        }
        Err(error) => assert_invalid_request(&error),
    }

    match Refresh::from_fields(&fields) {
        Ok(refresh) => {
            assert_credential(refresh.refresh_token.secret());
            reference.agrees("refresh_token", refresh.refresh_token.secret());
        }
        Err(error) => assert_invalid_request(&error),
    }

    match Revocation::from_fields(&fields) {
        Ok(revocation) => {
            assert_credential(revocation.token.secret());
            reference.agrees("token", revocation.token.secret());
            if let Some(hint) = revocation.token_type_hint {
                assert!(matches!(
                    hint,
                    TokenTypeHint::AccessToken | TokenTypeHint::RefreshToken
                ));
                reference.agrees("token_type_hint", hint.as_str());
            }
        }
        Err(error) => assert_invalid_request(&error),
    }
}

/// A code or token: 1..=4096 bytes of visible ASCII (no space, no control, no non-ASCII).
fn assert_credential(value: &str) {
    assert!(!value.is_empty(), "accepted an empty credential");
    assert!(
        value.len() <= MAX_CREDENTIAL_LEN,
        "accepted an overlong credential"
    );
    assert!(
        value.bytes().all(|b| b.is_ascii_graphic()),
        "accepted a credential that is not visible ASCII"
    );
}

fn assert_invalid_request(error: &kick_oauth_proxy::reply::ApiError) {
    assert_eq!(
        error.status().as_u16(),
        400,
        "a field rule failed with another status"
    );
    assert_eq!(error.code(), "invalid_request");
}

/// The body as an independent decoder reads it, when it can.
enum Reference {
    /// `serde_json::Value` read a top-level object (keeps the last of duplicate keys).
    Json(serde_json::Map<String, serde_json::Value>),
    /// Every form pair, in order, duplicates kept.
    Form(Vec<(String, String)>),
    /// The reference decoder refused the body (for example nesting over serde_json's recursion
    /// limit, which the proxy's iterative skipping does not have); nothing to compare.
    Unavailable,
}

impl Reference {
    fn of(content_type: Option<&str>, body: &[u8]) -> Self {
        let essence = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|e| e.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/json") => match serde_json::from_slice(body) {
                Ok(serde_json::Value::Object(map)) => Self::Json(map),
                _ => Self::Unavailable,
            },
            Some("application/x-www-form-urlencoded") => {
                Self::Form(url::form_urlencoded::parse(body).into_owned().collect())
            }
            _ => Self::Unavailable,
        }
    }

    /// The value of `name` the reference decoder read: `Some(None)` when absent, `Some(Some(v))`
    /// for one string, `None` when the body cannot be compared (no reference, a JSON value that
    /// is not a string, a form name sent more than once).
    fn single(&self, name: &str) -> Option<Option<&str>> {
        match self {
            Self::Json(map) => match map.get(name) {
                None => Some(None),
                Some(serde_json::Value::String(value)) => Some(Some(value)),
                Some(_) => None,
            },
            Self::Form(pairs) => {
                let mut found = pairs.iter().filter(|(k, _)| k == name);
                match (found.next(), found.next()) {
                    (None, _) => Some(None),
                    (Some((_, value)), None) => Some(Some(value)),
                    _ => None,
                }
            }
            Self::Unavailable => None,
        }
    }

    /// An accepted `name` (absent or a string) is one of `expected` in the reference's reading.
    fn agrees_with_one_of(&self, name: &str, expected: &[Option<&str>]) {
        if let Some(value) = self.single(name) {
            assert!(
                expected.contains(&value),
                "accepted `{name}` as {expected:?}, the body has {value:?}"
            );
        }
    }

    /// A `name` refused as unsupported is, in the reference's reading, one string not in `known`.
    fn is_a_string_other_than(&self, name: &str, known: &[&str]) {
        if let Self::Unavailable = self {
            return;
        }
        match self.single(name) {
            Some(Some(value)) => assert!(
                !known.contains(&value),
                "refused `{name}` = {value:?} as unsupported"
            ),
            other => panic!("refused `{name}` as unsupported, the body has {other:?}"),
        }
    }

    /// The accepted `value` of `name` is what the reference decoder read, and (for forms) the
    /// name appears exactly once.
    fn agrees(&self, name: &str, value: &str) {
        match self {
            Self::Json(map) => assert_eq!(
                map.get(name).and_then(|v| v.as_str()),
                Some(value),
                "accepted `{name}` differs from the JSON body's"
            ),
            Self::Form(pairs) => {
                let found: Vec<&str> = pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                assert_eq!(found, [value], "accepted `{name}` differs from the form's");
            }
            Self::Unavailable => {}
        }
    }
}
