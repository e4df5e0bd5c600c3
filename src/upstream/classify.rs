//! Sorting a provider's answer into the contract's table: pure functions of the status and the
//! body, unit-testable without a network. What each outcome then means is [`UpstreamError::class`].

use super::error::UpstreamError;
use super::Answer;
use crate::oauth::{
    sanitize_description, OAuthErrorCode, RequestSecrets, TokenResponse, TokenResponseError,
};
use crate::providers::Dialect;
use hyper::StatusCode;
use serde_json::Value;

/// Sorts a token endpoint's answer into the contract's table. `dialect` reads the provider's
/// non-standard error shapes; `secrets` are the values no text passed on may contain.
pub fn classify(
    status: StatusCode,
    body: &[u8],
    dialect: Dialect,
    secrets: &RequestSecrets<'_>,
) -> Result<Answer<TokenResponse>, UpstreamError> {
    if status.is_redirection() {
        return Err(UpstreamError::Redirect(status));
    }
    if status.is_success() {
        return match TokenResponse::from_provider_body(body) {
            Ok(value) => Ok(Answer { status, value }),
            Err(TokenResponseError::NotJson) => Err(UpstreamError::NotJson),
            Err(TokenResponseError::NoAccessToken) => Err(UpstreamError::NoAccessToken),
        };
    }
    let json: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let oauth_error = json.as_ref().and_then(|obj| match obj.get("error") {
        Some(Value::String(code)) => Some((
            OAuthErrorCode::parse(code),
            obj.get("error_description").and_then(Value::as_str),
        )),
        _ => None,
    });
    let has_oauth_code = matches!(oauth_error, Some((Some(_), _)));
    if !has_oauth_code && !status.is_server_error() {
        if let Some(error) = json
            .as_ref()
            .and_then(|obj| dialect.read_error(status.as_u16(), obj))
        {
            return Err(if error.code.is_about_the_grant() {
                UpstreamError::Grant {
                    description: sanitize_description(error.description, secrets),
                    code: error.code,
                    status,
                }
            } else {
                UpstreamError::Refused {
                    code: error.code,
                    status,
                }
            });
        }
    }
    match oauth_error {
        // RFC 6749 §5.2: OAuth errors come as 400 (401 for client authentication).
        // A "code" that contains one of the request's secrets is not passed on, nor logged.
        Some((Some(code), _))
            if secrets
                .values
                .iter()
                .any(|secret| secret.len() >= 4 && code.as_str().contains(secret)) =>
        {
            Err(UpstreamError::Unexpected(status))
        }
        Some((Some(code), description)) if matches!(status.as_u16(), 400 | 401) => {
            if code.is_about_the_grant() {
                Err(UpstreamError::Grant {
                    description: sanitize_description(description, secrets),
                    code,
                    status,
                })
            } else {
                Err(UpstreamError::Refused { code, status })
            }
        }
        Some(_) => {
            if status.is_server_error() {
                Err(UpstreamError::ServerError(status))
            } else {
                Err(UpstreamError::Blocked(status))
            }
        }
        None if status.is_server_error() => Err(UpstreamError::ServerError(status)),
        None if looks_like_html(body) => Err(UpstreamError::Html(status)),
        None => Err(UpstreamError::Unexpected(status)),
    }
}

