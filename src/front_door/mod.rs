//! The front door: what protects the service and the provider before a handler runs.
//!
//! - [`mod@client_ip`]: the client address, `X-Forwarded-For` believed only from trusted proxies;
//! - [`rate`]: per-client-IP token buckets per endpoint, 429 `slow_down` with `Retry-After`;
//! - [`shed`]: a cap on concurrent API requests, 503 `temporarily_unavailable` at once beyond it;
//! - [`cors`]: an exact-origin CORS allowlist for webview clients, off by default.
//!
//! They are tower layers, assembled in [`crate::server::router`]; nothing
//! here is called from a handler. [`Limits::new`] parses the settings once, so the per-request
//! work is a lookup and an atomic operation or two.

pub mod client_ip;
pub mod cors;
pub mod rate;
pub mod shed;

pub use client_ip::TrustedProxies;
pub use rate::RateLimit;
pub use shed::LoadShed;

use crate::config::Settings;
use crate::reply::Endpoint;
use crate::state::SharedState;
use std::sync::Arc;
use tower_http::cors::CorsLayer;

/// Every front-door limit, built once from the settings.
pub struct Limits {
    /// `rate_limit.token`.
    pub token: RateLimit,
    /// `rate_limit.refresh`.
    pub refresh: RateLimit,
    /// `rate_limit.revoke`.
    pub revoke: RateLimit,
    /// `limits.max_concurrent_requests`.
    pub shed: LoadShed,
    /// `server.cors_allowed_origins`; `None` when empty.
    pub cors: Option<CorsLayer>,
}

impl Limits {
    /// Parses the trusted proxies and builds the buckets (also in `shared`, the store replicas
    /// share, when there is one), the slot count and the CORS layer. Call it inside a Tokio
    /// runtime so the rate limiters' sweepers start.
    pub fn new(settings: &Settings, shared: Option<&SharedState>) -> Self {
        let rate = &settings.rate_limit;
        let trusted = Arc::new(TrustedProxies::new(&rate.trusted_proxies));
        let limit = |endpoint, bucket| {
            RateLimit::with_shared(endpoint, bucket, trusted.clone(), shared.cloned())
        };
        Self {
            token: limit(Endpoint::Token, rate.token),
            refresh: limit(Endpoint::Refresh, rate.refresh),
            revoke: limit(Endpoint::Revoke, rate.revoke),
            shed: LoadShed::new(settings.limits.max_concurrent_requests),
            cors: cors::layer(&settings.server.cors_allowed_origins),
        }
    }
}
