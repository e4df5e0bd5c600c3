//! `POST /token`, `/refresh` and `/revoke` reach their handler two ways: the listener's direct
//! path (the usual one) and axum's router, which serves what the direct path does not take, such
//! as a percent-encoded `{provider}` (`%6Bick` is `kick`). Each test sends the same request both
//! ways and expects the same answer, so the two cannot drift apart.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// The direct path.
const DIRECT: &str = "/api/v1/kick/token";
/// The same endpoint and provider through the router.
const ROUTED: &str = "/api/v1/%6Bick/token";

/// Status, body and the header names of an answer, `x-request-id`'s value and `date` aside.
async fn seen(response: reqwest::Response) -> (u16, Value, Vec<String>) {
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("x-request-id"));
    let mut names: Vec<String> = response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name != "date")
        .collect();
    names.sort();
    let body = response.json().await.expect("a JSON body");
    (status, body, names)
}

#[tokio::test]
async fn a_percent_encoded_provider_gets_the_same_exchange_as_the_plain_one() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(2).await;

    let direct = seen(app.post_json(DIRECT, &exchange_body()).await).await;
    let routed = seen(app.post_json(ROUTED, &exchange_body()).await).await;

    assert_eq!(direct.0, 200);
    assert_eq!(direct.1, kick_tokens());
    assert_eq!(direct, routed);
    let forms = app.upstream_forms().await;
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0], exchange_form());
    assert_eq!(forms[0], forms[1]);
}

#[tokio::test]
async fn both_ways_refuse_a_bad_request_alike_without_calling_the_provider() {
    let app = spawn_app().await;
    let body = json!({"code": CODE, "redirect_uri": APP_REDIRECT_URI});

    let direct = seen(app.post_json(DIRECT, &body).await).await;
    let routed = seen(app.post_json(ROUTED, &body).await).await;

    assert_eq!(direct.0, 400);
    assert_eq!(direct.1["error"], "invalid_request");
    assert_eq!(direct, routed);
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "the provider was called: {calls:?}");
}

#[tokio::test]
async fn both_ways_answer_an_unknown_provider_with_404() {
    let app = spawn_app().await;

    let direct = seen(app.post_json("/api/v1/nope/refresh", &json!({})).await).await;
    let routed = seen(app.post_json("/api/v1/n%6Fpe/refresh", &json!({})).await).await;

    assert_eq!(direct.0, 404);
    assert_eq!(direct, routed);
}

#[tokio::test]
async fn both_ways_draw_from_the_same_rate_limit_bucket() {
    for (first, second) in [(DIRECT, ROUTED), (ROUTED, DIRECT)] {
        let app = spawn_app_with(|toml| {
            toml.replace(
                "token = { per_minute = 1000000, burst = 1000000 }",
                "token = { per_minute = 1, burst = 1 }",
            )
        })
        .await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
            .mount(&app.upstream)
            .await;

        let allowed = app.post_json(first, &exchange_body()).await;
        let limited = app.post_json(second, &exchange_body()).await;

        assert_eq!(allowed.status(), 200, "{first} first");
        assert_error(limited, 429, "slow_down").await;
        assert_eq!(app.upstream_forms().await.len(), 1);
    }
}

#[tokio::test]
async fn both_ways_log_the_same_route_template() {
    let upstream = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .mount(&upstream)
        .await;
    let (mut binary, _dir, http) = spawn_binary_against(&upstream).await;

    for path in [DIRECT, ROUTED] {
        let response = http
            .post(binary.url(path))
            .json(&exchange_body())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        let line = loop {
            let line = binary.wait_for_log("request").await;
            if line["message"] == "request" {
                break line;
            }
        };
        assert_eq!(line["route"], "/api/v1/{provider}/token", "{path}: {line}");
        assert_eq!(line["provider"], "kick", "{path}: {line}");
        assert_eq!(line["endpoint"], "token", "{path}: {line}");
        assert_eq!(line["status"], 200, "{path}: {line}");
    }
    binary.signal("TERM");
    assert_eq!(binary.exit_code().await, Some(0));
}

#[tokio::test]
async fn both_ways_answer_a_cross_origin_request_alike() {
    const ORIGIN: &str = "https://app.example.com";
    let app = spawn_app_with(|toml| {
        toml.replacen(
            "[server]\n",
            &format!("[server]\ncors_allowed_origins = [\"{ORIGIN}\"]\n"),
            1,
        )
    })
    .await;
    app.upstream_succeeds_times(2).await;

    let mut answers = Vec::new();
    for path in [DIRECT, ROUTED] {
        let response = app
            .http
            .post(app.url(path))
            .header("origin", ORIGIN)
            .json(&exchange_body())
            .send()
            .await
            .expect("answer");
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        let vary: Vec<_> = response.headers().get_all("vary").iter().cloned().collect();
        answers.push((allowed, vary, seen(response).await));
    }

    assert_eq!(
        answers[0].0.as_ref().map(|v| v.as_bytes()),
        Some(ORIGIN.as_bytes())
    );
    assert_eq!(answers[0].2 .0, 200);
    assert_eq!(answers[0], answers[1]);
}
