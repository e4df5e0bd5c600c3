//! The desktop side of logging in to Kick through [kick-oauth-proxy]: PKCE, the browser redirect,
//! the code exchange, and refresh-before-expiry, so desktop apps (e.g. Tauri apps such as
//! TeamBattles' Battles Record) stop hand-rolling them.
//!
//! Kick's OAuth 2.1 server wants a `client_secret` even with PKCE (RFC 7636), which a desktop app
//! cannot keep. The app therefore talks to Kick's authorization page directly, but sends the code
//! and refresh token to the proxy, which adds the secret. This crate does the app's half:
//!
//! 1. generate a PKCE verifier and a `state`, and build the authorization URL (RFC 6749 §4.1.1);
//! 2. receive the redirect: a loopback listener (RFC 8252 §7.3) or a deep link (RFC 8252 §7.1),
//!    checking `state` (RFC 6749 §10.12);
//! 3. exchange the code through the proxy (RFC 6749 §4.1.3);
//! 4. keep the tokens: stored, refreshed when less than 10 minutes remain (RFC 6749 §6), shared with
//!    the rest of the app.
//!
//! # Layout
//! - [`pkce`]: [`PkceVerifier`] generation and the `S256` challenge (RFC 7636).
//! - [`authorize`]: [`AuthorizeRequest`] builds Kick's authorization URL; [`PendingLogin`] remembers
//!   the state and verifier; [`Scope`] lists Kick's scopes.
//! - [`callback`]: [`CallbackListener`], the one-shot loopback HTTP listener, and
//!   [`parse_callback_url`] for deep links.
//! - [`proxy`]: [`ProxyClient`] for the proxy's `/token`, `/refresh` and `/revoke`, with safe retries.
//! - [`relay`]: [`RelayAuthorizeRequest`], a login through the proxy's authorize relay on an
//!   ephemeral loopback port, for providers that compare redirect URIs exactly (Kick, Twitch).
//! - [`tokens`]: [`TokenSet`] and the secret newtypes [`AccessToken`], [`RefreshToken`],
//!   [`AuthorizationCode`] (`Debug` shows `[redacted]`; the value is reached through `.secret()`).
//! - [`store`]: [`TokenStore`] with [`FileTokenStore`] (atomic, `0600`) and [`MemoryTokenStore`].
//! - [`manager`]: [`TokenManager`] hands out valid tokens, refreshing once at a time.
//! - [`clock`]: [`Clock`], with [`SystemClock`] and the test [`ManualClock`].
//! - [`Error`]: one error type; [`Error::GrantInvalid`]/[`Error::LoginRequired`] mean "log in again",
//!   [`Error::Temporary`] means "try later".
//!
//! # Example
//!
//! A complete login with the loopback redirect, then API calls with an always-fresh token:
//!
//! ```no_run
//! use std::sync::Arc;
//! use kick_oauth_client::{
//!     AuthorizeRequest, CallbackListener, Error, FileTokenStore, ProxyClient, Scope, TokenManager,
//! };
//!
//! # async fn open_browser(_url: &str) {}
//! # async fn run() -> Result<(), Error> {
//! // Once at start-up.
//! let proxy = ProxyClient::new("https://teambattles.gg", "kick")?;
//! let store = Arc::new(FileTokenStore::new("/home/me/.local/share/battles-record/kick.json"));
//! let manager = TokenManager::builder(proxy, store).build().await?;
//! let _refresher = manager.spawn_refresh_task(); // keep it alive as long as the app runs
//!
//! if manager.current().is_none() {
//!     // The redirect URI must be byte-for-byte one of the proxy's allowed_redirect_uris.
//!     let listener = CallbackListener::bind("http://localhost:1420/auth/callback").await?;
//!     let (url, pending) = AuthorizeRequest::new("01KCLIENTID", listener.redirect_uri())
//!         .scopes([Scope::UserRead, Scope::ChannelRead, Scope::ChatWrite])
//!         .build()?;
//!     open_browser(url.as_str()).await;
//!     let code = listener.wait(&pending).await?; // checks `state`, shows "you can close this window"
//!     manager.complete_login(&code, &pending).await?; // exchange through the proxy, save, publish
//! }
//!
//! // Whenever the app calls Kick's API:
//! match manager.get_token().await {
//!     Ok(token) => {
//!         let _header = format!("Bearer {}", token.secret());
//!     }
//!     Err(e) if e.is_login_required() => { /* show the login button again */ }
//!     Err(e) => eprintln!("Kick is unreachable for now: {e}"),
//! }
//!
//! // Other parts of the app can follow the tokens (None = logged out).
//! let mut updates = manager.subscribe();
//! tokio::spawn(async move {
//!     while updates.changed().await.is_ok() {
//!         let logged_in = updates.borrow().is_some();
//!         println!("logged in: {logged_in}");
//!     }
//! });
//! # Ok(())
//! # }
//! ```
//!
//! With a deep link (`battles-record://oauth/callback`) instead of a loopback listener, build the
//! request with that redirect URI and pass the URL the OS hands over to [`parse_callback_url`].
//!
//! Secrets never reach logs: the secret types print `[redacted]`, and this crate's `tracing` events
//! carry statuses, timings and error codes only.
//!
//! [kick-oauth-proxy]: https://teambattles.gg/api/v1/kick/

pub mod authorize;
pub mod callback;
pub mod clock;
mod error;
pub mod manager;
pub mod pkce;
pub mod proxy;
mod random;
pub mod relay;
pub mod store;
pub mod tokens;

pub use authorize::{AuthorizeRequest, CsrfState, PendingLogin, Scope, KICK_AUTHORIZE_URL};
pub use callback::{parse_callback_url, CallbackListener};
pub use clock::{BoxFuture, Clock, ManualClock, SystemClock};
pub use error::{Error, OAuthErrorCode, TemporaryKind};
pub use manager::{RefreshTask, TokenManager, TokenManagerBuilder};
pub use pkce::PkceVerifier;
pub use proxy::{ProxyClient, ProxyClientBuilder, RetryPolicy, TokenTypeHint};
pub use relay::{RelayAuthorizeRequest, RELAY_LOOPBACK_TARGET};
pub use store::{FileTokenStore, MemoryTokenStore, TokenStore};
pub use tokens::{AccessToken, AuthorizationCode, RefreshToken, TokenResponse, TokenSet};
