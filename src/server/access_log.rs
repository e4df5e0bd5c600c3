//! The per-request log line and `x-request-id`: one structured line per request, written once
//! the response is ready, from the [`Outcome`] each stage left on it.

use crate::reply::{Outcome, REQUEST_ID};
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// One structured line per request. It holds no body, header or query value: only the route
/// template, ids we generated or validated, statuses and codes.
pub async fn log_request(request: Request, next: Next) -> Response {
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
