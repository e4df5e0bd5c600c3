//! Probes: `/healthz` (the process runs) and `/readyz` (it can serve; 503 while draining).

use super::state::AppState;
use crate::breaker::Health;
use crate::reply::json_response;
use crate::state::Health as StoreHealth;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

/// `GET /healthz`: 200 while the process runs. Liveness: it checks nothing else on purpose, so a
/// provider outage never makes an orchestrator restart healthy pods.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "probes",
    summary = "Liveness",
    description = "200 while the process runs. It checks nothing else on purpose: a provider \
        outage must not make an orchestrator restart healthy instances. Never rate limited or shed.",
    responses((status = 200, description = "The process runs.", body = Liveness))
)]
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// `GET /readyz`: 200 when the service can take traffic, 503 once shutdown started. The body says
/// how each provider is doing as the circuit breaker sees it; a failing provider does not make the
/// pod unready (every replica would be, and nothing would serve the fast 503s and the recovery
/// probe), it is reported for dashboards and alerts. The same for the shared state store: while
/// it is degraded every replica serves per process, and unready replicas would serve nothing.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "probes",
    summary = "Readiness",
    description = "200 when the service can take traffic, 503 once shutdown started (so load \
        balancers stop sending traffic). Either way the body reports each configured provider as \
        its circuit breaker sees it, and the shared state store (`state`); a failing provider or \
        a degraded store does not make the instance unready (with the store degraded, replay, \
        single-flight and rate limits run per process). Never rate limited or shed.",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness, example = json!({
            "status": "ready",
            "providers": {"kick": {"upstream": "ok"}},
            "state": {"backend": "redis", "status": "ok"}
        })),
        (status = 503, description = "Draining: shutdown started.", body = Readiness, example = json!({
            "status": "draining",
            "providers": {"kick": {"upstream": "failing", "retry_after_secs": 12}},
            "state": {"backend": "redis", "status": "degraded", "retry_after_secs": 2}
        })),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let providers: serde_json::Map<String, serde_json::Value> = state
        .exchange()
        .providers()
        .map(|(name, provider)| {
            let health = match provider.breaker.health() {
                Health::Ok => serde_json::json!({"upstream": "ok"}),
                Health::Failing { retry_after } => serde_json::json!({
                    "upstream": "failing",
                    "retry_after_secs": retry_after.as_secs_f64().ceil() as u64,
                }),
            };
            (name.clone(), health)
        })
        .collect();
    let (status, text) = if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ready")
    };
    let store = match state.exchange().shared() {
        None => serde_json::json!({"backend": "memory", "status": "ok"}),
        Some(shared) => match shared.store().health() {
            StoreHealth::Ok => {
                serde_json::json!({"backend": shared.store().backend(), "status": "ok"})
            }
            StoreHealth::Degraded { retry_after } => serde_json::json!({
                "backend": shared.store().backend(),
                "status": "degraded",
                "retry_after_secs": retry_after.as_secs_f64().ceil() as u64,
            }),
        },
    };
    let body = serde_json::json!({"status": text, "providers": providers, "state": store});
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

// The probe bodies as the OpenAPI document (`super::openapi`) describes them. Documentation only:
// the handlers above build the same JSON directly.

/// `GET /healthz` body.
#[derive(utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: LivenessStatus,
}

/// The liveness status: always `ok`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LivenessStatus {
    /// The process runs.
    Ok,
}

/// `GET /readyz` body.
#[derive(utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` (200) or `draining` (503).
    pub status: ReadinessStatus,
    /// Every configured provider by name (the `{provider}` path segment).
    pub providers: std::collections::BTreeMap<String, ProviderHealth>,
    /// The store replicas share replay, single-flight and rate limits through (`[state]`).
    pub state: StateHealth,
}

/// The shared state store as this instance sees it.
#[derive(utoipa::ToSchema)]
pub struct StateHealth {
    /// `memory` (nothing shared: every mechanism per process) or `redis`.
    pub backend: StateBackend,
    /// `degraded` while the store does not answer: every mechanism runs per process meanwhile,
    /// and the instance stays ready.
    pub status: StateStatus,
    /// While `degraded`: whole seconds until the store is asked again.
    #[schema(required = false, nullable = false, minimum = 0)]
    pub retry_after_secs: Option<u64>,
}

/// Which store.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StateBackend {
    /// Per process.
    Memory,
    /// Redis or Valkey.
    Redis,
}

/// The store's state.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StateStatus {
    /// Answering (always, for `memory`).
    Ok,
    /// Not answering; requests fall back to per-process behaviour.
    Degraded,
}

/// The readiness status.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ReadinessStatus {
    /// Serving (200).
    Ready,
    /// Shutdown started (503).
    Draining,
}

/// A provider as its circuit breaker sees it.
#[derive(utoipa::ToSchema)]
pub struct ProviderHealth {
    /// `failing` while the breaker is open: calls are answered 503 without reaching the provider.
    pub upstream: UpstreamHealth,
    /// While `failing`: whole seconds until the next probe call.
    #[schema(required = false, nullable = false, minimum = 0)]
    pub retry_after_secs: Option<u64>,
}

/// A provider's upstream state.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum UpstreamHealth {
    /// Calls go through.
    Ok,
    /// The breaker is open.
    Failing,
}
