//! A desktop app's whole Kick login through kick-oauth-proxy, as the README shows it.
//!
//! Against dev mode (`cargo run --release -- dev` in another terminal):
//!
//! ```sh
//! KICK_AUTHORIZE_URL=http://127.0.0.1:<emulator port>/oauth/authorize \
//!   cargo run -p kick-oauth-client --example desktop_login
//! ```
//! then open the printed URL (the emulator approves at once and redirects to the callback).

use kick_oauth_client::{
    AuthorizeRequest, CallbackListener, Error, FileTokenStore, ProxyClient, Scope, TokenManager,
    KICK_AUTHORIZE_URL,
};
use std::sync::Arc;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let proxy_url = setting("PROXY_URL", "http://127.0.0.1:8080");
    let client_id = setting("KICK_CLIENT_ID", "emulator-client-id");
    let authorize_url = setting("KICK_AUTHORIZE_URL", KICK_AUTHORIZE_URL);
    let token_file = setting("TOKEN_FILE", "kick-tokens.json");

    // One manager for the app's lifetime: it owns the tokens, refreshes them before they expire
    // (less than 10 minutes left) and saves every new set to the file (mode 0600).
    let proxy = ProxyClient::new(proxy_url, "kick")?;
    let manager = TokenManager::builder(proxy, Arc::new(FileTokenStore::new(token_file)))
        .build()
        .await?;

    if manager.current().is_none() {
        // Log in: PKCE + state, the browser, the loopback redirect, the exchange through the proxy.
        let listener = CallbackListener::bind("http://localhost:1420/auth/callback").await?;
        let (url, pending) = AuthorizeRequest::new(client_id, listener.redirect_uri())
            .authorize_url(authorize_url)
            .scopes([Scope::UserRead, Scope::ChannelRead])
            .build()?;
        // In a Tauri app: tauri_plugin_opener::open_url(url.as_str(), None::<&str>)
        println!("Open this URL to log in: {url}");
        let code = listener.wait(&pending).await?;
        manager.complete_login(&code, &pending).await?;
    }

    // Refresh ahead of expiry in the background; live connections follow the watch channel.
    let _refresher = manager.spawn_refresh_task();
    let mut updates = manager.subscribe();
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            match &*updates.borrow() {
                Some(_tokens) => println!("new tokens: reconnect the chat/websocket with them"),
                None => println!("logged out: show the login button"),
            }
        }
    });

    // Whenever the app calls Kick's API:
    match manager.get_token().await {
        Ok(token) => println!(
            "Authorization: Bearer [redacted, {} chars]",
            token.secret().len()
        ),
        Err(e) if e.is_login_required() => println!("The grant is gone: log in again."),
        Err(e) => println!("Kick or the proxy is unavailable, try later: {e}"),
    }
    Ok(())
}