/// Sorts a revocation answer: any 2xx is success (Kick answers `OK`, RFC 7009 an empty body).
pub fn classify_revoke(
    status: StatusCode,
    body: &[u8],
    dialect: Dialect,
    secrets: &RequestSecrets<'_>,
) -> Result<StatusCode, UpstreamError> {
    if status.is_success() {
        return Ok(status);
    }
    match classify(status, body, dialect, secrets) {
        Err(UpstreamError::Grant { code, .. })
            if matches!(code.as_str(), "invalid_grant" | "invalid_token") =>
        {
            Ok(status)
        }
        Err(other) => Err(other),
        Ok(_) => Err(UpstreamError::Unexpected(status)),
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: u16, body: &str) -> Result<Answer<TokenResponse>, UpstreamError> {
        in_dialect(Dialect::Twitch, status, body)
    }

    fn in_dialect(
        dialect: Dialect,
        status: u16,
        body: &str,
    ) -> Result<Answer<TokenResponse>, UpstreamError> {
        let secrets = RequestSecrets::default();
        classify(
            StatusCode::from_u16(status).expect("status"),
            body.as_bytes(),
            dialect,
            &secrets,
        )
    }

    #[test]
    fn a_provider_code_that_echoes_a_request_secret_is_not_passed_on() {
        let secrets = RequestSecrets {
            values: vec!["SECRETREFRESHTOKEN"],
        };
        let answer = classify(
            StatusCode::BAD_REQUEST,
            br#"{"error":"xSECRETREFRESHTOKENx"}"#,
            Dialect::Rfc6749,
            &secrets,
        );
        assert!(matches!(answer, Err(UpstreamError::Unexpected(_))));
    }

    #[test]
    fn revocation_treats_unknown_tokens_as_revoked() {
        let secrets = RequestSecrets::default();
        let revoke = |status: u16, body: &str| {
            classify_revoke(
                StatusCode::from_u16(status).expect("status"),
                body.as_bytes(),
                Dialect::Rfc6749,
                &secrets,
            )
        };
        assert!(revoke(200, "OK").is_ok());
        assert!(revoke(400, r#"{"error":"invalid_grant"}"#).is_ok());
        assert!(matches!(
            revoke(400, r#"{"error":"unsupported_token_type"}"#),
            Err(UpstreamError::Grant { .. })
        ));
        assert!(matches!(
            revoke(401, r#"{"error":"invalid_client"}"#),
            Err(UpstreamError::Refused { .. })
        ));
        assert!(matches!(
            revoke(503, ""),
            Err(UpstreamError::ServerError(_))
        ));
    }

    #[test]
    fn twitch_error_shapes_are_normalised() {
        let grant = |status: u16, body: &str| match run(status, body) {
            Err(UpstreamError::Grant {
                code, description, ..
            }) => Some((code.as_str().to_owned(), description)),
            _ => None,
        };
        assert_eq!(
            grant(
                400,
                r#"{"status":400,"message":"Invalid authorization code"}"#
            ),
            Some((
                "invalid_grant".to_owned(),
                Some("Invalid authorization code".to_owned())
            ))
        );
        assert_eq!(
            grant(400, r#"{"status":400,"message":"Invalid refresh token"}"#).map(|g| g.0),
            Some("invalid_grant".to_owned())
        );
        assert_eq!(
            grant(400, r#"{"status":400,"message":"missing code verifier"}"#).map(|g| g.0),
            Some("invalid_request".to_owned())
        );
        for (status, body) in [
            (403, r#"{"status":403,"message":"invalid client secret"}"#),
            (401, r#"{"status":401,"message":"invalid client"}"#),
            (400, r#"{"status":400,"message":"invalid client"}"#),
        ] {
            assert!(matches!(
                run(status, body),
                Err(UpstreamError::Refused {
                    code: OAuthErrorCode::InvalidClient,
                    ..
                })
            ));
        }
        // A 5xx stays a provider failure whatever its body says.
        assert!(matches!(
            run(
                500,
                r#"{"status":500,"message":"Invalid authorization code"}"#
            ),
            Err(UpstreamError::ServerError(_))
        ));
        // Only Twitch speaks Twitch: the same body from a standard provider is unexpected.
        assert!(matches!(
            in_dialect(
                Dialect::Rfc6749,
                400,
                r#"{"status":400,"message":"Invalid authorization code"}"#
            ),
            Err(UpstreamError::Unexpected(_))
        ));
        // Kick's WAF body is unaffected.
        assert!(matches!(
            run(
                403,
                r#"{"error":"Request blocked by security policy.","reference":"x"}"#
            ),
            Err(UpstreamError::Blocked(_))
        ));
    }

    #[test]
    fn every_upstream_shape_lands_in_its_row() {
        assert!(run(200, r#"{"access_token":"a"}"#).is_ok());
        assert!(matches!(
            run(400, r#"{"error":"invalid_grant","error_description":"expired"}"#),
            Err(UpstreamError::Grant { code: OAuthErrorCode::InvalidGrant, description: Some(d), .. }) if d == "expired"
        ));
        assert!(matches!(
            run(401, r#"{"error":"invalid_client"}"#),
            Err(UpstreamError::Refused { .. })
        ));
        assert!(matches!(
            run(
                403,
                r#"{"error":"Request blocked by security policy.","reference":"x"}"#
            ),
            Err(UpstreamError::Blocked(_))
        ));
        assert!(matches!(
            run(403, "<!DOCTYPE html><title>Just a moment...</title>"),
            Err(UpstreamError::Html(_))
        ));
        assert!(matches!(run(400, ""), Err(UpstreamError::Unexpected(_))));
        assert!(matches!(
            run(503, r#"{"error":"invalid_grant"}"#),
            Err(UpstreamError::ServerError(_))
        ));
        assert!(matches!(run(302, ""), Err(UpstreamError::Redirect(_))));
        assert!(matches!(run(200, "OK"), Err(UpstreamError::NotJson)));
        assert!(matches!(run(200, "{}"), Err(UpstreamError::NoAccessToken)));
        assert!(matches!(
            run(400, r#"{"error":"server_error"}"#),
            Err(UpstreamError::Refused { .. })
        ));
    }
}
