//! OAuth errors the way ORY fosite (the library behind id.kick.com) words and serialises them.
//!
//! fosite's JSON is `{"error": <code>, "error_description": <description> + " " + <hint>}`, with
//! `"` replaced by `'` in the description; its redirect form carries the same two values plus
//! `state`. Descriptions and hints below are fosite's own text.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The RFC 6749 §4.1.2.1 / §5.2 error codes the emulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    UnsupportedResponseType,
    /// fosite's own code for a missing or short `state` (less than 8 characters).
    InvalidState,
    ServerError,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidState => "invalid_state",
            Self::ServerError => "server_error",
        }
    }

    /// fosite's `DescriptionField`.
    fn description(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
            Self::InvalidClient => "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).",
            Self::InvalidGrant => "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
            Self::UnsupportedGrantType => "The authorization grant type is not supported by the authorization server.",
            Self::UnsupportedResponseType => "The authorization server does not support obtaining a token using this method.",
            Self::InvalidState => "The state is missing or does not have enough characters and is therefore considered too weak.",
            Self::ServerError => "The authorization server encountered an unexpected condition that prevented it from fulfilling the request.",
        }
    }

    /// fosite's default `HintField` (only `invalid_request` has one).
    fn default_hint(self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest => Some("Make sure that the various parameters are correct, be aware of case sensitivity and trim your parameters. Make sure that the client you are using has exactly whitelisted the redirect_uri you specified."),
            _ => None,
        }
    }

    /// fosite's `CodeField`.
    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One OAuth error: a code, fosite's description and an optional hint that replaces the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    code: ErrorCode,
    hint: Option<Cow<'static, str>>,
    status: StatusCode,
}

impl OAuthError {
    pub(crate) fn new(code: ErrorCode) -> Self {
        Self {
            code,
            hint: code.default_hint().map(Cow::Borrowed),
            status: code.status(),
        }
    }

    /// fosite's `WithHint`: replaces the default hint.
    pub(crate) fn with_hint(mut self, hint: impl Into<Cow<'static, str>>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Overrides the status fosite would use.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn invalid_request(hint: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest).with_hint(hint)
    }

    pub(crate) fn invalid_grant() -> Self {
        Self::new(ErrorCode::InvalidGrant)
    }

    pub(crate) fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient)
    }

    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }

    /// fosite's `GetDescription`: description, a space and the hint; `"` becomes `'`.
    pub(crate) fn description(&self) -> String {
        let mut text = self.code.description().to_owned();
        if let Some(hint) = &self.hint {
            text.push(' ');
            text.push_str(hint);
        }
        text.replace('"', "'")
    }

    /// The `error`/`error_description` pairs for an error redirect (RFC 6749 §4.1.2.1).
    pub(crate) fn query_pairs(&self) -> [(&'static str, String); 2] {
        [
            ("error", self.code.as_str().to_owned()),
            ("error_description", self.description()),
        ]
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

impl IntoResponse for OAuthError {
    /// fosite's `WriteAccessError`: JSON with `no-store` caching headers.
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str(),
            error_description: self.description(),
        };
        crate::routes::oauth_json(self.status, &body)
    }
}

/// A last-resort plain answer when even serialising failed.
pub(crate) fn plain_server_error() -> Response {
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "The authorization server encountered an unexpected condition.",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_grant_has_fosites_wording_and_no_hint() {
        assert_eq!(
            OAuthError::invalid_grant().description(),
            "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."
        );
    }

    #[test]
    fn hint_is_appended_and_double_quotes_become_single() {
        let err = OAuthError::invalid_grant().with_hint("The \"redirect_uri\" differs.");
        assert!(err
            .description()
            .ends_with("client. The 'redirect_uri' differs."));
    }

    #[test]
    fn invalid_request_carries_fosites_default_hint_until_replaced() {
        let plain = OAuthError::new(ErrorCode::InvalidRequest).description();
        assert!(plain.contains("Make sure that the various parameters are correct"));
        let hinted = OAuthError::invalid_request("The POST body can not be empty.").description();
        assert!(hinted.ends_with("malformed. The POST body can not be empty."));
    }

    #[test]
    fn invalid_client_is_401_and_others_400() {
        assert_eq!(
            OAuthError::invalid_client().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(OAuthError::invalid_grant().status, StatusCode::BAD_REQUEST);
    }
}
