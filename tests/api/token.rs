//! The happy paths of `/token` and `/refresh`: what the caller gets and what the provider received.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

#[tokio::test]
async fn token_returns_kicks_tokens_for_a_json_request() {
    let app = spawn_app().await;
    app.upstream_succeeds().await;

    let response = app.exchange().await;

    assert_eq!(response.status(), 200);
    assert_token_headers(response.headers());
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, kick_tokens());
}

#[tokio::test]
async fn token_sends_the_provider_exactly_the_contracts_form() {
    let app = spawn_app().await;
    app.upstream_succeeds().await;

    app.exchange().await;

    let received = app.upstream.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(form_of(&received[0]), exchange_form());
    assert!(!received[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn token_accepts_a_form_body_with_a_charset() {
    let app = spawn_app().await;
    app.upstream_succeeds().await;
    let form = format!(
        "code={CODE}&code_verifier={VERIFIER}&redirect_uri={}",
        url::form_urlencoded::byte_serialize(APP_REDIRECT_URI.as_bytes()).collect::<String>()
    );

    let response = app
        .post_raw(
            "/api/v1/kick/token",
            "application/x-www-form-urlencoded; charset=UTF-8",
            form,
        )
        .await;

    assert_eq!(response.status(), 200);
    let forms = app.upstream_forms().await;
    assert_eq!(forms[0]["redirect_uri"], APP_REDIRECT_URI);
}

#[tokio::test]
async fn callers_credentials_and_unknown_fields_are_ignored_and_never_forwarded() {
    let app = spawn_app().await;
    app.upstream_succeeds().await;
    let mut body = exchange_body();
    body["client_id"] = json!("attacker-client");
    body["client_secret"] = json!("attacker-secret");
    // The caller's grant_type selects the grant (here the code exchange); the provider gets the
    // proxy's own (other values: tests/api/grant_type.rs).
    body["grant_type"] = json!("authorization_code");
    body["scope"] = json!("admin");
    body["extra"] = json!({"nested": [1, 2]});

    let response = app.post_json("/api/v1/kick/token", &body).await;

    assert_eq!(response.status(), 200);
    let form = &app.upstream_forms().await[0];
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert_eq!(form["grant_type"], "authorization_code");
    assert!(!form.contains_key("scope"));
    assert!(!form.contains_key("extra"));
}

#[tokio::test]
async fn refresh_returns_new_tokens_and_sends_the_refresh_form() {
    let app = spawn_app().await;
    app.upstream_succeeds().await;

    let response = app
        .post_form(
            "/api/v1/kick/refresh",
            &format!("refresh_token={REFRESH_TOKEN}&client_secret=x"),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_token_headers(response.headers());
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let form = &app.upstream_forms().await[0];
    assert_eq!(form.len(), 4, "{:?}", form.keys());
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], REFRESH_TOKEN);
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn expires_in_sent_as_a_string_becomes_an_integer_and_extra_fields_pass_through() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            // Kick's body with a text/html content type: parsed whatever the header says.
            .set_body_raw(
                r#"{"access_token":"a1","token_type":"Bearer","expires_in":"7200","id_token":"x.y.z"}"#,
                "text/html",
            ),
        1,
    )
    .await;

    let response = app
        .post_json(
            "/api/v1/kick/refresh",
            &json!({"refresh_token": REFRESH_TOKEN}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["expires_in"], json!(7200));
    assert_eq!(body["id_token"], "x.y.z");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("scope").is_none());
}

#[tokio::test]
async fn a_request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("answer");
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");

    let replaced = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "has spaces {}")
        .send()
        .await
        .expect("answer");
    let generated = replaced.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(generated.len(), 32);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
}
