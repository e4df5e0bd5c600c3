//! [`router`]: the one place routes and layers are assembled; tests drive the same application.
//!
//! [`App`] is what the public listener serves: the three OAuth endpoints on a direct path (the
//! same layers and handler, without axum's routing: issue #15), everything else through axum's
//! [`Router`], which also keeps the three routes for what the direct path does not take.

use super::access_log::AccessLogLayer;
use crate::api::{handlers, health, openapi, relay, AppState};
use crate::front_door::{Limits, RateLimit};
use crate::reply::{ApiError, Endpoint};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower::util::{Either, Oneshot};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::cors::Cors;
use tower_http::sensitive_headers::{SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer};
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

/// Request headers marked sensitive (never shown by a layer that prints headers).
const SENSITIVE: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// The whole HTTP application.
///
/// Layers, outermost first: sensitive-header marking, the request log (so every answer below,
/// 429 and 503 included, gets its line and `x-request-id`), `Strict-Transport-Security` when
/// served over TLS, CORS (preflights are answered before any limit, and refusals still carry the
/// CORS headers a webview needs to read them), load shedding (the cheapest check, and an
/// overloaded service touches no per-client state), the per-endpoint rate limit, then the
/// handler. Shedding and rate limits sit on the API routes only: `/healthz` and `/readyz` keep
/// answering under overload and are never limited.
pub fn router(state: AppState) -> App {
    let limits = Limits::new(&state.settings(), state.exchange().shared());
    let hsts = state.settings().server.tls.is_some().then(hsts_layer);
    let direct = Direct {
        token: direct_stack(&state, &limits, &limits.token, Endpoint::Token, &hsts),
        refresh: direct_stack(&state, &limits, &limits.refresh, Endpoint::Refresh, &hsts),
        revoke: direct_stack(&state, &limits, &limits.revoke, Endpoint::Revoke, &hsts),
    };
    let api = Router::new()
        .route(
            route(Endpoint::Token),
            post(handlers::token).route_layer(limits.token.clone()),
        )
        .route(
            route(Endpoint::Refresh),
            post(handlers::refresh).route_layer(limits.refresh.clone()),
        )
        .route(
            route(Endpoint::Revoke),
            post(handlers::revoke).route_layer(limits.revoke.clone()),
        )
        // GET /api/v1/{provider}/authorize and /callback, behind load shedding too.
        .merge(relay::router())
        .route_layer(limits.shed.clone());
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
    if let Some(hsts) = hsts {
        // Served over TLS by this binary: tell browsers (webviews) to stay on HTTPS (RFC 6797).
        app = app.layer(hsts);
    }
    let router = app
        .layer(AccessLogLayer::default())
        .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE));
    App {
        direct: Some(Arc::new(direct)),
        router,
    }
}

/// The route template of an OAuth endpoint: axum's route, and the direct path's log line.
fn route(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Token => "/api/v1/{provider}/token",
        Endpoint::Refresh => "/api/v1/{provider}/refresh",
        Endpoint::Revoke => "/api/v1/{provider}/revoke",
    }
}

fn hsts_layer() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    )
}

/// What a listener serves: a router, and for the public one the direct path to the three OAuth
/// endpoints. Cheap to clone.
#[derive(Clone)]
pub struct App {
    direct: Option<Arc<Direct>>,
    router: Router,
}

impl From<Router> for App {
    /// A router alone (the admin listener's).
    fn from(router: Router) -> Self {
        Self {
            direct: None,
            router,
        }
    }
}

impl App {
    /// Serves `request`: `POST /api/v1/{provider}/token`, `/refresh` and `/revoke` on the direct
    /// path, anything else through the router.
    pub(crate) fn serve(&self, request: Request) -> AppFuture {
        match self.direct.as_deref().and_then(|d| d.stack_for(&request)) {
            Some(stack) => AppFuture::Direct {
                inner: stack.clone().oneshot(request),
            },
            None => AppFuture::Routed {
                inner: self.router.clone().oneshot(request),
            },
        }
    }
}

