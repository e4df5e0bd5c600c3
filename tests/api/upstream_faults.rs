//! Every way the provider can fail, and what the caller sees: the contract's error table, rows
//! "provider answered an OAuth error", "rejected our credentials", "unreachable, timed out, 5xx, …".

use crate::helpers::raw_http;
use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

fn oauth_error(status: u16, code: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": code, "error_description": description}))
}

#[tokio::test]
async fn invalid_grant_is_a_400_with_the_providers_code_and_description() {
    let app = spawn_app().await;
    app.upstream_answers(
        oauth_error(400, "invalid_grant", "The authorization code has expired."),
        1,
    )
    .await;

    let body = assert_error(app.exchange().await, 400, "invalid_grant").await;

    assert_eq!(
        body["error_description"],
        "The authorization code has expired."
    );
    assert!(body.get("details").is_none());
}

#[tokio::test]
async fn provider_descriptions_are_sanitised_and_never_echo_the_request() {
    let app = spawn_app().await;
    for response in [
        oauth_error(400, "invalid_request", "bad\n\"value\"\u{1b}[31m \\ é"),
        oauth_error(
            400,
            "invalid_grant",
            &format!("code {CODE} was already used"),
        ),
    ] {
        Mock::given(path("/oauth/token"))
            .respond_with(response)
            .up_to_n_times(1)
            .expect(1)
            .mount(&app.upstream)
            .await;
    }

    let first = assert_error(app.exchange().await, 400, "invalid_request").await;
    let second = assert_error(app.exchange().await, 400, "invalid_grant").await;

    assert_eq!(first["error_description"], "badvalue[31m");
    let description = second["error_description"].as_str().expect("string");
    assert!(!description.contains(CODE), "{description}");
}

#[tokio::test]
async fn a_long_provider_description_is_cut_to_512_characters() {
    let app = spawn_app().await;
    app.upstream_answers(oauth_error(400, "invalid_scope", &"x".repeat(5000)), 1)
        .await;

    let body = assert_error(app.exchange().await, 400, "invalid_scope").await;

    assert_eq!(body["error_description"].as_str().map(str::len), Some(512));
}

#[tokio::test]
async fn rejected_client_credentials_are_a_502_not_the_callers_fault() {
    for (status, code) in [
        (401, "invalid_client"),
        (400, "invalid_client"),
        (400, "unauthorized_client"),
        (400, "unsupported_grant_type"),
        (400, "server_error"),
    ] {
        let app = spawn_app().await;
        app.upstream_answers(
            oauth_error(status, code, "Client authentication failed."),
            1,
        )
        .await;
        assert_kick_502(app.exchange().await).await;
    }
}

#[tokio::test]
async fn provider_5xx_html_waf_empty_and_odd_bodies_are_502() {
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        (
            "500 JSON",
            ResponseTemplate::new(500).set_body_json(json!({"error": "server_error"})),
        ),
        (
            "503 text",
            ResponseTemplate::new(503).set_body_string("Service Unavailable"),
        ),
        (
            "cloudflare challenge",
            ResponseTemplate::new(403).set_body_raw(
                "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>",
                "text/html",
            ),
        ),
        (
            "WAF 403",
            ResponseTemplate::new(403).set_body_json(
                json!({"error": "Request blocked by security policy.", "reference": "18.5c2a1b2c"}),
            ),
        ),
        ("empty 400", ResponseTemplate::new(400)),
        (
            "outage 404",
            ResponseTemplate::new(404).set_body_raw("<html>Not Found</html>", "text/html"),
        ),
        (
            "200 not JSON",
            ResponseTemplate::new(200).set_body_string("OK"),
        ),
        (
            "200 no access_token",
            ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer"})),
        ),
        (
            "200 empty access_token",
            ResponseTemplate::new(200).set_body_json(json!({"access_token": ""})),
        ),
        (
            "429 from provider",
            ResponseTemplate::new(429).set_body_string("slow down"),
        ),
    ];
    for (name, response) in cases {
        let app = spawn_app().await;
        app.upstream_answers(response, 1).await;
        let answer = app.exchange().await;
        assert_eq!(answer.status(), 502, "{name}");
        assert_kick_502(answer).await;
    }
}

