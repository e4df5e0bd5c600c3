//! [`router`]: the one place routes and layers are assembled; tests drive the same router.

use super::access_log::AccessLogLayer;
use crate::api::{handlers, health, openapi, relay, AppState};
use crate::front_door::Limits;
use crate::reply::ApiError;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The whole HTTP application.
///
/// Layers, outermost first: sensitive-header marking, the request log (so every answer below,
/// 429 and 503 included, gets its line and `x-request-id`), CORS (preflights are answered before
/// any limit, and refusals still carry the CORS headers a webview needs to read them), load
/// shedding (the cheapest check, and an overloaded service touches no per-client state), the
/// per-endpoint rate limit, then the handler. Shedding and rate limits sit on the API routes
/// only: `/healthz` and `/readyz` keep answering under overload and are never limited.
pub fn router(state: AppState) -> Router {
    let limits = Limits::new(&state.settings(), state.exchange().shared());
    let api = Router::new()
        .route(
            "/api/v1/{provider}/token",
            post(handlers::token).route_layer(limits.token.clone()),
        )
        .route(
            "/api/v1/{provider}/refresh",
            post(handlers::refresh).route_layer(limits.refresh.clone()),
        )
        .route(
            "/api/v1/{provider}/revoke",
            post(handlers::revoke).route_layer(limits.revoke.clone()),
        )
        // GET /api/v1/{provider}/authorize and /callback, behind load shedding too.
        .merge(relay::router())
        .route_layer(limits.shed.clone());
    let hsts = state.settings().server.tls.is_some();
    let mut app = api
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    if let Some(cors) = limits.cors {
        app = app.layer(cors);
    }
    if hsts {
        // Served over TLS by this binary: tell browsers (webviews) to stay on HTTPS (RFC 6797).
        app = app.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    app.layer(AccessLogLayer)
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
}
