//! The HTTP surface: one [`router`] assembles the routes and layers; tests drive the same router.
//!
//! - [`token`]: `POST /api/v1/{provider}/token`, `/refresh` and `/revoke`;
//! - [`health`]: `GET /healthz`, `GET /readyz`;
//! - [`input`]: body decoding and the contract's input rules;
//! - here: shared state, the per-request log line, 404/405 in the JSON error shape.

pub mod health;
pub mod input;
pub mod token;

use crate::config::{CaCertificates, ClientAuth, ProviderSettings, Settings};
use crate::error::{ApiError, ProviderLabel, Reply};
use crate::replay::{Flights, ReplayCache};
use crate::upstream::breaker::Breaker;
use crate::upstream::{Credentials, Upstream};
use arc_swap::ArcSwap;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// `x-request-id`: accepted from the caller when sane, generated otherwise, echoed back.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One configured provider, ready to serve.
pub struct Provider {
    /// Name and 502 texts.
    pub label: Arc<ProviderLabel>,
    /// `redirect_uri` values accepted byte for byte; swapped whole on reload.
    pub allowed_redirect_uris: ArcSwap<Vec<String>>,
    /// Its token endpoint and HTTP client.
    pub upstream: Upstream,
    /// Fails fast while the provider is failing.
    pub breaker: Breaker,
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    settings: ArcSwap<Settings>,
    /// What each provider's HTTP client and endpoints were built from: a reload compares against
    /// this, so a key that needs a restart is reported on every reload until the restart.
    built_from: HashMap<String, BuiltFrom>,
    providers: HashMap<String, Arc<Provider>>,
    replay: ReplayCache,
    flights: Flights<Reply>,
    upstream_permits: Semaphore,
    draining: AtomicBool,
    body_read_timeout: Duration,
}

/// The keys a provider's HTTP client and endpoints are built from (no secret: those reload).
#[derive(Debug)]
struct BuiltFrom {
    token_url: url::Url,
    revoke_url: Option<url::Url>,
    client_id: String,
    timeout: Duration,
    preset: String,
    client_auth: ClientAuth,
    ca_file: Option<std::path::PathBuf>,
    ca_certificates: CaCertificates,
}

impl BuiltFrom {
    fn of(p: &ProviderSettings) -> Self {
        Self {
            token_url: p.token_url.clone(),
            revoke_url: p.revoke_url.clone(),
            client_id: p.client_id.clone(),
            timeout: p.timeout,
            preset: p.preset.clone(),
            client_auth: p.client_auth,
            ca_file: p.ca_file.clone(),
            ca_certificates: p.ca_certificates.clone(),
        }
    }