#[tokio::test]
async fn a_redirect_is_a_502_and_is_never_followed() {
    let app = spawn_app().await;
    let elsewhere = format!("{}/elsewhere", app.upstream.uri());
    app.upstream_answers(
        ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()),
        1,
    )
    .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(0)
        .mount(&app.upstream)
        .await;

    assert_kick_502(app.exchange().await).await;
}

#[tokio::test]
async fn an_oversized_response_is_a_502() {
    let app = spawn_app().await;
    let mut huge = kick_tokens();
    huge["padding"] = Value::String("x".repeat(64 * 1024));
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(huge), 1)
        .await;

    assert_kick_502(app.exchange().await).await;
}

#[tokio::test]
async fn an_oversized_chunked_response_without_length_is_a_502() {
    let upstream = raw_upstream(|mut socket| async move {
        raw_http::read_request(&mut socket).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
        for _ in 0..16 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let app = TestApp::builder().token_url_base(&upstream).spawn().await;

    assert_kick_502(app.exchange().await).await;
}

#[tokio::test]
async fn a_hanging_provider_is_a_502_within_a_second_of_the_deadline() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_secs(30)),
        1,
    )
    .await;

    let started = Instant::now();
    let answer = app.exchange().await;
    let elapsed = started.elapsed();

    assert_kick_502(answer).await;
    // The test config sets timeout_secs = 2.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_slow_body_is_cut_at_the_same_deadline() {
    let upstream = raw_upstream(|mut socket| async move {
        raw_http::read_request(&mut socket).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            .await;
        // One byte every 300 ms: each read succeeds, the whole never arrives in time.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if socket.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await;
    let app = TestApp::builder().token_url_base(&upstream).spawn().await;

    let started = Instant::now();
    let answer = app.exchange().await;
    let elapsed = started.elapsed();

    assert_kick_502(answer).await;
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_connection_reset_is_a_502() {
    let upstream = raw_upstream(|mut socket| async move {
        raw_http::read_request(&mut socket).await;
        // SO_LINGER 0: close() sends RST instead of FIN.
        let std_socket = socket.into_std().expect("std socket");
        let socket = socket2::Socket::from(std_socket);
        let _ = socket.set_linger(Some(Duration::ZERO));
        drop(socket);
    })
    .await;
    let app = TestApp::builder().token_url_base(&upstream).spawn().await;

    assert_kick_502(app.exchange().await).await;
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_truncated_body_is_a_502() {
    let upstream = raw_upstream(|mut socket| async move {
        raw_http::read_request(&mut socket).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"a\"}")
            .await;
    })
    .await;
    let app = TestApp::builder().token_url_base(&upstream).spawn().await;

    assert_kick_502(app.exchange().await).await;
}

#[tokio::test]
async fn an_unreachable_provider_is_a_502() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let app = TestApp::builder()
        .token_url_base(&format!("http://{closed}"))
        .spawn()
        .await;

    let started = Instant::now();
    assert_kick_502(app.exchange().await).await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn refresh_maps_provider_errors_like_token_does() {
    let body = json!({"refresh_token": REFRESH_TOKEN});

    let app = spawn_app().await;
    app.upstream_answers(
        oauth_error(400, "invalid_grant", "The refresh token is invalid."),
        1,
    )
    .await;
    assert_error(
        app.post_json("/api/v1/kick/refresh", &body).await,
        400,
        "invalid_grant",
    )
    .await;

    let app = spawn_app().await;
    app.upstream_answers(ResponseTemplate::new(500), 1).await;
    assert_kick_502(app.post_json("/api/v1/kick/refresh", &body).await).await;
}

/// A raw TCP "provider" running `behaviour` for each connection.
async fn raw_upstream<F, Fut>(behaviour: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(behaviour(socket));
        }
    });
    format!("http://{addr}")
}
