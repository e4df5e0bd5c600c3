//! `GET /oauth/authorize`.

use crate::helpers::*;

#[tokio::test]
async fn authorize_redirects_to_the_callback_with_code_scope_and_state() {
    let t = spawn().await;
    let response = t.authorize_with(&[]).await;
    assert_eq!(response.status(), 302);
    let (base, params) = redirect_query(&response);
    assert_eq!(base, DEV_REDIRECT);
    assert_eq!(params["state"], STATE);
    assert_eq!(params["scope"], SCOPE);
    let code = &params["code"];
    assert_eq!(code.len(), 48);
    assert!(code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert_eq!(t.kick.stats().codes_issued, 1);
}

#[tokio::test]
async fn authorize_accepts_the_custom_scheme_redirect() {
    let t = spawn().await;
    let response = t.authorize_with(&[("redirect_uri", APP_REDIRECT)]).await;
    assert_eq!(response.status(), 302);
    let (base, params) = redirect_query(&response);
    assert_eq!(base, APP_REDIRECT);
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn authorize_answers_400_json_and_never_redirects_for_an_unknown_client() {
    let t = spawn().await;
    let response = t.authorize_with(&[("client_id", "someone-else")]).await;
    assert!(response.headers().get("location").is_none());
    let body = expect_error(response, 400, "invalid_client").await;
    assert!(body
        .error_description
        .ends_with("The requested OAuth 2.0 Client does not exist."));
}

#[tokio::test]
async fn authorize_answers_400_json_for_an_unregistered_redirect_uri() {
    let t = spawn().await;
    for redirect in [
        "http://localhost:1420/auth/callback/",
        "http://evil.example/auth/callback",
        "",
    ] {
        let response = t.authorize_with(&[("redirect_uri", redirect)]).await;
        assert!(response.headers().get("location").is_none(), "{redirect}");
        let body = expect_error(response, 400, "invalid_request").await;
        assert!(body
            .error_description
            .contains("pre-registered redirect urls"));
    }
    assert_eq!(t.kick.stats().codes_issued, 0);
}

async fn assert_error_redirect(t: &TestKick, overrides: &[(&str, &str)], error: &str, hint: &str) {
    let response = t.authorize_with(overrides).await;
    assert_eq!(response.status(), 302, "{overrides:?}");
    let (base, params) = redirect_query(&response);
    assert_eq!(base, DEV_REDIRECT);
    assert_eq!(params["error"], error, "{overrides:?}");
    assert!(
        params["error_description"].contains(hint),
        "{}",
        params["error_description"]
    );
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn authorize_redirects_invalid_request_without_a_code_challenge() {
    let t = spawn().await;
    assert_error_redirect(
        &t,
        &[("code_challenge", "")],
        "invalid_request",
        "must include a code_challenge",
    )
    .await;
}

#[tokio::test]
async fn authorize_redirects_invalid_request_for_plain_or_unknown_pkce_methods() {
    let t = spawn().await;
    assert_error_redirect(
        &t,
        &[("code_challenge_method", "plain")],
        "invalid_request",
        "plain is not allowed",
    )
    .await;
    assert_error_redirect(
        &t,
        &[("code_challenge_method", "")],
        "invalid_request",
        "plain is not allowed",
    )
    .await;
    assert_error_redirect(
        &t,
        &[("code_challenge_method", "S512")],
        "invalid_request",
        "use S256 instead",
    )
    .await;
    assert_eq!(t.kick.stats().codes_issued, 0);
}

#[tokio::test]
async fn authorize_redirects_unsupported_response_type_for_anything_but_code() {
    let t = spawn().await;
    assert_error_redirect(
        &t,
        &[("response_type", "token")],
        "unsupported_response_type",
        "response_type 'token'",
    )
    .await;
}

#[tokio::test]
async fn authorize_redirects_invalid_state_when_state_is_shorter_than_8() {
    let t = spawn().await;
    let response = t.authorize_with(&[("state", "short")]).await;
    let (_, params) = redirect_query(&response);
    assert_eq!(params["error"], "invalid_state");
    assert_eq!(params["state"], "short");
}

#[tokio::test]
async fn authorize_error_redirect_carries_the_state_back() {
    let t = spawn().await;
    let response = t.authorize_with(&[("code_challenge", "")]).await;
    let (_, params) = redirect_query(&response);
    assert_eq!(params["state"], STATE);
}