    /// The config keys (as written in the file) whose value differs in `new`.
    fn changed_keys(&self, new: &Self) -> Vec<&'static str> {
        [
            ("token_url", self.token_url != new.token_url),
            ("revoke_url", self.revoke_url != new.revoke_url),
            ("client_id", self.client_id != new.client_id),
            ("timeout_secs", self.timeout != new.timeout),
            ("preset", self.preset != new.preset),
            ("client_auth", self.client_auth != new.client_auth),
            (
                "ca_file",
                self.ca_file != new.ca_file || self.ca_certificates != new.ca_certificates,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// A provider's HTTP client could not be built (TLS backend initialisation).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for provider `{provider}`: {source}")]
pub struct ClientBuildError {
    provider: String,
    #[source]
    source: reqwest::Error,
}

impl AppState {
    /// Builds every provider's client from validated settings.
    pub fn new(settings: &Settings) -> Result<Self, ClientBuildError> {
        let providers = settings
            .providers
            .iter()
            .map(|(name, p)| {
                let upstream = p.upstream().map_err(|source| ClientBuildError {
                    provider: name.clone(),
                    source,
                })?;
                let provider = Provider {
                    label: Arc::new(ProviderLabel::new(name, &p.display_name)),
                    allowed_redirect_uris: ArcSwap::from_pointee(crate::relay::redirect_allowlist(
                        p,
                    )),
                    upstream,
                    breaker: Breaker::new(
                        settings.limits.breaker_failures,
                        Duration::from_secs(settings.limits.breaker_cooldown_secs),
                    ),
                };
                Ok((name.clone(), Arc::new(provider)))
            })
            .collect::<Result<_, ClientBuildError>>()?;
        Ok(Self {
            inner: Arc::new(Shared {
                settings: ArcSwap::from_pointee(settings.clone()),
                built_from: settings
                    .providers
                    .iter()
                    .map(|(name, p)| (name.clone(), BuiltFrom::of(p)))
                    .collect(),
                providers,
                replay: ReplayCache::new(
                    Duration::from_secs(settings.replay.window_secs),
                    settings.replay.max_entries,
                    settings.replay.max_bytes,
                ),
                flights: Flights::default(),
                upstream_permits: Semaphore::new(settings.limits.max_upstream_calls),
                draining: AtomicBool::new(false),
                body_read_timeout: Duration::from_secs(settings.server.body_read_timeout_secs),
            }),
        })
    }

    /// Applies what can change without a restart from freshly loaded `settings`: each existing
    /// provider's client secrets and redirect allowlist. Requests in flight finish with what they
    /// started with. Returns the names of the keys that changed but need a restart.
    pub fn reload(&self, settings: &Settings) -> Vec<String> {
        let mut needs_restart = Vec::new();
        for (name, new) in &settings.providers {
            let Some(provider) = self.provider(name) else {
                needs_restart.push(format!("providers.{name} (new provider)"));
                continue;
            };
            provider.upstream.set_credentials(Credentials {
                current: new.client_secret.clone(),
                next: new.next_client_secret.clone(),
            });
            provider
                .allowed_redirect_uris
                .store(Arc::new(crate::relay::redirect_allowlist(new)));
            if let Some(built) = self.inner.built_from.get(name) {
                needs_restart.extend(
                    built
                        .changed_keys(&BuiltFrom::of(new))
                        .into_iter()
                        .map(|key| format!("providers.{name}.{key}")),
                );
            }
        }
        for name in self.inner.providers.keys() {
            if !settings.providers.contains_key(name) {
                needs_restart.push(format!("providers.{name} (removed)"));
            }
        }
        self.inner.settings.store(Arc::new(settings.clone()));
        needs_restart
    }

    /// The validated settings in force (as of the last reload).
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// The provider serving `{provider}`, if configured.
    pub fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.inner.providers.get(name)
    }

    /// Every configured provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = (&String, &Arc<Provider>)> {
        self.inner.providers.iter()
    }

    /// The replay cache.
    pub fn replay(&self) -> &ReplayCache {
        &self.inner.replay
    }

    /// Single-flight for identical exchanges and refreshes.
    pub fn flights(&self) -> &Flights<Reply> {
        &self.inner.flights
    }

    /// Permits for provider calls in flight (`limits.max_upstream_calls`).
    pub fn upstream_permits(&self) -> &Semaphore {
        &self.inner.upstream_permits
    }

    /// The body-read deadline.
    pub fn body_read_timeout(&self) -> Duration {
        self.inner.body_read_timeout
    }

    /// From now on `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}

/// The whole HTTP application.
///
/// Layers, outermost first: sensitive-header marking, the request log (so every answer below,
/// 429 and 503 included, gets its line and `x-request-id`), CORS (preflights are answered before
/// any limit, and refusals still carry the CORS headers a webview needs to read them), load
/// shedding (the cheapest check, and an overloaded service touches no per-client state), the
/// per-endpoint rate limit, then the handler. Shedding and rate limits sit on the API routes
/// only: `/healthz` and `/readyz` keep answering under overload and are never limited.
pub fn router(state: AppState) -> Router {
    use crate::limits::{self, Limits};
    let limits = Limits::new(&state.settings());
    let rate = |limit: &limits::RateLimit| {
        middleware::from_fn_with_state(limit.clone(), limits::rate_limit)
    };
    let api = Router::new()
        .route(
            "/api/v1/{provider}/token",
            post(token::token).route_layer(rate(&limits.token)),
        )
        .route(
            "/api/v1/{provider}/refresh",
            post(token::refresh).route_layer(rate(&limits.refresh)),
        )
        .route(
            "/api/v1/{provider}/revoke",
            post(token::revoke).route_layer(rate(&limits.revoke)),
        )
        // Relay (issue #16): GET /api/v1/{provider}/authorize and /callback.
        .merge(crate::relay::router())
        .route_layer(middleware::from_fn_with_state(
            limits.shed.clone(),
            limits::load_shed,
        ));
    let hsts = state.settings().server.tls.is_some();
    let mut app = api
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
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
    app.layer(middleware::from_fn(log_request))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// What a handler reports about its request for the log line, carried in response extensions.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Provider name (from config, never from the path as sent).
    pub provider: Option<Arc<ProviderLabel>>,
    /// `token`, `refresh`, …
    pub endpoint: Option<&'static str>,
    /// The `error` code of the response body.
    pub error: Option<String>,
    /// The provider's HTTP status, when it answered.
    pub upstream_status: Option<u16>,
    /// What kind of upstream outcome (`ok`, `timeout`, `5xx`, …).
    pub upstream: Option<&'static str>,
    /// `replay` (answered from the replay cache) or `shared` (waited on an identical request's
    /// provider call); absent when this request made its own call.
    pub served_from: Option<&'static str>,
}

/// One structured line per request. It holds no body, header or query value: only the route
/// template, ids we generated or validated, statuses and codes.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| is_sane_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            let mut buffer = uuid::Uuid::encode_buffer();
            let id = uuid::Uuid::new_v4().simple().encode_lower(&mut buffer);
            HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("invalid"))
        });
    // MatchedPath is reference-counted: cloning it copies no string.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("(unmatched)", MatchedPath::as_str);
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let outcome = response
        .extensions_mut()
        .remove::<Outcome>()
        .unwrap_or_default();
    let id = request_id.to_str().unwrap_or("invalid");
    let elapsed = started.elapsed();
    crate::metrics::record_request(&outcome, route, status, elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id = id,
                method = %method,
                route,
                provider = outcome.provider.as_ref().map(|p| p.name.as_str()),
                endpoint = outcome.endpoint,
                status,
                error = outcome.error.as_deref(),
                upstream = outcome.upstream,
                upstream_status = outcome.upstream_status,
                served_from = outcome.served_from,
                latency_ms,
                "request"
            )
        };
    }
    if route == "/healthz" || route == "/readyz" {
        line!(debug);
    } else {
        line!(info);
    }
    response
        .headers_mut()
        .insert(REQUEST_ID.clone(), request_id);
    response
}

/// Up to 128 characters of `[A-Za-z0-9._:-]`, so a caller cannot inject log syntax.
fn is_sane_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
