//! A standard OAuth library, used exactly as its documentation says, works against the proxy: the
//! `oauth2` crate (ramosbugs/oauth2-rs) as a public PKCE client, with the Kick emulator as the
//! authorization server and the proxy's `/token` and `/refresh` as token endpoints (a refresh to
//! either: libraries send theirs to the one token URL they are given).
//!
//! It sends what libraries send (form bodies, `client_id` in the body, `Accept: application/json`)
//! and parses the answer strictly (RFC 6749 §5.1 success, §5.2 errors), so this proves the
//! proxy's responses are standard, not just what `kick-oauth-client` happens to accept.

use kick_oauth_proxy::dev::DevEnvironment;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use std::time::Duration;

const REDIRECT_URI: &str = "http://localhost:1420/auth/callback";

fn http_client() -> reqwest::Client {
    // oauth2's SSRF advice: never follow redirects from a token endpoint.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// Runs the authorize step the way a browser would and returns the code from the redirect,
/// after checking `state` as the oauth2 docs tell the app to.
async fn authorize_with_oauth2(
    env: &DevEnvironment,
    http: &reqwest::Client,
) -> (AuthorizationCode, oauth2::PkceCodeVerifier) {
    let client = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_auth_uri(AuthUrl::new(env.emulator.authorize_url()).expect("auth URL"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect URL"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("user:read".to_owned()))
        .add_scope(Scope::new("channel:read".to_owned()))
        .set_pkce_challenge(challenge)
        .url();

    let answer = http.get(url).send().await.expect("emulator answers");
    assert_eq!(answer.status(), 302);
    let location = answer.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("ASCII Location");
    let location = url::Url::parse(location).expect("callback URL");
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("callback has no {name}"))
    };
    assert_eq!(&param("state"), csrf.secret());
    (AuthorizationCode::new(param("code")), verifier)
}

fn proxy_token_url(env: &DevEnvironment, endpoint: &str) -> TokenUrl {
    TokenUrl::new(format!("{}/api/v1/kick/{endpoint}", env.proxy_url())).expect("token URL")
}

#[tokio::test]
async fn the_oauth2_crate_exchanges_a_code_and_refreshes_through_the_proxy() {
    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("emulator and proxy start");
    let http = http_client();
    let (code, verifier) = authorize_with_oauth2(&env, &http).await;

    // A public client: no secret, the proxy adds it.
    let exchanger = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_auth_uri(AuthUrl::new(env.emulator.authorize_url()).expect("auth URL"))
        .set_token_uri(proxy_token_url(&env, "token"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect URL"));
    let tokens = exchanger
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange succeeds");

    assert!(!tokens.access_token().secret().is_empty());
    assert_eq!(tokens.token_type(), &BasicTokenType::Bearer);
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(7200)));
    let refresh_token = tokens.refresh_token().expect("a refresh token");
    assert!(!refresh_token.secret().is_empty());
    assert_eq!(
        tokens.scopes(),
        Some(&vec![
            Scope::new("user:read".to_owned()),
            Scope::new("channel:read".to_owned()),
        ])
    );

    let refresher = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_token_uri(proxy_token_url(&env, "refresh"));
    let refreshed = refresher
        .exchange_refresh_token(refresh_token)
        .request_async(&http)
        .await
        .expect("the refresh succeeds");

    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    assert_eq!(refreshed.expires_in(), Some(Duration::from_secs(7200)));
    let new_refresh = refreshed.refresh_token().expect("a new refresh token");
    assert_ne!(new_refresh.secret(), refresh_token.secret());

    let stats = env.emulator.stats();
    assert_eq!(stats.authorization_code_grants_ok, 1);
    assert_eq!(stats.refresh_grants_ok, 1);
    env.shutdown().await;
}

#[tokio::test]
async fn the_oauth2_crate_reads_the_proxys_invalid_grant_as_a_standard_error() {
    // Replay off: with it, the identical second exchange would get the first one's tokens back.
    let loopback = "127.0.0.1:0".parse().expect("address");
    let env = DevEnvironment::start_with(loopback, loopback, "[replay]\nwindow_secs = 0\n")
        .await
        .expect("emulator and proxy start");
    let http = http_client();
    let (code, verifier) = authorize_with_oauth2(&env, &http).await;
    let verifier_text = verifier.secret().clone();
    let exchanger = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_token_uri(proxy_token_url(&env, "token"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect URL"));
    exchanger
        .exchange_code(code.clone())
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the first exchange succeeds");

    let replay = exchanger
        .exchange_code(code)
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier_text))
        .request_async(&http)
        .await;

    match replay {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(error.error(), &BasicErrorResponseType::InvalidGrant);
            assert!(error.error_description().is_some());
        }
        other => panic!("expected an invalid_grant error response, got {other:?}"),
    }
    env.shutdown().await;
}

#[tokio::test]
async fn the_oauth2_crate_refreshes_at_the_token_endpoint_with_one_token_url() {
    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("emulator and proxy start");
    let http = http_client();
    let (code, verifier) = authorize_with_oauth2(&env, &http).await;

    // How standard libraries are set up: one token URL for every grant.
    let client = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_auth_uri(AuthUrl::new(env.emulator.authorize_url()).expect("auth URL"))
        .set_token_uri(proxy_token_url(&env, "token"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect URL"));
    let tokens = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange succeeds");
    let refresh_token = tokens.refresh_token().expect("a refresh token");

    // grant_type=refresh_token&refresh_token=… (a form), POSTed to /token.
    let refreshed = client
        .exchange_refresh_token(refresh_token)
        .request_async(&http)
        .await
        .expect("the refresh at /token succeeds");

    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    assert_eq!(refreshed.token_type(), &BasicTokenType::Bearer);
    assert_eq!(refreshed.expires_in(), Some(Duration::from_secs(7200)));
    let new_refresh = refreshed.refresh_token().expect("a new refresh token");
    assert_ne!(new_refresh.secret(), refresh_token.secret());
    let stats = env.emulator.stats();
    assert_eq!(stats.authorization_code_grants_ok, 1);
    assert_eq!(stats.refresh_grants_ok, 1);

    // The same refresh retried at /refresh is the same request: replayed, not refreshed again.
    let retried = BasicClient::new(ClientId::new(env.client.client_id.clone()))
        .set_token_uri(proxy_token_url(&env, "refresh"))
        .exchange_refresh_token(refresh_token)
        .request_async(&http)
        .await
        .expect("the retry at /refresh succeeds");
    assert_eq!(
        retried.access_token().secret(),
        refreshed.access_token().secret()
    );
    assert_eq!(env.emulator.stats().token_requests, stats.token_requests);

    // A grant the proxy does not offer: a standard RFC 6749 §5.2 error, and Kick is not asked.
    let unsupported = client
        .exchange_client_credentials()
        .request_async(&http)
        .await;
    match unsupported {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(error.error(), &BasicErrorResponseType::UnsupportedGrantType);
            assert!(error.error_description().is_some());
        }
        other => panic!("expected an unsupported_grant_type error response, got {other:?}"),
    }
    assert_eq!(env.emulator.stats().token_requests, stats.token_requests);
    env.shutdown().await;
}
