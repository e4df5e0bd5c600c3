use std::sync::Arc;
use std::time::Duration;

use kick_oauth_client::{
    AuthorizeRequest, CallbackListener, FileTokenStore, RefreshToken, Scope, TokenManager,
    TokenStore,
};
use serde_json::json;
use wiremock::matchers::{body_json, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{proxy_for, token_body};

/// The whole desktop flow: loopback listener, authorization URL, browser redirect, exchange through
/// the proxy, tokens on disk, then a restart that picks them up.
#[tokio::test]
async fn full_login_with_loopback_redirect_stores_tokens_that_survive_a_restart() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kick.json");

    let listener = CallbackListener::bind("http://127.0.0.1:0/auth/callback")
        .await
        .expect("bind")
        .timeout(Duration::from_secs(10));
    let redirect_uri = listener.redirect_uri().to_owned();
    let (url, pending) = AuthorizeRequest::new("01KCLIENT", &redirect_uri)
        .scopes([Scope::UserRead, Scope::ChatWrite])
        .build()
        .expect("url");

    // What the app must send to the proxy: the code, this login's verifier and the same redirect URI.
    Mock::given(path("/api/v1/kick/token"))
        .and(body_json(json!({
            "code": "code-from-kick",
            "code_verifier": pending.verifier().secret(),
            "redirect_uri": redirect_uri,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(
            "acc-1",
            Some("ref-1"),
            7200,
        )))
        .expect(1)
        .mount(&server)
        .await;

    // The "browser": Kick redirects back with the code and the state from the URL.
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state in URL");
    let challenge = url
        .query_pairs()
        .find(|(k, _)| k == "code_challenge")
        .map(|(_, v)| v.into_owned())
        .expect("challenge in URL");
    assert_eq!(challenge, pending.verifier().challenge_s256());
    let browser = tokio::spawn(async move {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("{redirect_uri}?code=code-from-kick&state={state}"))
            .send()
            .await
            .expect("listener answers")
            .text()
            .await
            .expect("page")
    });

    let code = listener.wait(&pending).await.expect("code received");
    assert!(browser
        .await
        .expect("no panic")
        .contains("You can close this window"));

    let store = Arc::new(FileTokenStore::new(&file));
    let manager = TokenManager::builder(proxy_for(&server), store.clone())
        .build()
        .await
        .expect("manager");
    let tokens = manager
        .complete_login(&code, &pending)
        .await
        .expect("exchanged");
    assert_eq!(tokens.access_token.secret(), "acc-1");
    assert_eq!(manager.get_token().await.expect("token").secret(), "acc-1");

    // Restart: a new manager reads the file.
    let restarted = TokenManager::builder(proxy_for(&server), Arc::new(FileTokenStore::new(&file)))
        .build()
        .await
        .expect("manager");
    let loaded = restarted.current().expect("still logged in after restart");
    assert_eq!(
        loaded.refresh_token.as_ref().map(RefreshToken::secret),
        Some("ref-1")
    );
    assert_eq!(loaded.expires_at, tokens.expires_at);
    assert!(store.load().await.expect("readable").is_some());
}
