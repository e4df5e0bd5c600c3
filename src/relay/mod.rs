//! The stateless loopback authorize relay (issue #16).
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
//! - [`settings`]: [`settings::RelaySettings`] (`[providers.<name>.relay]`) and the validated
//!   [`settings::Relay`];
//! - [`seal`]: key derivation, sealing and opening of the provider `state`, key rotation;
//! - [`target`]: the strict loopback target rule;
//! - [`handlers`]: the two `GET` endpoints and their error page.

pub mod handlers;
pub mod seal;
pub mod settings;
pub mod target;

use crate::config::ProviderSettings;
use crate::routes::AppState;
use axum::routing::get;
use axum::Router;

/// The relay's routes, merged into the API router (so load shedding covers them).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/{provider}/authorize", get(handlers::authorize))
        .route("/api/v1/{provider}/callback", get(handlers::callback))
}

/// The `redirect_uri` values `/token` accepts for a provider: its `allowed_redirect_uris`, plus
/// the relay's `callback_url` when a relay is configured (the relayed code was issued for it).
pub fn redirect_allowlist(provider: &ProviderSettings) -> Vec<String> {
    let mut allowed = provider.allowed_redirect_uris.clone();
    if let Some(relay) = &provider.relay {
        if !allowed.contains(&relay.callback_url) {
            allowed.push(relay.callback_url.clone());
        }
    }
    allowed
}
