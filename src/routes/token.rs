//! `POST /api/v1/{provider}/token` (RFC 6749 §4.1.3 + RFC 7636 §4.5),
//! `POST /api/v1/{provider}/refresh` (RFC 6749 §6) and `POST /api/v1/{provider}/revoke` (RFC 7009).
//!
//! Order of checks: provider (404), content type (415), size (413), body (400), at `/token` the
//! `grant_type` (400 `unsupported_grant_type`), field rules (400); only then the provider is
//! called, once.

use super::input::{
    read_fields, CodeExchange, Fields, Refresh, Revocation, TokenGrantType, TokenTypeHint,
};
use super::{AppState, Provider};
use crate::error::{ApiError, Reply};
use crate::oauth::{OAuthErrorCode, TokenResponse};
use crate::upstream::{Answer, Grant, Upstream, UpstreamError};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The proxy's endpoints, named as in the log line: what a request did, which for a refresh sent to
/// `/token` (`grant_type=refresh_token`) is [`Endpoint::Refresh`]. The rate limit, chosen before
/// the body is read, goes by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Authorization-code exchange.
    Token,
    /// Refresh-token grant, at `/refresh` or at `/token`.
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
    params(crate::openapi::ProviderPath),
    request_body(
        description = "The code, verifier and redirect URI; or `grant_type=refresh_token` and the \
            refresh token. As `application/json` or `application/x-www-form-urlencoded`, \
            optionally with `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (crate::routes::input::TokenRequest = "application/json"),
            (crate::routes::input::TokenRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = crate::openapi::TokenIssued),
        crate::openapi::TokenErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
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
    params(crate::openapi::ProviderPath),
    request_body(
        description = "The refresh token, as \
            `application/json` or `application/x-www-form-urlencoded`, optionally with \
            `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (crate::routes::input::RefreshRequest = "application/json"),
            (crate::routes::input::RefreshRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = crate::openapi::TokenIssued),
        crate::openapi::OAuthErrors,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
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
    params(crate::openapi::ProviderPath),
    request_body(
        description = "The token and an optional hint, as \
            `application/json` or `application/x-www-form-urlencoded`, optionally with \
            `charset=utf-8`; anything else is 415. At most 16 KiB (413).",
        content(
            (crate::routes::input::RevokeRequest = "application/json"),
            (crate::routes::input::RevokeRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, response = crate::openapi::Revoked),
        crate::openapi::OAuthErrors,
    )
)]
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
    let (served_as, mut reply) = match read_fields(request, state.body_read_timeout()).await {
        Ok(fields) => dispatch(&state, &provider, endpoint, &fields).await,
        Err(error) => (endpoint, error.into()),
    };
    reply.outcome.provider = Some(provider.label.clone());
    reply.outcome.endpoint = Some(served_as.as_str());
    reply.into_response()
}

/// Picks what the request is (at `/token`, by its `grant_type`), applies that endpoint's input
/// rules and serves it. Returns what it was served as: a refresh sent to `/token` is
/// [`Endpoint::Refresh`] from here on, so it shares replay and single-flight with the same refresh
/// at `/refresh`, and the log line and metrics say `refresh`.
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
    let reply = match endpoint {
        Endpoint::Token => {
            match CodeExchange::from_fields(fields, &provider.allowed_redirect_uris.load()) {
                Ok(input) => redeem(state, provider, endpoint, Input::Code(input)).await,
                Err(error) => error.into(),
            }
        }
        Endpoint::Refresh => match Refresh::from_fields(fields) {
            Ok(input) => redeem(state, provider, endpoint, Input::Refresh(input)).await,
            Err(error) => error.into(),
        },
        Endpoint::Revoke => match Revocation::from_fields(fields) {
            Ok(input) => revoke_token(state, provider, input).await,
            Err(error) => error.into(),
        },
    };
    (endpoint, reply)
}

/// A validated grant, owned so the provider call can run in its own task.
enum Input {
    Code(CodeExchange),
    Refresh(Refresh),
}

impl Input {
    /// The request's secret inputs: what the replay index and key are derived from.
    fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Code(c) => vec![c.code.secret(), c.code_verifier.secret(), &c.redirect_uri],
            Self::Refresh(r) => vec![r.refresh_token.secret()],
        }
    }

    fn grant(&self) -> Grant<'_> {
        match self {
            Self::Code(c) => Grant::AuthorizationCode {
                code: &c.code,
                verifier: &c.code_verifier,
                redirect_uri: &c.redirect_uri,
            },
            Self::Refresh(r) => Grant::RefreshToken(&r.refresh_token),
        }
    }
}

