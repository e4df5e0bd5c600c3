//! Probes: `/healthz` (the process runs) and `/readyz` (it can serve; 503 while draining).

use super::AppState;
use crate::error::json_response;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

/// `GET /healthz`: 200 while the process runs. Liveness: it checks nothing else on purpose, so a
/// provider outage never makes an orchestrator restart healthy pods.
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// `GET /readyz`: 200 when the service can take traffic, 503 once shutdown started.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"draining"}"#.to_vec(),
        )
    } else {
        json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec())
    }
}
