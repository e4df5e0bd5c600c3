//! What a connection may cost, on every listener (public, TLS, admin): the header-block cap (431
//! and close), the header deadline (for idle keep-alive connections too), the send deadline (a
//! client that does not read its responses), and the connection cap,
//! where the longest-idle connection makes room and only a listener with a request on every
//! connection turns a new one away.

use crate::helpers::raw_http::{get_keep_alive, read_bytes_until_closed, read_until_closed};
use crate::helpers::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::ResponseTemplate;

/// A request head that is never finished: the filler header has no line end yet.
const PARTIAL_HEAD: &[u8] = b"POST /api/v1/kick/token HTTP/1.1\r\nHost: x\r\nX-Filler: ";

/// Sets the header deadline, adds `lines` under `[server]` and turns the admin listener on.
fn server_keys(header_read_timeout_secs: u64, lines: &str) -> impl FnOnce(String) -> String + '_ {
    move |toml| {
        toml.replace(
            "header_read_timeout_secs = 1\n",
            &format!(
                "header_read_timeout_secs = {header_read_timeout_secs}\nadmin_listen = \"127.0.0.1:0\"\n{lines}\n"
            ),
        )
    }
}

/// A `/token` body with its own code, so identical requests are not shared by single-flight.
fn exchange_with_code(code: &str) -> serde_json::Value {
    let mut body = exchange_body();
    body["code"] = code.into();
    body
}

/// Sends a header block that has not ended after `filler` bytes.
async fn send_partial_head(stream: &mut (impl AsyncWrite + Unpin), filler: usize) {
    let mut head = PARTIAL_HEAD.to_vec();
    head.resize(PARTIAL_HEAD.len() + filler, b'a');
    // The server may answer 431 and close before taking it all.
    let _ = stream.write_all(&head).await;
}

/// Opens a connection that has sent part of a header block.
async fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    send_partial_head(&mut stream, 100).await;
    stream
}

