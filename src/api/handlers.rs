//! `POST /api/v1/{provider}/token` (RFC 6749 §4.1.3 + RFC 7636 §4.5),
//! `POST /api/v1/{provider}/refresh` (RFC 6749 §6) and `POST /api/v1/{provider}/revoke` (RFC 7009).
//!
//! Order of checks: provider (404), content type (415), size (413), body (400), at `/token` the
//! `grant_type` (400 `unsupported_grant_type`), field rules (400); only then the validated grant
//! goes to [`crate::exchange`].

use super::docs;
use super::extract::{read_fields, Fields};
use super::input::{CodeExchange, Refresh, Revocation, TokenGrantType};
use super::state::AppState;
use crate::exchange::{Provider, Redeem};
use crate::reply::{ApiError, Endpoint, Reply};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `POST /api/v1/{provider}/token`: `code`, `code_verifier`, `redirect_uri` → token response; or,
/// with `grant_type=refresh_token`, `refresh_token` → exactly what `/refresh` answers.
#[utoipa::path(
    post,
    path = "/api/v1/{provider}/token",
    operation_id = "exchangeCode",
    tag = "oauth",
    summary = "Exchange an authorization code (or a refresh token) for tokens",
    description = "RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5). The proxy checks the input, adds its \
        client credentials and calls the provider once. An identical request within the replay \
        window gets the same answer without a second provider call.\n\n\
        `grant_type` selects the grant: absent, empty or `authorization_code` is the code \
        exchange (Battles Record sends none); `refresh_token` is exactly `POST /refresh` (RFC 6749 \
        §6, what standard OAuth client libraries send to the token endpoint): the same input \
        rules, and replay and single-flight shared with the same refresh sent to `/refresh`; it \
        counts against this path's rate limit. Any other `grant_type` is 400 \
        `unsupported_grant_type` and the provider is not called.",
    params(docs::ProviderPath),
    request_body(
        description = "The code, verifier and redirect URI; or `grant_type=refresh_token` and the \
            refresh token. As `application/json` or `application/x-www-form-urlencoded`, \
            optionally with `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (docs::TokenRequest = "application/json"),
            (docs::TokenRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = docs::TokenIssued),
        docs::TokenErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let provider = named(&state, provider);
    serve(state, provider, Endpoint::Token, request).await
}

/// `POST /api/v1/{provider}/refresh`: `refresh_token` → token response.
#[utoipa::path(
    post,
    path = "/api/v1/{provider}/refresh",
    operation_id = "refreshToken",
    tag = "oauth",
    summary = "Refresh an access token",
    description = "RFC 6749 §6. `invalid_grant` means the grant is gone: log in again. Kick returns \
        a new refresh token on every refresh: store it. A `grant_type` field is ignored here; the \
        same refresh can also be sent to `/token` with `grant_type=refresh_token`.",
    params(docs::ProviderPath),
    request_body(
        description = "The refresh token, as \
            `application/json` or `application/x-www-form-urlencoded`, optionally with \
            `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (docs::RefreshRequest = "application/json"),
            (docs::RefreshRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = docs::TokenIssued),
        docs::OAuthErrors,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let provider = named(&state, provider);
    serve(state, provider, Endpoint::Refresh, request).await
}

/// `POST /api/v1/{provider}/revoke`: `token`, optional `token_type_hint` → 200 `{}`, also for
/// unknown tokens (RFC 7009 §2.2).
#[utoipa::path(
    post,
    path = "/api/v1/{provider}/revoke",
    operation_id = "revokeToken",
    tag = "oauth",
    summary = "Revoke a token",
    description = "RFC 7009. 200 `{}` also for a token the provider does not know (RFC 7009 §2.2). \
        404 when the provider has no revocation endpoint configured.",
    params(docs::ProviderPath),
    request_body(
        description = "The token and an optional hint, as \
            `application/json` or `application/x-www-form-urlencoded`, optionally with \
            `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (docs::RevokeRequest = "application/json"),
            (docs::RevokeRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = docs::Revoked),
        docs::OAuthErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let provider = named(&state, provider);
    serve(state, provider, Endpoint::Revoke, request).await
}

/// The provider serving `{provider}`, if configured.
fn named(state: &AppState, name: Result<Path<String>, PathRejection>) -> Option<Arc<Provider>> {
    let Path(name) = name.ok()?;
    state.exchange().provider(&name).cloned()
}

/// The three handlers above, after axum's router; also the listener's direct path to them
/// ([`crate::server::App`]), which looks the provider up itself. `None`: no such provider (404).
pub async fn serve(
    state: AppState,
    provider: Option<Arc<Provider>>,
    endpoint: Endpoint,
    request: Request,
) -> Response {
    let Some(provider) = provider else {
        return ApiError::NotFound.into_response();
    };
    let (served_as, mut reply) = match read_fields(request, state.body_read_timeout()).await {
        Ok(fields) => dispatch(&state, &provider, endpoint, &fields).await,
        Err(error) => (endpoint, error.into()),
    };
    reply.outcome.provider = Some(provider.label.clone());
    reply.outcome.endpoint = Some(served_as.as_str());
    reply.into_response()
}

/// Picks what the request is (at `/token`, by its `grant_type`), applies that endpoint's input
/// rules and hands it to the exchange. Returns what it was served as: a refresh sent to `/token`
/// is [`Endpoint::Refresh`] from here on, so it shares replay and single-flight with the same
/// refresh at `/refresh`, and the log line and metrics say `refresh`.
async fn dispatch(
    state: &AppState,
    provider: &Arc<Provider>,
    endpoint: Endpoint,
    fields: &Fields,
) -> (Endpoint, Reply) {
    let endpoint = match endpoint {
        Endpoint::Token => match TokenGrantType::from_fields(fields) {
            Ok(TokenGrantType::AuthorizationCode) => Endpoint::Token,
            Ok(TokenGrantType::RefreshToken) => Endpoint::Refresh,
            Err(error) => return (endpoint, error.into()),
        },
        other => other,
    };
    let exchange = state.exchange();
    let input = match endpoint {
        Endpoint::Token => {
            CodeExchange::from_fields(fields, &provider.allowed_redirect_uris.load()).map(|c| {
                Redeem::Code {
                    code: c.code,
                    verifier: c.code_verifier,
                    redirect_uri: c.redirect_uri,
                }
            })
        }
        Endpoint::Refresh => Refresh::from_fields(fields).map(|r| Redeem::Refresh(r.refresh_token)),
        Endpoint::Revoke => {
            let reply = match Revocation::from_fields(fields) {
                Ok(input) => {
                    let hint = input.token_type_hint.map(|hint| hint.as_str());
                    exchange.revoke(provider, input.token, hint).await
                }
                Err(error) => error.into(),
            };
            return (endpoint, reply);
        }
    };
    let reply = match input {
        Ok(input) => exchange.redeem(provider, input).await,
        Err(error) => error.into(),
    };
    (endpoint, reply)
}
