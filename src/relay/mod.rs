//! The stateless loopback authorize relay's building blocks (issue #16).
//!
//! Kick and Twitch compare `redirect_uri` exactly and allow no wildcard port, so a desktop app
//! cannot use an ephemeral loopback port (RFC 8252 §7.3) with them directly. With a relay
//! configured (`[providers.<name>.relay]`), the app opens this proxy's
//! `GET /api/v1/<name>/authorize` with its loopback target; the proxy checks the target, seals it
//! with the app's `state` and an expiry into the `state` it sends the provider, and redirects to
//! the provider with its own `client_id` and its registered `callback_url`. The provider sends the
//! browser back to `GET /api/v1/<name>/callback`, which opens the sealed state and redirects the
//! code to the app's loopback target. The app exchanges it at `/token` with
//! `redirect_uri = callback_url`, which is accepted there automatically. PKCE binds the code to
//! the app that started the flow; the proxy stores nothing, so any replica serves any step.
//!
//! # Layout
//! - [`seal`]: key derivation, sealing and opening of the provider `state`, key rotation;
//! - [`target`]: the strict loopback target rule;
//! - the settings, `[providers.<name>.relay]`: `crate::config::relay`;
//! - the two `GET` endpoints and their error page: `crate::api::relay`.

pub mod seal;
pub mod target;
