//! kick-oauth-proxy: a hardened OAuth token-exchange service for desktop apps.
//!
//! Kick's OAuth 2.1 server requires `client_secret` on its token endpoint even with PKCE, and a
//! desktop app cannot keep a secret. The app sends its authorization code (or refresh token) here;
//! the proxy checks it, adds the client credentials, calls the provider once, and returns the tokens.
//! The HTTP and operator contract is in the README.
//!
//! # Layout
//! - [`config`]: typed settings from TOML + `KICK_PROXY_*` env, validated at start-up;
//! - [`startup`]: [`startup::Application`] binds the public and admin listeners, drains on
//!   SIGTERM, reloads on SIGHUP;
//! - [`listener`]: one way of serving a connection on every listener: header cap, header
//!   deadline, connection cap with the longest-idle connection closed first, optional TLS;
//! - [`routes`]: the router, handlers, input rules, per-request log line;
//! - [`limits`]: the front door: client IP, per-IP rate limits, load shedding, CORS;
//! - [`upstream`]: the provider's token endpoint, deadline, body cap, outcome classification,
//!   the next-secret fallback, and the per-provider circuit breaker;
//! - [`replay`]: encrypted idempotent replay and single-flight for exchanges and refreshes;
//! - [`state`]: the store replicas share (Redis/Valkey) for replay, single-flight and rate
//!   limits, failing open to the per-process mechanisms;
//! - [`metrics`]: Prometheus metrics for the admin listener;
//! - [`tls`]: TLS termination with a reloadable certificate;
//! - [`oauth`]: RFC 6749 error codes and the normalised token response;
//! - [`error`]: [`error::ApiError`], the one error type, rendered as the contract's JSON;
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the handlers' annotations, served at
//!   `GET /api/v1/openapi.json` and committed as `openapi.json`;
//! - [`secret`]: newtypes that never print their value;
//! - [`telemetry`]: JSON/text logs with dependency output capped;
//! - [`dev`]: `dev` mode, the emulator and the proxy on loopback with a self-check login;
//! - [`login`]: `login`, the desktop flow from a terminal through the client crate;
//! - [`cli`]: `serve`, `dev`, `login`, `check-config` and `healthcheck`.

pub mod cli;
pub mod config;
pub mod dev;
pub mod error;
pub mod limits;
pub mod listener;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod replay;
pub mod routes;
pub mod secret;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod upstream;
