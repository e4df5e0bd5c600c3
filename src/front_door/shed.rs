//! Load shedding: at most `limits.max_concurrent_requests` API requests in the service at once.
//!
//! Past the cap a request is answered 503 `temporarily_unavailable` ([`ApiError::Overloaded`])
//! with `Retry-After: 1` at once, without waiting for a slot: queueing would only turn an overload into timeouts for
//! everyone, and hold sockets and memory while doing it. A client retrying after a second finds
//! room as soon as slow requests (a hanging provider) finish. Probes are not behind this layer.

use crate::reply::ApiError;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::response::Response;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

/// The shared slot count; as a [`Layer`], the load-shedding middleware. Cheap to clone.
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

impl<S> Layer<S> for LoadShed {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            slots: Arc::clone(&self.slots),
            inner,
        }
    }
}

/// Middleware: take a slot for the whole time the inner service takes to produce the response,
/// or answer 503 immediately. A plain tower service: no box per request.
#[derive(Clone, Debug)]
pub struct Shed<S> {
    slots: Arc<Semaphore>,
    inner: S,
}

impl<S> Service<Request> for Shed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // `try_acquire`, never `acquire`: waiting for a slot is the queueing this layer exists to
        // avoid.
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => ShedFuture::Admitted {
                inner: self.inner.call(request),
                slot: Some(slot),
            },
            Err(_) => ShedFuture::Refused {
                response: Some(ApiError::Overloaded.into_response()),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Shed`].
    #[project = ShedProjection]
    pub enum ShedFuture<F> {
        /// Holding a slot until the inner service has answered.
        Admitted {
            #[pin]
            inner: F,
            slot: Option<OwnedSemaphorePermit>,
        },
        /// 503, at once.
        Refused { response: Option<Response> },
    }
}

impl<F> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedProjection::Admitted { inner, slot } => {
                let response = ready!(inner.poll(cx));
                // The slot is free as soon as the answer exists, as before it is written out.
                slot.take();
                Poll::Ready(response)
            }
            ShedProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}
