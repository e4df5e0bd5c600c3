//! Load shedding: at most `limits.max_concurrent_requests` API requests in the service at once.
//!
//! Past the cap a request is answered 503 `temporarily_unavailable` with `Retry-After: 1` at
//! once, without waiting for a slot: queueing would only turn an overload into timeouts for
//! everyone, and hold sockets and memory while doing it. A client retrying after a second finds
//! room as soon as slow requests (a hanging provider) finish. Probes are not behind this layer.

use crate::error::json_response;
use crate::routes::Outcome;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The body of the 503 (RFC 6749 §4.1.2.1 names `temporarily_unavailable`).
const BODY: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The service is overloaded; retry after 1 second."}"#;

/// The shared slot count, the state of the [`load_shed`] middleware. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LoadShed {
    slots: Arc<Semaphore>,
}

impl LoadShed {
    /// Room for `max_concurrent` requests at once (at least 1).
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(
                max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
            )),
        }
    }
}

/// Middleware: take a slot for the whole time the inner service takes to produce the response,
/// or answer 503 immediately.
pub async fn load_shed(State(shed): State<LoadShed>, request: Request, next: Next) -> Response {
    // `try_acquire`, never `acquire`: waiting for a slot is the queueing this layer exists to avoid.
    let Ok(_slot) = shed.slots.try_acquire() else {
        return overloaded();
    };
    next.run(request).await
}

fn overloaded() -> Response {
    let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, BODY.to_vec());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response.extensions_mut().insert(Outcome {
        error: Some("temporarily_unavailable".to_owned()),
        ..Outcome::default()
    });
    response
}
