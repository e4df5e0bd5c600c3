//! Retries that never lose tokens and refresh races that cannot revoke a grant: idempotent replay,
//! single-flight, the circuit breaker and the cap on provider calls.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_retried_exchange_gets_the_same_tokens_without_a_second_provider_call() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    app.upstream_succeeds().await; // expect(1)

    let first = body(app.exchange().await).await;
    let retry = app.exchange().await;
    assert_token_headers(retry.headers());
    let retry = body(retry).await;

    assert_eq!(first, (200, kick_tokens()));
    assert_eq!(retry, first);
}

#[tokio::test]
async fn a_retried_refresh_gets_the_same_tokens_without_a_second_provider_call() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    app.upstream_succeeds().await;
    let request = json!({"refresh_token": REFRESH_TOKEN});

    let first = body(app.post_json("/api/v1/kick/refresh", &request).await).await;
    // The form encoding of the same request is the same request.
    let retry = body(
        app.post_form(
            "/api/v1/kick/refresh",
            &format!("refresh_token={REFRESH_TOKEN}"),
        )
        .await,
    )
    .await;

    assert_eq!(first, (200, kick_tokens()));
    assert_eq!(retry, first);
}

#[tokio::test]
async fn fifty_concurrent_identical_refreshes_make_one_provider_call() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(300)),
        1,
    )
    .await;

    let requests = (0..50).map(|_| {
        let http = app.http.clone();
        let url = app.url("/api/v1/kick/refresh");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"refresh_token": REFRESH_TOKEN}))
                .send()
                .await
                .expect("answer");
            body(response).await
        })
    });
    let answers = futures_join(requests.collect()).await;

    assert_eq!(answers.len(), 50);
    assert!(
        answers.iter().all(|a| *a == (200, kick_tokens())),
        "{answers:?}"
    );
}

#[tokio::test]
async fn single_flight_works_without_replay_too() {
    let app = TestApp::builder().replay_window(0).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(300)),
        1,
    )
    .await;
    let requests = (0..10).map(|_| {
        let http = app.http.clone();
        let url = app.url("/api/v1/kick/token");
        tokio::spawn(async move {
            body(
                http.post(url)
                    .json(&exchange_body())
                    .send()
                    .await
                    .expect("answer"),
            )
            .await
        })
    });
    let answers = futures_join(requests.collect()).await;
    assert!(answers.iter().all(|a| *a == (200, kick_tokens())));
}

#[tokio::test]
async fn different_inputs_never_share_an_answer() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 4)
        .await;

    let mut other_verifier = exchange_body();
    other_verifier["code_verifier"] = json!("a".repeat(43));
    let mut other_redirect = exchange_body();
    other_redirect["redirect_uri"] = json!(APP_REDIRECT_URI);
    for request in [exchange_body(), other_verifier, other_redirect] {
        assert_eq!(
            app.post_json("/api/v1/kick/token", &request).await.status(),
            200
        );
    }
    let refresh = app
        .post_json("/api/v1/kick/refresh", &json!({"refresh_token": CODE}))
        .await;
    assert_eq!(
        refresh.status(),
        200,
        "a refresh token equal to a code is another request"
    );
}

#[tokio::test]
async fn replayed_answers_expire_with_the_window() {
    let app = TestApp::builder().replay_window(1).spawn().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 2)
        .await;

    assert_eq!(app.exchange().await.status(), 200);
    assert_eq!(app.exchange().await.status(), 200); // replayed
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.exchange().await.status(), 200); // the provider again
}

#[tokio::test]
async fn failures_are_never_replayed() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.upstream)
        .await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 1)
        .await;

    assert_kick_502(app.exchange().await).await;
    assert_eq!(body(app.exchange().await).await, (200, kick_tokens()));
}

#[tokio::test]
async fn a_caller_that_gives_up_still_gets_its_tokens_on_retry() {
    let app = TestApp::builder().replay_window(60).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(800)),
        1,
    )
    .await;

    // The app's own timeout fires while the proxy waits on Kick: the answer is lost on the way.
    let impatient = app
        .http
        .post(app.url("/api/v1/kick/token"))
        .json(&exchange_body())
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(
        impatient.is_err(),
        "the first attempt times out client-side"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;

    // The code is spent at Kick, but the retry gets the tokens the proxy finished receiving.
    assert_eq!(body(app.exchange().await).await, (200, kick_tokens()));
}

#[tokio::test]
async fn a_failing_provider_opens_the_breaker_and_requests_fail_fast() {
    let app = TestApp::builder().breaker(3, 1).spawn().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .expect(3)
        .mount(&app.upstream)
        .await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 1)
        .await;

    for _ in 0..3 {
        assert_kick_502(app.exchange().await).await;
    }
    // Open: no provider call, an immediate 503 with Retry-After.
    let started = Instant::now();
    let refused = app.exchange().await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 503, "temporarily_unavailable").await;
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready["status"], "ready",
        "a failing provider does not make the pod unready"
    );
    assert_eq!(ready["providers"]["kick"]["upstream"], "failing");

    // After the cool-down one probe goes through; its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(body(app.exchange().await).await, (200, kick_tokens()));
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["providers"]["kick"]["upstream"], "ok");
}

#[tokio::test]
async fn waf_and_html_pages_do_not_open_the_breaker() {
    // What a caller sends (a code, a token) can provoke a WAF page: one client must not be able
    // to open the breaker for everyone.
    let app = TestApp::builder().breaker(3, 1).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(403).set_body_json(
            json!({"error": "Request blocked by security policy.", "reference": "x"}),
        ),
        5,
    )
    .await;
    for _ in 0..5 {
        assert_kick_502(app.exchange().await).await;
    }
}

#[tokio::test]
async fn grant_errors_do_not_open_the_breaker() {
    let app = TestApp::builder().breaker(3, 1).spawn().await;
    app.upstream_answers(
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        5,
    )
    .await;
    for _ in 0..5 {
        assert_error(app.exchange().await, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn provider_calls_beyond_the_cap_get_503_at_once() {
    let app = spawn_app_with(|toml| format!("{toml}\n[limits]\nmax_upstream_calls = 2\n")).await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(kick_tokens())
                .set_delay(Duration::from_millis(1000)),
        )
        .expect(2)
        .mount(&app.upstream)
        .await;

    let slow = (0..2).map(|i| {
        let http = app.http.clone();
        let url = app.url("/api/v1/kick/refresh");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"refresh_token": format!("distinct-{i}")}))
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16()
        })
    });
    let slow: Vec<_> = slow.collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let third = app
        .post_json(
            "/api/v1/kick/refresh",
            &json!({"refresh_token": "distinct-3"}),
        )
        .await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(third.headers()["retry-after"], "1");
    assert_error(third, 503, "temporarily_unavailable").await;
    assert!(app.is_healthy().await);
    assert_eq!(futures_join(slow).await, [200, 200]);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("join"));
    }
    out
}
