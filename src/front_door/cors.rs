//! CORS for webview clients: off unless `server.cors_allowed_origins` lists origins.
//!
//! Native apps do not send `Origin` and need no CORS. A webview (Tauri, Electron) calling the
//! proxy with `fetch()` does; only the exact origins listed may read the answers. No credentials
//! (cookies) are involved, so `Access-Control-Allow-Credentials` is never sent.

use axum::http::{header, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins` (validated exact origins), or `None` when the list is empty: then
/// no `Access-Control-*` header is ever sent and an `OPTIONS` preflight is 405 like any other
/// unsupported method.
///
/// With a list, the layer answers every `OPTIONS` request itself (200, with the allow headers only
/// for a listed origin), allows `POST` with `Content-Type` and `X-Request-Id`, and exposes
/// `X-Request-Id` to scripts.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let request_id = crate::reply::REQUEST_ID.clone();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST])
            .allow_headers([header::CONTENT_TYPE, request_id.clone()])
            .expose_headers([request_id])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
