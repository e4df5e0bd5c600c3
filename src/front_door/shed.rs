//! Load shedding: at most `limits.max_concurrent_requests` API requests in the service at once.
//!
//! Past the cap a request is answered 503 `temporarily_unavailable` ([`ApiError::Overloaded`])
//! with `Retry-After: 1` at once, without waiting for a slot: queueing would only turn an overload into timeouts for
//! everyone, and hold sockets and memory while doing it. A client retrying after a second finds
//! room as soon as slow requests (a hanging provider) finish. Probes are not behind this layer.

use crate::reply::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::Semaphore;

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
        return ApiError::Overloaded.into_response();
    };
    next.run(request).await
}
