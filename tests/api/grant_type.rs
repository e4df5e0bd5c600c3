//! `grant_type` at `/token` (issue #12, item 4; RFC 6749 §4.1.3, §6, §5.2): absent, empty or
//! `authorization_code` is the code exchange; `refresh_token` is exactly `/refresh` (its input
//! rules, its replay and single-flight); anything else is 400 `unsupported_grant_type` without a
//! provider call. `/refresh` and `/revoke` ignore it. (The `oauth2` crate's refresh pointed at
//! `/token` is in `oauth2_crate.rs`, the rate bucket in `limits.rs`, the metrics in `metrics.rs`.)

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "/api/v1/kick/token";
const REFRESH: &str = "/api/v1/kick/refresh";
const UNSUPPORTED_TEXT: &str =
    "The grant_type must be authorization_code (or absent) or refresh_token.";

/// The form a refresh of `token` sends the provider: four fields, nothing of the caller's.
fn refresh_form(token: &str) -> HashMap<String, String> {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The code exchange as a form, with `extra` (`name=value&`, or empty) first.
fn exchange_form_body(extra: &str) -> String {
    format!(
        "{extra}code={CODE}&code_verifier={VERIFIER}&redirect_uri={}",
        enc(REDIRECT_URI)
    )
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn token_with_grant_type_refresh_token_refreshes_from_json_and_form_bodies() {
    let app = spawn_app().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 2)
        .await;

    let from_json = app
        .post_json(
            TOKEN,
            &json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}),
        )
        .await;
    // What standard libraries send, with a code exchange's fields on top: ignored, not forwarded.
    let from_form = app
        .post_form(
            TOKEN,
            &exchange_form_body(&format!(
                "grant_type=refresh_token&refresh_token={REFRESH_TOKEN}&client_id=x&"
            )),
        )
        .await;

    for (case, response) in [("JSON", from_json), ("form", from_form)] {
        assert_eq!(response.status(), 200, "{case}");
        assert_token_headers(response.headers());
        assert_eq!(
            response.json::<Value>().await.expect("json"),
            kick_tokens(),
            "{case}"
        );
    }
    let forms = app.upstream_forms().await;
    assert_eq!(forms.len(), 2);
    for form in forms {
        assert_eq!(form, refresh_form(REFRESH_TOKEN));
    }
}

#[tokio::test]
async fn token_without_or_with_an_empty_or_authorization_code_grant_type_exchanges_the_code() {
    let app = spawn_app().await;
    let mut with_grant = exchange_body();
    with_grant["grant_type"] = json!("authorization_code");
    let mut with_empty = exchange_body();
    with_empty["grant_type"] = json!("");
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "JSON without grant_type",
            "application/json",
            exchange_body().to_string(),
        ),
        (
            "JSON authorization_code",
            "application/json",
            with_grant.to_string(),
        ),
        (
            "JSON empty grant_type",
            "application/json",
            with_empty.to_string(),
        ),
        (
            "form authorization_code",
            "application/x-www-form-urlencoded",
            exchange_form_body("grant_type=authorization_code&"),
        ),
        (
            "form grant_type=",
            "application/x-www-form-urlencoded",
            exchange_form_body("grant_type=&"),
        ),
        (
            "form bare grant_type",
            "application/x-www-form-urlencoded",
            exchange_form_body("grant_type&"),
        ),
    ];
    app.upstream_answers(
        ResponseTemplate::new(200).set_body_json(kick_tokens()),
        cases.len() as u64,
    )
    .await;

    for (case, content_type, body) in cases {
        let response = app.post_raw(TOKEN, content_type, body).await;

        assert_eq!(json_of(response).await, (200, kick_tokens()), "{case}");
        let forms = app.upstream_forms().await;
        assert_eq!(forms.last(), Some(&exchange_form()), "{case}");
    }
}

#[tokio::test]
async fn any_other_grant_type_is_unsupported_grant_type_and_the_provider_is_not_called() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;

    for grant_type in [
        "client_credentials",
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "REFRESH_TOKEN",
        "Refresh_Token",
        "refresh_token ",
        " authorization_code",
        "refresh-token",
        "</script><script>alert(1)</script>",
    ] {
        // Everything either grant would need is there: only grant_type decides.
        let json_body = json!({
            "grant_type": grant_type, "refresh_token": REFRESH_TOKEN,
            "code": CODE, "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI,
        });
        let form_body = exchange_form_body(&format!(
            "grant_type={}&refresh_token={REFRESH_TOKEN}&",
            enc(grant_type)
        ));
        for (encoding, response) in [
            ("JSON", app.post_json(TOKEN, &json_body).await),
            ("form", app.post_form(TOKEN, &form_body).await),
        ] {
            let case = format!("{grant_type:?} in {encoding}");
            let body = assert_error(response, 400, "unsupported_grant_type").await;
            assert_eq!(
                body,
                json!({"error": "unsupported_grant_type", "error_description": UNSUPPORTED_TEXT}),
                "{case}: the fixed text, never the value sent"
            );
        }
    }
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "the provider was called");
}