#[tokio::test]
async fn a_header_block_that_never_ends_gets_431_and_the_connection_closes_on_both_listeners() {
    // A long header deadline, so only the cap can end these connections quickly.
    let app = spawn_app_with(server_keys(30, "")).await;
    app.upstream_must_not_be_called().await;

    for addr in [app.addr, app.admin.expect("admin listener")] {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        send_partial_head(&mut stream, 20_000).await;
        let started = Instant::now();
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;

        assert!(answer.starts_with("HTTP/1.1 431"), "{addr}: {answer:?}");
        assert!(closed, "{addr}: the connection must close after 431");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_complete_header_block_over_the_cap_gets_431_and_one_under_it_is_served() {
    let app = spawn_app_with(server_keys(30, "")).await;
    let request = |filler: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };

    let mut over = TcpStream::connect(app.addr).await.expect("connect");
    let _ = over.write_all(request(17_000).as_bytes()).await;
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(closed);

    // The default cap is 16 KiB: 15,000 bytes of header still get their answer.
    let mut under = TcpStream::connect(app.addr).await.expect("connect");
    under
        .write_all(request(15_000).as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), under.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn the_header_cap_follows_server_max_header_bytes() {
    let app = spawn_app_with(server_keys(30, "max_header_bytes = 32768")).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
                "a".repeat(24_000)
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Still a cap: past 32 KiB the connection is refused the same way.
    let mut over = TcpStream::connect(app.addr).await.expect("connect");
    send_partial_head(&mut over, 40_000).await;
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(closed);
}

#[tokio::test]
async fn the_admin_listener_closes_silent_half_sent_and_idle_connections_at_its_deadline() {
    // The test config's header deadline is 1 s.
    let app = spawn_app_with(server_keys(1, "")).await;
    let admin = app.admin.expect("admin listener");

    let mut silent = TcpStream::connect(admin).await.expect("connect");
    let mut half = half_sent(admin).await;
    let (answer, mut kept_alive) = get_keep_alive(admin, "/metrics").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    let started = Instant::now();
    for (what, stream) in [
        ("silent", &mut silent),
        ("half-sent", &mut half),
        ("idle keep-alive", &mut kept_alive),
    ] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(closed, "the admin listener kept a {what} connection open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_on_the_public_listener_is_closed_at_the_header_deadline() {
    let app = spawn_app().await;
    let (answer, mut stream) = get_keep_alive(app.addr, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "kept alive: {answer:?}"
    );

    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection must not stay open");
    // header_read_timeout_secs = 1 in the test config.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// How many answers (status lines) `bytes` holds.
fn answers_in(bytes: &[u8]) -> usize {
    bytes.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

#[tokio::test]
async fn a_client_that_pipelines_requests_and_never_reads_is_closed_at_the_send_deadline() {
    // About 60 MB of answers: more than any socket buffers hold (Linux caps the send buffer at
    // `tcp_wmem`'s maximum, 4 MB by default), in 48 KB of requests.
    const REQUESTS: usize = 1000;
    let app = spawn_app_with(server_keys(1, "")).await;
    // A small receive window, so the proxy's writes stall after a few answers (the OpenAPI
    // document is some 60 KB each) instead of filling megabytes of socket buffers first.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    stream
        .write_all(&request.repeat(REQUESTS))
        .await
        .expect("write the pipelined requests");

    // Nothing read for well past the deadline (header_read_timeout_secs = 1 in the test config).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (read, closed) = read_bytes_until_closed(&mut stream, Duration::from_secs(20)).await;

    assert!(closed, "the connection was still open");
    // Closed while answers were still owed: without the deadline every answer would have come
    // once the client started reading, the connection closing only when idle after the last.
    let answered = answers_in(&read);
    assert!(answered < REQUESTS, "all {answered} answers were written");
    assert!(app.is_healthy().await);
    // Counted under its own reason.
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics.lines().any(
            |line| line.starts_with("kick_proxy_connection_errors_total")
                && line.contains("listener=\"public\"")
                && line.contains("reason=\"send_timeout\"")
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_reader_that_keeps_taking_its_answers_gets_all_of_them_past_the_send_deadline() {
    const REQUESTS: usize = 400;
    // A send deadline of 2 s: a reader frozen that long by a busy machine would be cut.
    let app = spawn_app_with(server_keys(2, "")).await;
    // A fixed receive window (no autotuning), so the socket buffers hold far less than the
    // answers (about 25 MB) and the proxy's writes stall again and again; the last request
    // closes the connection once answered.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let mut requests = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(REQUESTS - 1);
    requests.extend_from_slice(
        b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    stream.write_all(&requests).await.expect("write");

    // At most 64 KiB every 8 ms: at least 385 reads, over three seconds in all (so well past the
    // send deadline, header_read_timeout_secs = 2, after the first stall), while each stall ends
    // well within it. (The proxy's socket reports room only once about a third of its send buffer
    // has drained, so progress needs a reader that drains that much within the deadline: about
    // 0.65 MB a second here, a tenth of this reader's pace.)
    let started = Instant::now();
    let mut read = Vec::new();
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => read.extend_from_slice(&chunk[..n]),
            other => panic!("after {} bytes: {other:?}", read.len()),
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }

    assert_eq!(
        answers_in(&read),
        REQUESTS,
        "every answer, in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_listener_closes_the_longest_idle_connection_to_serve_a_new_one() {
    let app = spawn_app_with(server_keys(
        30,
        "max_connections = 4\nadmin_max_connections = 4",
    ))
    .await;
    app.upstream_succeeds().await;
    let admin = app.admin.expect("admin listener");

    for (addr, path) in [(app.addr, "/healthz"), (admin, "/metrics")] {
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(half_sent(addr).await);
            // Distinct idle-since times, so "the longest idle" is the first one.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let started = Instant::now();
        let (answer, _) = get_keep_alive(addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{addr}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let (_, oldest_closed) = read_until_closed(&mut idle[0], Duration::from_secs(2)).await;
        assert!(
            oldest_closed,
            "{addr}: the longest-idle connection makes room"
        );
        let (_, newest_closed) = read_until_closed(&mut idle[3], Duration::from_millis(300)).await;
        assert!(
            !newest_closed,
            "{addr}: only one connection is closed for one new one"
        );
    }

    // A real exchange goes through the full public listener too.
    let _idle: Vec<TcpStream> = half_sent_many(app.addr, 4).await;
    let response = app.exchange().await;
    assert_eq!(response.status(), 200);
}

/// `n` half-sent connections to `addr`.
async fn half_sent_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(half_sent(addr).await);
    }
    streams
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_lock_real_clients_out() {
    let app = spawn_app_with(server_keys(60, "max_connections = 128")).await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 10)
        .await;

    let idle = half_sent_many(app.addr, 1000).await;
    let started = Instant::now();
    for _ in 0..10 {
        // A fresh client each time: a new connection into the full listener.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let response = client
            .post(app.url("/api/v1/kick/token"))
            .json(&exchange_body())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("a real client is answered");
        assert_eq!(response.status(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn a_full_listener_with_a_request_on_every_connection_closes_the_next_one_unanswered() {
    let app = spawn_app_with(server_keys(1, "max_connections = 2")).await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_millis(1500)),
        2,
    )
    .await;

    // Two exchanges in flight, each on its own connection.
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            let url = app.url("/api/v1/kick/token");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&exchange_with_code(&format!("CODE-IN-FLIGHT-{i}")))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while app
        .upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "both exchanges reach the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut third = TcpStream::connect(app.addr)
        .await
        .expect("the kernel accepts");
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(1)).await;
    assert!(closed, "the connection beyond the cap is closed");
    assert!(answer.is_empty(), "and never answered: {answer:?}");

    for request in in_flight {
        assert_eq!(request.await.expect("task").expect("answered"), 200);
    }
    // Once they are done, the listener has room again.
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn over_tls_a_header_block_that_never_ends_gets_431() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.path().join("tls.crt"), generated.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("tls.key"),
        generated.signing_key.serialize_pem(),
    )
    .expect("write");
    let tls_table = format!(
        "[server.tls]\ncert_file = \"{0}/tls.crt\"\nkey_file = \"{0}/tls.key\"\n",
        dir.path().display()
    );
    let app = spawn_app_with(move |toml| {
        format!(
            "{}\n{tls_table}",
            toml.replace(
                "header_read_timeout_secs = 1",
                "header_read_timeout_secs = 30"
            )
        )
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(app.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("handshake");

    send_partial_head(&mut stream, 20_000).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(closed);
}
