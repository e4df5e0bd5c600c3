//! `POST /oauth/token`: the authorization code grant, client authentication, request shape.

use std::time::Duration;

use kick_emulator::EmulatorConfig;

use crate::helpers::*;

fn is_kick_token(token: &str) -> bool {
    token.len() == 48
        && token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[tokio::test]
async fn code_exchange_returns_kicks_token_shape_and_headers() {
    let t = spawn().await;
    let code = t.code().await;
    let response = t.exchange(&code, VERIFIER, DEV_REDIRECT).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json;charset=UTF-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    let text = response.text().await.expect("body");
    assert!(
        text.starts_with(r#"{"access_token":""#),
        "fields in Kick's order: {}",
        text.len()
    );
    let tokens: Tokens = serde_json::from_str(&text).expect("exactly Kick's fields");
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 7200);
    assert_eq!(tokens.scope, SCOPE);
    assert!(is_kick_token(&tokens.access_token));
    assert!(is_kick_token(&tokens.refresh_token));
    assert_ne!(tokens.access_token, tokens.refresh_token);
    let stats = t.kick.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.authorization_code_grants_ok, 1);
}

#[tokio::test]
async fn code_exchange_works_for_the_custom_scheme_redirect() {
    let t = spawn().await;
    let response = t.authorize_with(&[("redirect_uri", APP_REDIRECT)]).await;
    let (_, params) = redirect_query(&response);
    let response = t.exchange(&params["code"], VERIFIER, APP_REDIRECT).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_code_cannot_be_used_twice_and_the_replay_revokes_its_tokens() {
    let t = spawn().await;
    let code = t.code().await;
    let first: Tokens = t
        .exchange(&code, VERIFIER, DEV_REDIRECT)
        .await
        .json()
        .await
        .expect("tokens");
    let replay = t.exchange(&code, VERIFIER, DEV_REDIRECT).await;
    let body = expect_error(replay, 400, "invalid_grant").await;
    assert_eq!(
        body.error_description,
        format!("{INVALID_GRANT} The authorization code has already been used.")
    );
    // fosite revokes everything the code produced.
    assert_eq!(t.introspect(&first.access_token).await["active"], false);
    expect_error(t.refresh(&first.refresh_token).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_wrong_verifier_is_invalid_grant_and_burns_the_code() {
    let t = spawn().await;
    let code = t.code().await;
    let body = expect_error(
        t.exchange(&code, OTHER_VERIFIER, DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(body
        .error_description
        .ends_with("The PKCE code challenge did not match the code verifier."));
    // The right verifier is too late now.
    expect_error(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(t.kick.stats().authorization_code_grants_ok, 0);
}

#[tokio::test]
async fn a_malformed_verifier_is_invalid_grant() {
    let t = spawn().await;
    let code = t.code().await;
    let body = expect_error(
        t.exchange(&code, "too-short", DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(body.error_description.contains("at least 43 characters"));
}

#[tokio::test]
async fn a_different_redirect_uri_is_invalid_grant_and_keeps_the_code() {
    let t = spawn().await;
    let code = t.code().await;
    let body = expect_error(
        t.exchange(&code, VERIFIER, APP_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(body.error_description.ends_with(
        "The 'redirect_uri' from this request does not match the one from the authorize request."
    ));
    assert_eq!(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await.status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_code_is_invalid_grant_with_fosites_wording() {
    let t = spawn().await;
    let body = expect_error(
        t.exchange("NOTACODE", VERIFIER, DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(body.error_description, INVALID_GRANT);
}

#[tokio::test]
async fn a_code_expires_after_code_ttl() {
    let t = spawn().await;
    let code = t.code().await;
    t.kick.advance_clock(Duration::from_secs(10 * 60));
    let body = expect_error(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(body
        .error_description
        .contains("Authorize code expired at '"));
}

#[tokio::test]
async fn a_code_is_still_valid_just_before_code_ttl() {
    let t = spawn_with(EmulatorConfig {
        code_ttl: Duration::from_secs(30),
        ..EmulatorConfig::default()
    })
    .await;
    let code = t.code().await;
    t.kick.advance_clock(Duration::from_secs(25));
    assert_eq!(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await.status(),
        200
    );
}

#[tokio::test]
async fn a_wrong_or_missing_client_secret_is_401_invalid_client() {
    let t = spawn().await;
    let code = t.code().await;
    for secret in ["wrong-secret", ""] {
        let response = t
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", CLIENT_ID),
                ("client_secret", secret),
                ("redirect_uri", DEV_REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body = expect_error(response, 401, "invalid_client").await;
        assert!(body
            .error_description
            .starts_with("Client authentication failed"));
    }
    // Failed client authentication does not touch the code.
    assert_eq!(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await.status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_client_is_401_invalid_client() {
    let t = spawn().await;
    let response = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "X"),
            ("client_id", "someone-else"),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    expect_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn basic_authentication_is_refused_because_clients_use_client_secret_post() {
    let t = spawn().await;
    let response = t
        .http
        .post(t.kick.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "X")])
        .send()
        .await
        .expect("answer");
    let body = expect_error(response, 401, "invalid_client").await;
    assert!(body.error_description.contains("'client_secret_post'"));
}

#[tokio::test]
async fn a_missing_client_id_is_invalid_request() {
    let t = spawn().await;
    let response = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", "X")])
        .await;
    let body = expect_error(response, 400, "invalid_request").await;
    assert!(body
        .error_description
        .contains("Client credentials missing"));
}

#[tokio::test]
async fn a_json_body_is_invalid_request() {
    let t = spawn().await;
    let response = t
        .http
        .post(t.kick.token_url())
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"grant_type":"refresh_token","refresh_token":"X","client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}"}}"#
        ))
        .send()
        .await
        .expect("answer");
    let body = expect_error(response, 400, "invalid_request").await;
    assert!(body
        .error_description
        .ends_with("The POST body can not be empty."));
}

#[tokio::test]
async fn a_form_with_charset_is_accepted() {
    let t = spawn().await;
    let code = t.code().await;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", DEV_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .finish();
    let response = t
        .http
        .post(t.kick.token_url())
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_missing_grant_type_is_invalid_request() {
    let t = spawn().await;
    let response = t
        .token(&[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .await;
    let body = expect_error(response, 400, "invalid_request").await;
    assert!(body.error_description.contains("'grant_type' is missing"));
}

#[tokio::test]
async fn other_grant_types_are_unsupported_grant_type() {
    let t = spawn().await;
    for grant in [
        "client_credentials",
        "password",
        "authorization_code refresh_token",
    ] {
        let response = t
            .token(&[
                ("grant_type", grant),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .await;
        expect_error(response, 400, "unsupported_grant_type").await;
    }
    assert_eq!(t.kick.stats().token_errors, 3);
}

#[tokio::test]
async fn get_on_the_token_endpoint_is_invalid_request() {
    let t = spawn().await;
    let response = t.http.get(t.kick.token_url()).send().await.expect("answer");
    let body = expect_error(response, 400, "invalid_request").await;
    assert!(body.error_description.contains("expected 'POST'"));
}

#[tokio::test]
async fn a_code_issued_to_another_client_is_invalid_grant() {
    let mut config = EmulatorConfig::default();
    config.clients.push(kick_emulator::RegisteredClient {
        client_id: "second-client".into(),
        client_secret: "second-secret".into(),
        redirect_uris: vec![DEV_REDIRECT.into()],
    });
    let t = spawn_with(config).await;
    let code = t.code().await;
    let response = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "second-client"),
            ("client_secret", "second-secret"),
            ("redirect_uri", DEV_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    let body = expect_error(response, 400, "invalid_grant").await;
    assert!(body
        .error_description
        .contains("Client ID from this request"));
}
