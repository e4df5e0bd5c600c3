//! Probes, slow clients and shutdown: what an orchestrator and an attacker with a slow socket see.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::ResponseTemplate;

#[tokio::test]
async fn health_and_readiness_answer_200_while_serving() {
    let app = spawn_app().await;
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.expect("json"),
        json!({
            "status": "ready",
            "providers": {"kick": {"upstream": "ok"}},
            "state": {"backend": "memory", "status": "ok"}
        })
    );
}

#[tokio::test]
async fn shutdown_turns_readyz_503_and_lets_in_flight_requests_finish() {
    let mut app = spawn_app_with(|toml| {
        toml.replace(
            "shutdown_grace_secs = 5",
            "shutdown_grace_secs = 5\ndrain_delay_secs = 1",
        )
    })
    .await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(1500)),
        1,
    )
    .await;
    let in_flight = {
        let http = app.http.clone();
        let url = app.url("/api/v1/kick/token");
        tokio::spawn(async move { http.post(url).json(&exchange_body()).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Draining: still accepting during drain_delay_secs, but not ready.
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("still accepting");
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.expect("json")["status"],
        "draining"
    );
    assert!(app.is_healthy().await);

    let finished = in_flight
        .await
        .expect("task")
        .expect("in-flight request completes");
    assert_eq!(finished.status(), 200);
    assert_eq!(finished.json::<Value>().await.expect("json"), kick_tokens());
    app.stopped().await.expect("clean stop");
    assert!(
        TcpStream::connect(app.addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app().await;
    let mut socket = TcpStream::connect(app.addr).await.expect("connect");
    socket
        .write_all(b"POST /api/v1/kick/token HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");

    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;

    assert!(closed.is_ok(), "the server must drop a slow-header client");
    // header_read_timeout_secs = 1 in the test config.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_after_the_body_deadline() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let mut socket = TcpStream::connect(app.addr).await.expect("connect");
    socket
        .write_all(b"POST /api/v1/kick/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"code\":")
        .await
        .expect("write");

    let started = Instant::now();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);

    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_and_exits_zero() {
    let upstream = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(kick_tokens())
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let (mut binary, _dir, http) = spawn_binary_against(&upstream).await;
    let request = tokio::spawn({
        let url = binary.url("/api/v1/kick/token");
        async move { http.post(url).json(&exchange_body()).send().await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    binary.signal("TERM");

    let response = request
        .await
        .expect("task")
        .expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    // The line logged last, as the process exits, still reaches stdout.
    binary.wait_for_log("all connections closed").await;
    assert_eq!(binary.exit_code().await, Some(0));
}
