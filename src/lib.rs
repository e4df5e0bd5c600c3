//! kick-oauth-proxy: a hardened OAuth token-exchange service for desktop apps.
//!
//! Kick's OAuth 2.1 server requires `client_secret` on its token endpoint even with PKCE, and a
//! desktop app cannot keep a secret. The app sends its authorization code (or refresh token) here;
//! the proxy checks it, adds the client credentials, calls the provider once, and returns the tokens.
//! The HTTP and operator contract is in the README.
//!
//! # Layout
//!
//! The request path, in the order a `POST /api/v1/{provider}/token` meets it; each module imports
//! only from the ones after it:
//! - [`server`]: start-up, the listeners and their connection rules (header cap, deadlines,
//!   connection cap, TLS), the router, the per-request log line, SIGHUP reload and draining;
//! - [`front_door`]: client IP, CORS, load shedding, per-IP rate limits: what protects the service
//!   before a handler runs;
//! - [`api`]: the one body extractor, the input rules, the handlers, the probes and the OpenAPI
//!   document;
//! - [`exchange`]: `redeem()`, replay → single-flight → one provider call under the upstream cap
//!   and the breaker → the reply; the seam a shared store plugs into;
//! - [`upstream`]: the provider's endpoints: client, transport, the one classification of
//!   outcomes, the next-secret fallback;
//! - [`providers`]: the presets as data (endpoints, revocation shape, error dialect, redirect
//!   rule).
//!
//! Beside it, the relay: [`api::relay`] serves `GET …/authorize` and `GET …/callback` (the stateless
//! loopback authorize relay), with [`relay`] (sealing the provider `state`, the loopback target
//! rule) and `config::relay` (its settings) below.
//!
//! Shared below them all:
//! - [`reply`]: endpoint, outcome, [`reply::ApiError`] and the one place errors become JSON;
//! - [`oauth`]: RFC 6749 error codes, the normalised token response, description sanitising;
//! - [`secret`]: newtypes that never print their value;
//! - [`breaker`]: the one circuit breaker, per provider and for the shared store;
//! - [`state`]: the store replicas share (Redis/Valkey) for replay, single-flight and rate
//!   limits, failing open to the per-process mechanisms; below `front_door` and `exchange`,
//!   which consult it.
//!
//! Running it:
//! - [`config`]: typed settings from TOML + `KICK_PROXY_*` env, validated at start-up;
//! - [`telemetry`]: JSON/text logs with dependency output capped;
//! - [`metrics`]: Prometheus metrics for the admin listener;
//! - [`cli`]: `serve`, `check-config` and `healthcheck`; with the default `dev-tools` feature
//!   also `dev` (emulator + proxy + self-check login), `login` (the desktop flow from a terminal)
//!   and `emulator` (the Kick emulator alone, as a mock OAuth server).

pub mod api;
mod breaker;
pub mod cli;
pub mod config;
mod error_chain;
mod exchange;
mod front_door;
mod metrics;
pub mod oauth;
mod providers;
pub mod relay;
pub mod reply;
pub mod secret;
pub mod server;
pub mod state;
pub mod telemetry;
mod upstream;
