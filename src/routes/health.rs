//! Probes: `/healthz` (the process runs) and `/readyz` (it can serve; 503 while draining).

use super::AppState;
use crate::error::json_response;
use crate::upstream::breaker::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

/// `GET /healthz`: 200 while the process runs. Liveness: it checks nothing else on purpose, so a
/// provider outage never makes an orchestrator restart healthy pods.
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// `GET /readyz`: 200 when the service can take traffic, 503 once shutdown started. The body says
/// how each provider is doing as the circuit breaker sees it; a failing provider does not make the
/// pod unready (every replica would be, and nothing would serve the fast 503s and the recovery
/// probe), it is reported for dashboards and alerts.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let providers: serde_json::Map<String, serde_json::Value> = state
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
    let body = serde_json::json!({"status": text, "providers": providers});
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}