/// Exchange or refresh: the replay cache first, then one shared provider call per identical
/// request. The call runs in its own task, so a caller that gives up does not cut it in half: its
/// answer lands in the replay cache for the caller's retry.
async fn redeem(
    state: &AppState,
    provider: &Arc<Provider>,
    endpoint: Endpoint,
    input: Input,
) -> Reply {
    let key = state
        .replay()
        .key(&provider.label.name, endpoint.as_str(), &input.secrets());
    if let Some(body) = state.replay().get(&key) {
        return replayed(body);
    }
    let index = key.index();
    let work = {
        let state = state.clone();
        let provider = Arc::clone(provider);
        async move {
            // A flight that finished between our look-up and now left its answer here.
            if let Some(body) = state.replay().get(&key) {
                return replayed(body);
            }
            let reply = call_provider(&state, &provider, endpoint, |upstream| {
                upstream.token(input.grant())
            })
            .await;
            if reply.status == StatusCode::OK {
                state.replay().put(&key, &reply.body);
            }
            reply
        }
    };
    match state.flights().run(index, work).await {
        Some((mut reply, shared)) => {
            if shared && reply.outcome.served_from.is_none() {
                reply.outcome.served_from = Some("shared");
            }
            reply
        }
        None => ApiError::Unavailable {
            retry_after: 1,
            reason: "overloaded",
        }
        .into(),
    }
}

fn replayed(body: bytes::Bytes) -> Reply {
    let mut reply = Reply::ok(body, None);
    reply.outcome.upstream = None;
    reply.outcome.served_from = Some("replay");
    reply
}

/// `/revoke`: idempotent by nature (RFC 7009), so neither replayed nor coalesced.
async fn revoke_token(state: &AppState, provider: &Arc<Provider>, input: Revocation) -> Reply {
    if !provider.upstream.can_revoke() {
        return ApiError::NotFound.into();
    }
    let hint = input.token_type_hint.map(TokenTypeHint::as_str);
    call_provider(state, provider, Endpoint::Revoke, |upstream| async move {
        upstream
            .revoke(&input.token, hint)
            .await
            .map(|status| Answer {
                status,
                value: b"{}".to_vec(),
            })
    })
    .await
}

/// One provider call under the upstream cap and the provider's breaker, rendered.
async fn call_provider<'a, F, Fut, T>(
    state: &'a AppState,
    provider: &'a Provider,
    endpoint: Endpoint,
    call: F,
) -> Reply
where
    F: FnOnce(&'a Upstream) -> Fut,
    Fut: std::future::Future<Output = Result<Answer<T>, UpstreamError>>,
    T: IntoBody,
{
    // The permit first: a breaker probe admitted without one would never be recorded.
    let Ok(_permit) = state.upstream_permits().try_acquire() else {
        return ApiError::Unavailable {
            retry_after: 1,
            reason: "overloaded",
        }
        .into();
    };
    let admission = match provider.breaker.admit() {
        Ok(admission) => admission,
        Err(wait) => {
            return ApiError::Unavailable {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                reason: "breaker_open",
            }
            .into()
        }
    };
    let started = std::time::Instant::now();
    let result = call(&provider.upstream).await;
    crate::metrics::record_upstream(
        &provider.label.name,
        endpoint.as_str(),
        result.as_ref().map_or_else(UpstreamError::kind, |_| "ok"),
        started.elapsed(),
    );
    admission.record(match &result {
        Ok(_) => true,
        Err(error) => !error.is_provider_failure(),
    });
    match result {
        Ok(answer) => Reply::ok(answer.value.into_body(), Some(answer.status.as_u16())),
        Err(error) => {
            let error = upstream_error(provider, error);
            log_failure(provider, endpoint, &error);
            error.into()
        }
    }
}

/// What a successful provider answer becomes as a response body.
trait IntoBody {
    fn into_body(self) -> bytes::Bytes;
}

impl IntoBody for TokenResponse {
    fn into_body(self) -> bytes::Bytes {
        self.to_json().into()
    }
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> bytes::Bytes {
        self.into()
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
