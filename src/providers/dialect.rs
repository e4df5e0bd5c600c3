//! Providers' error answers that are not RFC 6749 §5.2 JSON, read into its codes.
//!
//! The standard shape (`{"error": "invalid_grant", "error_description": "…"}`) needs no parser:
//! the upstream classification reads it for every provider. A dialect only adds the shapes a
//! provider answers *instead*; it runs when the body has no OAuth `error` code.

use crate::oauth::OAuthErrorCode;
use serde_json::{Map, Value};

/// How a provider writes its error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 6749 §5.2 only (Kick's fosite, Google, any standard server).
    Rfc6749,
    /// Twitch: `{"status":400,"message":"Invalid authorization code"}`, sometimes with an
    /// `"error":"Bad Request"` that is not an OAuth code.
    Twitch,
}

/// A non-standard error answer in RFC 6749 terms.
#[derive(Debug, PartialEq, Eq)]
pub struct DialectError<'a> {
    /// The code it means.
    pub code: OAuthErrorCode,
    /// The provider's own text, unsanitised: the caller sanitises it before showing it.
    pub description: Option<&'a str>,
}

impl Dialect {
    /// Reads a non-2xx, non-5xx JSON answer without an OAuth `error` code. `None` when the body
    /// is not this dialect's shape: the answer is then unexpected.
    pub fn read_error<'a>(
        self,
        status: u16,
        body: &'a Map<String, Value>,
    ) -> Option<DialectError<'a>> {
        match self {
            Self::Rfc6749 => None,
            Self::Twitch => twitch(status, body),
        }
    }
}

/// Twitch, normalised to the contract: a message about the code or token is `invalid_grant`,
/// about our client `invalid_client` (the caller sees a 502), any other 400 `invalid_request`.
fn twitch(status: u16, obj: &Map<String, Value>) -> Option<DialectError<'_>> {
    let body_status = obj.get("status")?.as_u64()?;
    let message = obj.get("message")?.as_str()?;
    if !(400..500).contains(&body_status) || !(400..500).contains(&status) {
        return None;
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("client") {
        // "invalid client", "invalid client secret", "missing client id": our registration.
        return Some(DialectError {
            code: OAuthErrorCode::InvalidClient,
            description: None,
        });
    }
    let code = if ["authorization code", "refresh token", "invalid token"]
        .iter()
        .any(|about| lower.contains(about))
    {
        OAuthErrorCode::InvalidGrant
    } else if status == 400 {
        OAuthErrorCode::InvalidRequest
    } else {
        return None;
    };
    Some(DialectError {
        code,
        description: Some(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(dialect: Dialect, status: u16, body: Value) -> Option<(String, Option<String>)> {
        let Value::Object(obj) = body else {
            return None;
        };
        dialect
            .read_error(status, &obj)
            .map(|e| (e.code.as_str().to_owned(), e.description.map(str::to_owned)))
    }

    #[test]
    fn twitch_messages_become_oauth_codes() {
        let twitch = |status: u16, message: &str| {
            read(
                Dialect::Twitch,
                status,
                json!({"status": status, "message": message}),
            )
        };
        assert_eq!(
            twitch(400, "Invalid authorization code"),
            Some((
                "invalid_grant".to_owned(),
                Some("Invalid authorization code".to_owned())
            ))
        );
        assert_eq!(
            twitch(400, "missing code verifier").map(|e| e.0),
            Some("invalid_request".to_owned())
        );
        assert_eq!(
            twitch(403, "invalid client secret"),
            Some(("invalid_client".to_owned(), None))
        );
        assert_eq!(twitch(403, "something else"), None);
    }

    #[test]
    fn the_standard_dialect_adds_no_shape() {
        assert_eq!(
            read(
                Dialect::Rfc6749,
                400,
                json!({"status": 400, "message": "Invalid authorization code"})
            ),
            None
        );
    }
}
