//! `POST /api/v1/{provider}/revoke`: RFC 7009 towards the caller, Kick's query-string form upstream.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn upstream_revoke_answers(app: &TestApp, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/revoke"))
        .respond_with(response)
        .expect(times)
        .mount(&app.upstream)
        .await;
}

#[tokio::test]
async fn revoke_sends_kicks_query_string_and_answers_an_empty_object() {
    let app = spawn_app().await;
    upstream_revoke_answers(&app, ResponseTemplate::new(200).set_body_string("OK"), 1).await;

    let response = app
        .post_json(
            "/api/v1/kick/revoke",
            &json!({"token": REFRESH_TOKEN, "token_type_hint": "refresh_token", "client_secret": "x"}),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_token_headers(response.headers());
    assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
    let received = app.upstream.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    let query: Vec<(String, String)> = received[0].url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("token".to_owned(), REFRESH_TOKEN.to_owned()),
            ("token_hint_type".to_owned(), "refresh_token".to_owned())
        ]
    );
    assert!(received[0].body.is_empty());
}

#[tokio::test]
async fn revoke_without_a_hint_sends_only_the_token() {
    let app = spawn_app().await;
    upstream_revoke_answers(&app, ResponseTemplate::new(200).set_body_string("OK"), 1).await;

    let response = app
        .post_form("/api/v1/kick/revoke", &format!("token={ACCESS_TOKEN}"))
        .await;

    assert_eq!(response.status(), 200);
    let received = app.upstream.received_requests().await.expect("recorded");
    let keys: Vec<String> = received[0]
        .url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(keys, ["token"]);
}

#[tokio::test]
async fn revoking_an_unknown_token_is_still_200_as_rfc_7009_says() {
    let app = spawn_app().await;
    upstream_revoke_answers(
        &app,
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        1,
    )
    .await;

    let response = app
        .post_json("/api/v1/kick/revoke", &json!({"token": "unknown-token"}))
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
}

#[tokio::test]
async fn revoke_rejects_bad_input_without_calling_the_provider() {
    let app = spawn_app().await;
    upstream_revoke_answers(&app, ResponseTemplate::new(200), 0).await;
    for body in [
        json!({}),
        json!({"token": ""}),
        json!({"token": 42}),
        json!({"token": "a b"}),
        json!({"token": ACCESS_TOKEN, "token_type_hint": "id_token"}),
        json!({"token": ACCESS_TOKEN, "token_type_hint": 1}),
    ] {
        let response = app.post_json("/api/v1/kick/revoke", &body).await;
        assert_error(response, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn revoke_maps_provider_failures_like_the_token_endpoint() {
    let app = spawn_app().await;
    upstream_revoke_answers(
        &app,
        ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_token_type"})),
        1,
    )
    .await;
    let response = app
        .post_json("/api/v1/kick/revoke", &json!({"token": ACCESS_TOKEN}))
        .await;
    assert_error(response, 400, "unsupported_token_type").await;

    for failure in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        ResponseTemplate::new(403).set_body_raw("<html>blocked</html>", "text/html"),
    ] {
        let app = spawn_app().await;
        upstream_revoke_answers(&app, failure, 1).await;
        let response = app
            .post_json("/api/v1/kick/revoke", &json!({"token": ACCESS_TOKEN}))
            .await;
        assert_kick_502(response).await;
    }
}