pin_project! {
    /// The response future of [`App::serve`].
    #[project = AppFutureProjection]
    pub(crate) enum AppFuture {
        /// On the direct path.
        Direct { #[pin] inner: Oneshot<DirectStack, Request> },
        /// Through the router.
        Routed { #[pin] inner: Oneshot<Router, Request> },
    }
}

impl Future for AppFuture {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let answered = match self.project() {
            AppFutureProjection::Direct { inner } => ready!(inner.poll(cx)),
            AppFutureProjection::Routed { inner } => ready!(inner.poll(cx)),
        };
        // Both services are infallible.
        Poll::Ready(answered.unwrap_or_else(|never| match never {}))
    }
}

/// The three OAuth endpoints, each one typed stack: the router's layers in the router's order,
/// then the endpoint's handler. Nothing boxed but the handler's future. A layer added to the API
/// routes in [`router`] must be added to [`direct_stack`] too, at the same place (and it finds no
/// `MatchedPath` or path parameters here: the direct path does not route).
struct Direct {
    token: DirectStack,
    refresh: DirectStack,
    revoke: DirectStack,
}

type Limited = crate::front_door::rate::Limited<Handler>;
type Shed = crate::front_door::shed::Shed<Limited>;
type WithCors = Either<Cors<Shed>, Shed>;
type WithHsts = Either<SetResponseHeader<WithCors, HeaderValue>, WithCors>;
type DirectStack = SetSensitiveRequestHeaders<super::access_log::AccessLog<WithHsts>>;

fn direct_stack(
    state: &AppState,
    limits: &Limits,
    rate: &RateLimit,
    endpoint: Endpoint,
    hsts: &Option<SetResponseHeaderLayer<HeaderValue>>,
) -> DirectStack {
    let handler = Handler {
        state: state.clone(),
        endpoint,
    };
    ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE))
        .layer(AccessLogLayer::route(route(endpoint)))
        .option_layer(hsts.clone())
        .option_layer(limits.cors.clone())
        .layer(limits.shed.clone())
        .layer(rate.clone())
        .service(handler)
}

impl Direct {
    /// The stack for `request`, if the direct path takes it ([`direct_endpoint`]).
    fn stack_for(&self, request: &Request) -> Option<&DirectStack> {
        match direct_endpoint(request.method(), request.uri().path())? {
            Endpoint::Token => Some(&self.token),
            Endpoint::Refresh => Some(&self.refresh),
            Endpoint::Revoke => Some(&self.revoke),
        }
    }
}

/// The endpoint of a `POST` to `/api/v1/{provider}/token`, `/refresh` or `/revoke` with a
/// `{provider}` segment that axum's router would pass on unchanged (not empty, nothing
/// percent-encoded). Anything else, what the router answers 405 or 404 included, is `None`: the
/// router's.
fn direct_endpoint(method: &Method, path: &str) -> Option<Endpoint> {
    if method != Method::POST {
        return None;
    }
    let (provider, action) = provider_and_action(path)?;
    if provider.is_empty() || provider.contains('%') {
        return None;
    }
    match action {
        "token" => Some(Endpoint::Token),
        "refresh" => Some(Endpoint::Refresh),
        "revoke" => Some(Endpoint::Revoke),
        _ => None,
    }
}

/// `{provider}` and what follows it in `/api/v1/{provider}/…`.
fn provider_and_action(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("/api/v1/")?.split_once('/')
}

/// The handler of one endpoint on the direct path: [`handlers::serve`], the provider looked up
/// from the path.
#[derive(Clone)]
struct Handler {
    state: AppState,
    endpoint: Endpoint,
}

impl Service<Request> for Handler {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let provider = provider_and_action(request.uri().path())
            .and_then(|(name, _)| self.state.exchange().provider(name).cloned());
        let state = self.state.clone();
        let endpoint = self.endpoint;
        Box::pin(async move { Ok(handlers::serve(state, provider, endpoint, request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[tokio::test]
    async fn the_public_app_serves_the_three_endpoints_on_the_direct_path_and_the_rest_routed() {
        let settings = Settings::minimal();
        let app = router(AppState::new(&settings, None).expect("state"));
        let request = |method: Method, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        for path in [
            "/api/v1/kick/token",
            "/api/v1/kick/refresh",
            "/api/v1/nope/revoke",
        ] {
            let future = app.serve(request(Method::POST, path));
            assert!(matches!(future, AppFuture::Direct { .. }), "{path}");
        }
        for (method, path) in [
            (Method::POST, "/api/v1/%6Bick/token"),
            (Method::GET, "/api/v1/kick/token"),
            (Method::OPTIONS, "/api/v1/kick/token"),
            (Method::GET, "/healthz"),
        ] {
            let future = app.serve(request(method.clone(), path));
            assert!(
                matches!(future, AppFuture::Routed { .. }),
                "{method} {path}"
            );
        }
        let admin = App::from(Router::new());
        let future = admin.serve(request(Method::POST, "/api/v1/kick/token"));
        assert!(matches!(future, AppFuture::Routed { .. }));
    }

    #[test]
    fn the_direct_path_takes_a_post_to_the_three_endpoints_only() {
        let post = |path| direct_endpoint(&Method::POST, path);
        assert_eq!(post("/api/v1/kick/token"), Some(Endpoint::Token));
        assert_eq!(post("/api/v1/twitch/refresh"), Some(Endpoint::Refresh));
        assert_eq!(post("/api/v1/nope/revoke"), Some(Endpoint::Revoke));
        for path in [
            "/api/v1/%6Bick/token",
            "/api/v1//token",
            "/api/v1/kick/token/",
            "/api/v1/kick/tokens",
            "/api/v1/kick/authorize",
            "/api/v1/kick",
            "/api/v1/openapi.json",
            "/api/v2/kick/token",
            "/healthz",
        ] {
            assert_eq!(post(path), None, "{path}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::PUT] {
            assert_eq!(direct_endpoint(&method, "/api/v1/kick/token"), None);
        }
    }
}
