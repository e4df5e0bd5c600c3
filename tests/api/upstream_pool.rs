//! The provider's connection pool: a burst's connections are kept (as many as
//! `limits.max_upstream_calls`) and reused by the next burst, not closed and opened again.

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
