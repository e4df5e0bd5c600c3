//! Slow and oversized requests: trickled headers and bodies are cut at their deadlines, oversized
//! header blocks are refused by hyper, and silent connections are closed.

use crate::helpers::cases::*;
use crate::helpers::raw_http;
use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn headers_trickled_one_byte_at_a_time_are_cut_at_the_header_deadline() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: proxy.test\r\nContent-Type: application/json\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200)
    );
    let started = Instant::now();
    // One byte every 50 ms: each read makes progress, the whole head would take 13 s.
    let trickle = tokio::spawn(async move {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received)).await;
    trickle.abort();

    // hyper closes the connection without a response: no request ever reached the application.
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_body_trickled_past_the_deadline_gets_408_while_it_is_still_arriving() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let body = json_exchange(CODE);
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(&raw_http::post(
            TOKEN,
            &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ),
            "",
        ))
        .await
        .expect("head");
    let started = Instant::now();
    // One byte every 50 ms: the body would take about 9 s; the deadline is 1 s.
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let mut received = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        loop {
            let (responses, _) = raw_http::parse_responses(&received);
            if !responses.is_empty() {
                return responses;
            }
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return raw_http::parse_responses(&received).0,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("answered within 5 s");
    let elapsed = started.elapsed();
    let still_sending = !trickle.is_finished();
    trickle.abort();

    assert_eq!(answered.len(), 1);
    assert_answer(
        "trickled body",
        &answered[0],
        Answer::Error(408, "invalid_request"),
    );
    assert!(still_sending, "the answer must not wait for the whole body");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_from_hyper() {
    let body = json_exchange(CODE);
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "a".repeat(1024 * 1024));
    let ct = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    // hyper refuses the head before any routing: its own bodyless 431, nothing reached the app.
    run_raw_table(vec![
        raw_case(
            "10,000 headers",
            raw_http::post(TOKEN, &format!("{ct}{many}"), &body),
            vec![Answer::Protocol(431)],
            true,
        ),
        raw_case(
            "a 1 MiB header value",
            raw_http::post(TOKEN, &format!("{ct}{huge}"), &body),
            vec![Answer::Protocol(431)],
            true,
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
    let app = spawn_app().await;
    let outcome = raw_http::exchange(app.addr, b"", Duration::from_secs(4)).await;
    assert!(outcome.closed, "still open after {:?}", outcome.elapsed);
    assert!(outcome.responses.is_empty());
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn an_http2_connection_that_never_sends_headers_is_closed_at_the_header_deadline() {
    let app = spawn_app().await;
    // Preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let outcome = raw_http::exchange(app.addr, preface, Duration::from_secs(4)).await;
    assert!(outcome.closed, "still open after {:?}", outcome.elapsed);
    assert!(app.is_healthy().await);
}
