//! The provider's connection pool: a burst's connections are kept (as many as
//! `limits.max_upstream_calls`) and reused by the next burst, not closed and opened again;
//! consecutive calls share one kept connection; one the provider closed while it sat in the pool
//! is not used; a request whose kept connection died unanswered is not sent again.
//!
//! These run on `#[tokio::test]`'s current-thread runtime, with the app in the same runtime: a
//! finished call's connection is back in the pool before the test's next step runs, and a short
//! sleep lets the runtime read a FIN the provider sent. A multi-threaded runtime would race both.

use crate::helpers::raw_http;
use crate::helpers::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// More calls at once than the 64 idle connections the pool used to keep.
const BURST: usize = 80;

/// A plain-HTTP token endpoint that counts its TCP connections and holds every answer until
/// [`BURST`] requests are waiting, so a burst really is `BURST` calls in flight at once.
async fn burst_provider(connections: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let barrier = Arc::new(tokio::sync::Barrier::new(BURST));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let barrier = Arc::clone(&barrier);
                    async move {
                        // Bounded: a burst that never fills shows up in the counts, not as a hang.
                        let _ = tokio::time::timeout(Duration::from_secs(8), barrier.wait()).await;
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(kick_tokens().to_string())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// `BURST` exchanges at once, each with its own code (identical ones would share one call).
async fn burst(app: &TestApp, round: usize) {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let mut body = exchange_body();
        body["code"] = Value::from(format!("code-{round}-{i}"));
        let request = app.http.post(app.url("/api/v1/kick/token")).json(&body);
        calls.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    let answers: Vec<_> = calls.join_all().await;
    assert!(
        answers.iter().all(|status| matches!(status, Ok(200))),
        "round {round}: {answers:?}"
    );
}

#[tokio::test]
async fn a_second_burst_reuses_every_connection_of_the_first() {
    let connections = Arc::new(AtomicUsize::new(0));
    let base = burst_provider(Arc::clone(&connections)).await;
    // The provider holds each burst until it is complete: room for a slow machine.
    let app = TestApp::builder()
        .token_url_base(&base)
        .edit(|toml| toml.replace("timeout_secs = 2", "timeout_secs = 10"))
        .spawn()
        .await;

    burst(&app, 1).await;
    assert_eq!(connections.load(Ordering::SeqCst), BURST);
    // The last answers' connections go back to the pool as their bodies end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    burst(&app, 2).await;

    // All kept: the second burst opens none. A connection whose return to the pool is still
    // under way when the second burst starts may be replaced, hence a little room; a pool of 64
    // idle connections opens 16 more.
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        opened < BURST + 16,
        "the second burst opened {} connections",
        opened - BURST
    );
}

/// What a hand-written provider saw, and the test's handle to close its idle connections.
struct HandWritten {
    base: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Notified by the test: the connection waiting for its next request closes...
    close: Arc<tokio::sync::Notify>,
    /// ...and says so here.
    closed: Arc<tokio::sync::Notify>,
}

impl HandWritten {
    fn counts(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}

/// A plain-HTTP token endpoint written by hand, counting connections and requests: `answer` is
/// told the request's number (1 for the first, across connections) and says whether to answer it
/// (keeping the connection open) or to close the connection unanswered.
async fn hand_written_provider(answer: fn(usize) -> bool) -> HandWritten {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let provider = HandWritten {
        base: format!("http://{}", listener.local_addr().expect("addr")),
        connections: Arc::default(),
        requests: Arc::default(),
        close: Arc::default(),
        closed: Arc::default(),
    };
    let (connections, requests, close, closed) = (
        Arc::clone(&provider.connections),
        Arc::clone(&provider.requests),
        Arc::clone(&provider.close),
        Arc::clone(&provider.closed),
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let (requests, close, closed) = (
                Arc::clone(&requests),
                Arc::clone(&close),
                Arc::clone(&closed),
            );
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                loop {
                    tokio::select! {
                        read = raw_http::read_request(&mut socket) => if !read {
                            return;
                        },
                        () = close.notified() => {
                            drop(socket);
                            closed.notify_one();
                            return;
                        }
                    }
                    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
                    if !answer(n) {
                        return;
                    }
                    let body = kick_tokens().to_string();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    provider
}

/// One exchange with its own code (a repeated one would be answered from the replay cache).
async fn exchange_code(app: &TestApp, code: &str) -> u16 {
    let mut body = exchange_body();
    body["code"] = Value::from(code);
    app.post_json("/api/v1/kick/token", &body)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_kept_connection_the_provider_closed_while_idle_is_not_used() {
    let provider = hand_written_provider(|_| true).await;
    let app = TestApp::builder()
        .token_url_base(&provider.base)
        .spawn()
        .await;

    assert_eq!(exchange_code(&app, "before-close").await, 200);
    // The call is over and its connection sits in the pool; now the provider closes it (an idle
    // timeout shorter than the proxy's 90 s), and the runtime reads the FIN.
    provider.close.notify_one();
    provider.closed.notified().await;
    tokio::time::sleep(Duration::from_millis(1)).await;

    assert_eq!(exchange_code(&app, "after-close").await, 200);
    // The second call went out once, on a new connection: nothing was sent into the closed one.
    assert_eq!(provider.counts(), (2, 2), "(connections, requests)");
}

#[tokio::test]
async fn a_request_whose_kept_connection_dies_unanswered_is_a_502_and_not_sent_again() {
    // The first request is answered and the connection kept; the second is read, then the
    // connection is closed without an answer (the code may have been spent); the rest answered.
    let provider = hand_written_provider(|n| n != 2).await;
    let app = TestApp::builder()
        .token_url_base(&provider.base)
        .spawn()
        .await;

    assert_eq!(exchange_code(&app, "first").await, 200);
    assert_eq!(exchange_code(&app, "second").await, 502);
    assert_eq!(
        provider.counts(),
        (1, 2),
        "(connections, requests): the second call was not sent again"
    );
    // The dead connection left the pool: the next call opens a new one and is answered.
    assert_eq!(exchange_code(&app, "third").await, 200);
    assert_eq!(provider.counts(), (2, 3), "(connections, requests)");
}

#[tokio::test]
async fn consecutive_calls_share_one_kept_connection() {
    let provider = hand_written_provider(|_| true).await;
    let app = TestApp::builder()
        .token_url_base(&provider.base)
        .spawn()
        .await;

    for round in 0..5 {
        assert_eq!(exchange_code(&app, &format!("kept-{round}")).await, 200);
    }
    assert_eq!(provider.counts(), (1, 5), "(connections, requests)");
}