#[tokio::test]
async fn a_grant_type_that_is_not_one_string_is_invalid_request() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let refresh = format!(r#""refresh_token":"{REFRESH_TOKEN}""#);
    let cases: Vec<(&str, &str, String)> = vec![
        ("a number", "application/json", format!(r#"{{"grant_type":5,{refresh}}}"#)),
        ("null", "application/json", format!(r#"{{"grant_type":null,{refresh}}}"#)),
        ("true", "application/json", format!(r#"{{"grant_type":true,{refresh}}}"#)),
        (
            "a list",
            "application/json",
            format!(r#"{{"grant_type":["refresh_token"],{refresh}}}"#),
        ),
        (
            "an object",
            "application/json",
            format!(r#"{{"grant_type":{{"type":"refresh_token"}},{refresh}}}"#),
        ),
        (
            "twice in JSON",
            "application/json",
            format!(r#"{{"grant_type":"refresh_token","grant_type":"refresh_token",{refresh}}}"#),
        ),
        (
            "twice in a form",
            "application/x-www-form-urlencoded",
            format!("grant_type=refresh_token&grant_type=refresh_token&refresh_token={REFRESH_TOKEN}"),
        ),
        (
            "twice in a form, two grants",
            "application/x-www-form-urlencoded",
            exchange_form_body(&format!(
                "grant_type=authorization_code&grant_type=refresh_token&refresh_token={REFRESH_TOKEN}&"
            )),
        ),
    ];

    for (case, content_type, body) in cases {
        let response = app.post_raw(TOKEN, content_type, body).await;

        let body = assert_error(response, 400, "invalid_request").await;
        let text = body["error_description"].as_str().unwrap_or_default();
        assert!(text.contains("`grant_type`"), "{case}: {text}");
    }
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "the provider was called");
}

#[tokio::test]
async fn a_refresh_at_token_is_refused_exactly_as_refresh_refuses_it() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let long = "a".repeat(4097);
    // (case, the /refresh body's members, as JSON)
    let cases: [(&str, Vec<(&str, Value)>); 7] = [
        ("refresh_token missing", vec![]),
        ("refresh_token empty", vec![("refresh_token", json!(""))]),
        (
            "refresh_token with a space",
            vec![("refresh_token", json!("abc def"))],
        ),
        (
            "refresh_token not ASCII",
            vec![("refresh_token", json!("tökén"))],
        ),
        (
            "refresh_token over 4096 bytes",
            vec![("refresh_token", json!(long))],
        ),
        ("refresh_token a number", vec![("refresh_token", json!(5))]),
        (
            "refresh_token missing, a whole code exchange instead",
            vec![
                ("code", json!(CODE)),
                ("code_verifier", json!(VERIFIER)),
                ("redirect_uri", json!(REDIRECT_URI)),
            ],
        ),
    ];

    for (case, members) in cases {
        let refresh_body: serde_json::Map<String, Value> = members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut token_body = refresh_body.clone();
        token_body.insert("grant_type".into(), json!("refresh_token"));

        let at_refresh = app.post_json(REFRESH, &Value::Object(refresh_body)).await;
        let at_token = app.post_json(TOKEN, &Value::Object(token_body)).await;

        assert_token_headers(at_token.headers());
        let at_refresh = json_of(at_refresh).await;
        assert_eq!(at_refresh.0, 400, "{case}");
        assert_eq!(at_refresh.1["error"], "invalid_request", "{case}");
        assert_eq!(json_of(at_token).await, at_refresh, "{case}");
    }
    // And the form spelling of the first: the same words as /refresh's.
    let at_token = app.post_form(TOKEN, "grant_type=refresh_token").await;
    let body = assert_error(at_token, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "The `refresh_token` parameter is missing."
    );
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "the provider was called");
}

#[tokio::test]
async fn refresh_and_revoke_ignore_grant_type() {
    let app = spawn_app().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 2)
        .await;
    Mock::given(path("/oauth/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .expect(1)
        .mount(&app.upstream)
        .await;

    let json_refresh = app
        .post_json(
            REFRESH,
            &json!({"grant_type": "authorization_code", "refresh_token": REFRESH_TOKEN}),
        )
        .await;
    let form_refresh = app
        .post_form(
            REFRESH,
            &format!("grant_type=client_credentials&refresh_token={REFRESH_TOKEN}"),
        )
        .await;
    let revoke = app
        .post_form(
            "/api/v1/kick/revoke",
            &format!("grant_type=password&token={ACCESS_TOKEN}"),
        )
        .await;

    assert_eq!(json_of(json_refresh).await, (200, kick_tokens()));
    assert_eq!(json_of(form_refresh).await, (200, kick_tokens()));
    assert_eq!(json_of(revoke).await, (200, json!({})));
    for form in app
        .upstream_forms()
        .await
        .into_iter()
        .filter(|f| !f.is_empty())
    {
        assert_eq!(form, refresh_form(REFRESH_TOKEN));
    }
}

/// Mounts a provider that refreshes `token` (and nothing else) with tokens of its own, once.
async fn provider_refreshes_once(app: &TestApp, token: &str, access_token: &str) -> Value {
    let mut tokens = kick_tokens();
    tokens["access_token"] = json!(access_token);
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("refresh_token={token}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(&tokens))
        .expect(1)
        .mount(&app.upstream)
        .await;
    tokens
}

#[tokio::test]
async fn a_refresh_retried_between_token_and_refresh_gets_the_replayed_answer() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    let first_token = "FIRST-REFRESH-TOKEN-SENT-TO-TOKEN";
    let second_token = "SECOND-REFRESH-TOKEN-SENT-TO-REFRESH";
    let first_tokens = provider_refreshes_once(&app, first_token, "ACCESS-ONE").await;
    let second_tokens = provider_refreshes_once(&app, second_token, "ACCESS-TWO").await;

    // /token first (a standard library), then the retry at /refresh and at /token again, in the
    // other encoding.
    let sent = app
        .post_form(
            TOKEN,
            &format!("grant_type=refresh_token&refresh_token={first_token}"),
        )
        .await;
    let retry_at_refresh = app
        .post_json(REFRESH, &json!({"refresh_token": first_token}))
        .await;
    let retry_at_token = app
        .post_json(
            TOKEN,
            &json!({"grant_type": "refresh_token", "refresh_token": first_token}),
        )
        .await;
    assert_eq!(json_of(sent).await, (200, first_tokens.clone()));
    assert_token_headers(retry_at_refresh.headers());
    assert_eq!(json_of(retry_at_refresh).await, (200, first_tokens.clone()));
    assert_eq!(json_of(retry_at_token).await, (200, first_tokens));

    // /refresh first, the retry at /token.
    let sent = app
        .post_json(REFRESH, &json!({"refresh_token": second_token}))
        .await;
    let retry_at_token = app
        .post_form(
            TOKEN,
            &format!("grant_type=refresh_token&refresh_token={second_token}"),
        )
        .await;
    assert_eq!(json_of(sent).await, (200, second_tokens.clone()));
    assert_eq!(json_of(retry_at_token).await, (200, second_tokens));

    // One provider call per refresh token (each mock expects exactly one).
    assert_eq!(app.upstream_forms().await.len(), 2);
}

#[tokio::test]
async fn concurrent_refreshes_at_token_and_refresh_share_one_provider_call() {
    // Replay off: only single-flight can make the ten requests one call.
    let app = TestApp::builder().replay_window(0).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(500)),
        1,
    )
    .await;

    let requests: Vec<_> = (0..10)
        .map(|i| {
            let http = app.http.clone();
            let (url, body) = if i % 2 == 0 {
                (
                    app.url(TOKEN),
                    json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}),
                )
            } else {
                (app.url(REFRESH), json!({"refresh_token": REFRESH_TOKEN}))
            };
            tokio::spawn(async move {
                json_of(http.post(url).json(&body).send().await.expect("answer")).await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("join"), (200, kick_tokens()));
    }
    assert_eq!(app.upstream_forms().await.len(), 1);
}

#[tokio::test]
async fn the_log_line_of_a_refresh_at_token_says_endpoint_refresh_on_the_token_route() {
    let upstream = wiremock::MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(2)
        .mount(&upstream)
        .await;
    let (mut binary, _dir, http) = spawn_binary_against(&upstream).await;
    let requests = [
        (
            json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}),
            "refresh",
            200,
        ),
        (exchange_body(), "token", 200),
        (json!({"grant_type": "password"}), "token", 400),
    ];
    let mut expected = Vec::new();
    for (body, endpoint, status) in requests {
        let response = http
            .post(binary.url(TOKEN))
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), status);
        expected.push((endpoint, status));
    }

    for (endpoint, status) in expected {
        let line = loop {
            let line = binary.wait_for_log("request").await;
            if line["message"] == "request" {
                break line;
            }
        };
        assert_eq!(line["route"], "/api/v1/{provider}/token", "{line}");
        assert_eq!(line["endpoint"], endpoint, "{line}");
        assert_eq!(line["status"], status, "{line}");
    }
    binary.signal("TERM");
    assert_eq!(binary.exit_code().await, Some(0));
}
