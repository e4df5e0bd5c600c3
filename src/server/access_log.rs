//! The per-request log line and `x-request-id`: one structured line per request, written once
//! the response is ready, from the [`Outcome`] each stage left on it.

use crate::reply::{Outcome, REQUEST_ID};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// One structured line per request, and `x-request-id` on every response. It holds no body,
/// header or query value: only the route template, ids we generated or validated, statuses and
/// codes.
///
/// A plain tower layer rather than `axum::middleware::from_fn`: its future is the inner one plus
/// what the line needs, with no box and no copy of the rest of the stack per request.
///
/// The route template comes from axum's [`MatchedPath`], or is fixed when the layer serves one
/// route only ([`AccessLogLayer::route`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogLayer {
    route: Option<&'static str>,
}

impl AccessLogLayer {
    /// The layer of a service that serves `route` (a template, as axum would match it) only.
    pub fn route(route: &'static str) -> Self {
        Self { route: Some(route) }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            route: self.route,
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    route: Option<&'static str>,
}

impl<S> Service<Request> for AccessLog<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
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
        let route = match self.route {
            Some(route) => Route::Fixed(route),
            // MatchedPath is reference-counted: cloning it copies no string.
            None => request
                .extensions()
                .get::<MatchedPath>()
                .cloned()
                .map_or(Route::Unmatched, Route::Matched),
        };
        let line = Line {
            started,
            request_id,
            route,
            method: request.method().clone(),
        };
        AccessLogFuture {
            inner: self.inner.call(request),
            line: Some(line),
        }
    }
}

pin_project! {
    /// The response future of [`AccessLog`]: the inner future, then the line.
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        line: Option<Line>,
    }
}

impl<F> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        if let Some(line) = this.line.take() {
            line.write(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

/// What the line needs from the request, kept until the response is ready.
struct Line {
    started: Instant,
    request_id: HeaderValue,
    route: Route,
    method: Method,
}

/// The route template of the line and the metrics.
enum Route {
    Fixed(&'static str),
    Matched(MatchedPath),
    Unmatched,
}

impl Line {
    /// Writes the line and puts `x-request-id` on the response.
    fn write(self, response: &mut Response) {
        let route = match &self.route {
            Route::Fixed(route) => route,
            Route::Matched(matched) => matched.as_str(),
            Route::Unmatched => "(unmatched)",
        };
        let method = &self.method;
        let status = response.status().as_u16();
        let outcome = response
            .extensions_mut()
            .remove::<Outcome>()
            .unwrap_or_default();
        let id = self.request_id.to_str().unwrap_or("invalid");
        let elapsed = self.started.elapsed();
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
            .insert(REQUEST_ID.clone(), self.request_id);
    }
}

/// Up to 128 characters of `[A-Za-z0-9._:-]`, so a caller cannot inject log syntax.
fn is_sane_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
