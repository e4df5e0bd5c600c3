//! Refresh rotation with grace, revocation, introspection, and the whole flow end to end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kick_emulator::EmulatorConfig;

use crate::helpers::*;

#[tokio::test]
async fn full_flow_authorize_exchange_refresh_revoke() {
    let t = spawn().await;
    let first = t.login().await;
    assert_eq!(t.introspect(&first.access_token).await["active"], true);

    let second: Tokens = t
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .expect("refreshed tokens");
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.scope, SCOPE);
    assert_eq!(second.expires_in, 7200);
    assert_eq!(t.introspect(&second.access_token).await["active"], true);

    let revoked = t.revoke(&second.refresh_token, "refresh_token").await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(revoked.text().await.expect("body"), "OK");
    assert_eq!(t.introspect(&second.access_token).await["active"], false);
    expect_error(t.refresh(&second.refresh_token).await, 400, "invalid_grant").await;

    let stats = t.kick.stats();
    assert_eq!(stats.authorization_code_grants_ok, 1);
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.revocations, 1);
    assert_eq!(stats.revocations_of_known_tokens, 1);
    assert_eq!(stats.token_requests, 3);
    assert_eq!(stats.token_errors, 1);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_works_only_inside_the_grace_window() {
    let t = spawn().await;
    let first = t.login().await;
    let second: Tokens = t
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .expect("tokens");

    t.kick.advance_clock(Duration::from_secs(30));
    let within = t.refresh(&first.refresh_token).await;
    assert_eq!(
        within.status(),
        200,
        "old refresh token inside the grace window"
    );
    let third: Tokens = within.json().await.expect("tokens");
    assert_ne!(third.refresh_token, second.refresh_token);

    t.kick.advance_clock(Duration::from_secs(31));
    let body = expect_error(t.refresh(&first.refresh_token).await, 400, "invalid_grant").await;
    assert_eq!(body.error_description, INVALID_GRANT);
    // The tokens it produced are unaffected.
    assert_eq!(t.refresh(&second.refresh_token).await.status(), 200);
    assert_eq!(t.refresh(&third.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn with_zero_grace_the_old_refresh_token_dies_at_once() {
    let t = spawn_with(EmulatorConfig {
        refresh_grace: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await;
    let first = t.login().await;
    assert_eq!(t.refresh(&first.refresh_token).await.status(), 200);
    expect_error(t.refresh(&first.refresh_token).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_retires_the_previous_access_token() {
    let t = spawn().await;
    let first = t.login().await;
    let second: Tokens = t
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .expect("tokens");
    assert_eq!(t.introspect(&first.access_token).await["active"], false);
    assert_eq!(t.introspect(&second.access_token).await["active"], true);
}

#[tokio::test]
async fn a_refresh_token_expires_after_refresh_token_ttl() {
    let t = spawn_with(EmulatorConfig {
        refresh_token_ttl: Duration::from_secs(3600),
        ..EmulatorConfig::default()
    })
    .await;
    let tokens = t.login().await;
    t.kick.advance_clock(Duration::from_secs(3600));
    expect_error(t.refresh(&tokens.refresh_token).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_invalid_grant() {
    let t = spawn().await;
    expect_error(t.refresh("NOPE").await, 400, "invalid_grant").await;
    expect_error(t.refresh("").await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_the_access_token_also_kills_the_refresh_token() {
    let t = spawn().await;
    let tokens = t.login().await;
    assert_eq!(
        t.revoke(&tokens.access_token, "access_token")
            .await
            .status(),
        200
    );
    assert_eq!(t.introspect(&tokens.access_token).await["active"], false);
    expect_error(t.refresh(&tokens.refresh_token).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_with_a_wrong_hint_still_finds_the_token() {
    let t = spawn().await;
    let tokens = t.login().await;
    assert_eq!(
        t.revoke(&tokens.refresh_token, "access_token")
            .await
            .status(),
        200
    );
    expect_error(t.refresh(&tokens.refresh_token).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_an_unknown_token_is_200_ok() {
    let t = spawn().await;
    let response = t.revoke("UNKNOWNTOKEN", "refresh_token").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "OK");
    let stats = t.kick.stats();
    assert_eq!(stats.revocations, 1);
    assert_eq!(stats.revocations_of_known_tokens, 0);
}

#[tokio::test]
async fn revoke_reads_the_query_string_not_the_body() {
    let t = spawn().await;
    let tokens = t.login().await;
    let response = t
        .http
        .post(t.kick.revoke_url())
        .form(&[("token", tokens.refresh_token.as_str())])
        .send()
        .await
        .expect("answer");
    expect_error(response, 400, "invalid_request").await;
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn introspect_reports_client_scope_and_expiry_of_an_active_token() {
    let t = spawn().await;
    let tokens = t.login().await;
    let data = t.introspect(&tokens.access_token).await;
    assert_eq!(data["active"], true);
    assert_eq!(data["client_id"], CLIENT_ID);
    assert_eq!(data["scope"], SCOPE);
    assert_eq!(data["token_type"], "user");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let exp = data["exp"].as_u64().expect("exp is a number");
    assert!(
        (now + 7190..=now + 7210).contains(&exp),
        "exp {exp}, now {now}"
    );
}

#[tokio::test]
async fn introspect_reports_inactive_after_expiry_and_for_unknown_tokens() {
    let t = spawn().await;
    let tokens = t.login().await;
    t.kick.advance_clock(Duration::from_secs(7200));
    assert_eq!(
        t.introspect(&tokens.access_token).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        t.introspect("UNKNOWN").await,
        serde_json::json!({"active": false})
    );
    // The refresh token outlives the access token.
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn introspect_without_a_bearer_token_is_401() {
    let t = spawn().await;
    let response = t
        .http
        .post(t.kick.introspect_url())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"data": {}, "message": "Unauthorized"})
    );
    assert_eq!(t.kick.stats().introspect_requests, 1);
}

#[tokio::test]
async fn redirect_uri_is_optional_at_the_token_endpoint_when_authorize_omitted_it() {
    let t = spawn_with(EmulatorConfig {
        clients: vec![kick_emulator::RegisteredClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![APP_REDIRECT.into()],
        }],
        ..EmulatorConfig::default()
    })
    .await;
    let response = t.authorize_with(&[("redirect_uri", "")]).await;
    let (base, params) = redirect_query(&response);
    assert_eq!(base, APP_REDIRECT);
    let response = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn debug_output_of_the_handle_shows_no_credentials() {
    let t = spawn().await;
    let tokens = t.login().await;
    let shown = format!("{:?}", t.kick);
    assert!(shown.contains(&t.kick.base_url()), "{shown}");
    assert!(!shown.contains(&tokens.access_token));
    assert!(!shown.contains(CLIENT_SECRET));
}
