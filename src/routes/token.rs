//! `POST /api/v1/{provider}/token` (RFC 6749 §4.1.3 + RFC 7636 §4.5),
//! `POST /api/v1/{provider}/refresh` (RFC 6749 §6) and `POST /api/v1/{provider}/revoke` (RFC 7009).
//!
//! Order of checks: provider (404), content type (415), size (413), body (400), field rules (400);
//! only then the provider is called, once.

use super::input::{read_fields, CodeExchange, Fields, Refresh, Revocation, TokenTypeHint};
use super::{AppState, Outcome, Provider};
use crate::error::{json_response, ApiError};
use crate::oauth::OAuthErrorCode;
use crate::upstream::{Grant, UpstreamError};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The proxy's endpoints, named as in the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Authorization-code exchange.
    Token,
    /// Refresh-token grant.
    Refresh,
    /// Token revocation.
    Revoke,
}

impl Endpoint {
    /// The log and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Refresh => "refresh",
            Self::Revoke => "revoke",
        }
    }
}

/// `POST /api/v1/{provider}/token`: `code`, `code_verifier`, `redirect_uri` → token response.
pub async fn token(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    serve(state, provider, Endpoint::Token, request).await
}

/// `POST /api/v1/{provider}/refresh`: `refresh_token` → token response.
pub async fn refresh(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    serve(state, provider, Endpoint::Refresh, request).await
}

/// `POST /api/v1/{provider}/revoke`: `token`, optional `token_type_hint` → 200 `{}`, also for
/// unknown tokens (RFC 7009 §2.2).
pub async fn revoke(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    serve(state, provider, Endpoint::Revoke, request).await
}

async fn serve(
    state: AppState,
    provider: Result<Path<String>, PathRejection>,
    endpoint: Endpoint,
    request: Request,
) -> Response {
    let Some(provider) = provider
        .ok()
        .and_then(|Path(name)| state.provider(&name).cloned())
    else {
        return ApiError::NotFound.into_response();
    };
    let result = match read_fields(request, state.body_read_timeout()).await {
        Ok(fields) => redeem(&provider, endpoint, &fields).await,
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, body);
            response.extensions_mut().insert(Outcome {
                upstream_status: Some(200),
                upstream: Some("ok"),
                ..Outcome::default()
            });
            response
        }
        Err(error) => {
            log_failure(&provider, endpoint, &error);
            error.into_response()
        }
    };
    if let Some(outcome) = response.extensions_mut().get_mut::<Outcome>() {
        outcome.provider = Some(provider.label.clone());
        outcome.endpoint = Some(endpoint.as_str());
    }
    response
}

/// Validates the fields, calls the provider once, and returns the response body.
async fn redeem(
    provider: &Provider,
    endpoint: Endpoint,
    fields: &Fields,
) -> Result<Vec<u8>, ApiError> {
    let answer = match endpoint {
        Endpoint::Token => {
            let input = CodeExchange::from_fields(fields, &provider.allowed_redirect_uris)?;
            provider
                .upstream
                .token(Grant::AuthorizationCode {
                    code: &input.code,
                    verifier: &input.code_verifier,
                    redirect_uri: &input.redirect_uri,
                })
                .await
        }
        Endpoint::Refresh => {
            let input = Refresh::from_fields(fields)?;
            provider
                .upstream
                .token(Grant::RefreshToken(&input.refresh_token))
                .await
        }
        Endpoint::Revoke => {
            if !provider.upstream.can_revoke() {
                return Err(ApiError::NotFound);
            }
            let input = Revocation::from_fields(fields)?;
            let hint = input.token_type_hint.map(TokenTypeHint::as_str);
            return match provider.upstream.revoke(&input.token, hint).await {
                Ok(_) => Ok(b"{}".to_vec()),
                Err(error) => Err(upstream_error(provider, error)),
            };
        }
    };
    match answer {
        Ok(answer) => Ok(answer.value.to_json()),
        Err(error) => Err(upstream_error(provider, error)),
    }
}

/// A provider's grant error is the caller's (400); anything else is a 502 naming the provider.
fn upstream_error(provider: &Provider, error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Grant {
            code,
            description,
            status,
        } => ApiError::Grant {
            code,
            description,
            upstream_status: status.as_u16(),
        },
        source => ApiError::Upstream {
            provider: provider.label.clone(),
            source,
        },
    }
}

/// Upstream failures get a line of their own with the cause (never a body or a value).
fn log_failure(provider: &Provider, endpoint: Endpoint, error: &ApiError) {
    let ApiError::Upstream { source, .. } = error else {
        return;
    };
    let name = provider.label.name.as_str();
    let endpoint = endpoint.as_str();
    match source {
        UpstreamError::Refused { code, status }
            if matches!(
                code,
                OAuthErrorCode::InvalidClient
                    | OAuthErrorCode::UnauthorizedClient
                    | OAuthErrorCode::UnsupportedGrantType
            ) =>
        {
            tracing::error!(
                provider = name,
                endpoint,
                code = code.as_str(),
                upstream_status = status.as_u16(),
                "the provider refused this server's client credentials: check client_id and client_secret"
            );
        }
        other => tracing::warn!(
            provider = name,
            endpoint,
            kind = other.kind(),
            error = %DisplayChain(other),
            "upstream call failed"
        ),
    }
}

/// Displays an error and its sources, `a: b: c`.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
