//! The benchmark's upstream and its TLS probe.
//!
//! `kick-bench-stub serve --http ADDR --https ADDR --stats ADDR --cert-dir DIR [--threads N]
//! [--alpn h2,http/1.1]`
//!   answers `POST /oauth/token` at once with a Kick-shaped token response, over plain HTTP on one
//!   port and over TLS (a test CA and a leaf for 127.0.0.1/localhost, written to `DIR/ca.pem`) on
//!   another. `GET /stats` on the stats port returns the counters as JSON: TCP connections accepted
//!   per listener, TLS handshakes (full and resumed), requests. Runs until SIGTERM/SIGINT.
//!
//! `kick-bench-stub forward --listen ADDR --upstream URL [--threads N]`
//!   the bare hop: an HTTP/1.1 server (hyper, no axum, no OAuth) that sends every request's body
//!   to URL with hyper-util's pooled client (the proxy's client, without TLS or an egress proxy)
//!   and answers with the upstream's status and body. The floor of one hop on the proxy's stack
//!   (tokio, hyper, hyper-util), beside nginx's, in `bench/nginx.py`.
//!
//! `kick-bench-stub probe --url URL --ca FILE --stats URL --requests N --concurrency C [--fresh]`
//!   sends N token requests, C at a time, with a reqwest client with the settings of the proxy's
//!   provider client (`ProviderSettings::client` in src/upstream/client.rs, which is hyper-util's
//!   client without reqwest's layers) plus the test CA, and
//!   prints one JSON line: requests, TLS handshakes and TCP connections the stub saw meanwhile,
//!   latency percentiles. `--fresh` builds a new client per request (what per-request client setup
//!   would cost). The proxy itself reaches the TLS port with `providers.<name>.ca_file` set to
//!   `DIR/ca.pem`; this probe is the baseline beside it (see ../README.md).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What Kick's token endpoint answers (shape and order as id.kick.com sends it).
const TOKEN_JSON: &[u8] = br#"{"access_token":"NDQ2YTA0ZGEtYmVuY2gtYWNjZXNzLXRva2VuLTAwMDAwMDAwMDAw","token_type":"Bearer","refresh_token":"MGI4ZjQ2ZTYtYmVuY2gtcmVmcmVzaC10b2tlbi0wMDAwMDAwMDAw","expires_in":7200,"scope":"user:read"}"#;

#[derive(Default)]
struct Counters {
    http_connections: AtomicU64,
    https_connections: AtomicU64,
    tls_full_handshakes: AtomicU64,
    tls_resumed_handshakes: AtomicU64,
    tls_failed_handshakes: AtomicU64,
    h2_connections: AtomicU64,
    http_requests: AtomicU64,
    https_requests: AtomicU64,
}

impl Counters {
    fn json(&self) -> String {
        let pairs = [
            ("http_connections", &self.http_connections),
            ("https_connections", &self.https_connections),
            ("tls_full_handshakes", &self.tls_full_handshakes),
            ("tls_resumed_handshakes", &self.tls_resumed_handshakes),
            ("tls_failed_handshakes", &self.tls_failed_handshakes),
            ("h2_connections", &self.h2_connections),
            ("http_requests", &self.http_requests),
            ("https_requests", &self.https_requests),
        ];
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("\"{k}\":{}", v.load(Relaxed)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

static COUNTERS: std::sync::LazyLock<Counters> = std::sync::LazyLock::new(Counters::default);

fn args() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(2);
    while let Some(key) = it.next() {
        let Some(name) = key.strip_prefix("--") else {
            die(&format!("unexpected argument {key}"));
        };
        if name == "fresh" {
            out.insert(name.to_owned(), "1".to_owned());
            continue;
        }
        let value = it
            .next()
            .unwrap_or_else(|| die(&format!("--{name} needs a value")));
        out.insert(name.to_owned(), value);
    }
    out
}

fn die(message: &str) -> ! {
    eprintln!("kick-bench-stub: {message}");
    std::process::exit(2)
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let args = args();
    let threads = args
        .get("threads")
        .map_or(2, |t| t.parse().unwrap_or_else(|_| die("bad --threads")));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    match mode.as_str() {
        "serve" => runtime.block_on(serve(args)),
        "probe" => runtime.block_on(probe(args)),
        "forward" => runtime.block_on(forward(args)),
        _ => die("usage: kick-bench-stub serve|probe|forward --help in the file header"),
    }
}

fn addr(args: &HashMap<String, String>, key: &str) -> SocketAddr {
    args.get(key)
        .unwrap_or_else(|| die(&format!("--{key} ADDR is required")))
        .parse()
        .unwrap_or_else(|_| die(&format!("bad --{key}")))
}

/// A test CA and a leaf for 127.0.0.1 and localhost (ECDSA P-256, as Kick's CDN serves); the CA
/// is written to `dir/ca.pem` for clients to trust.
fn test_certificate(
    dir: &std::path::Path,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let fail = |e: rcgen::Error| -> ! { die(&format!("certificate: {e}")) };
    let ca_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(e));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kick-oauth-proxy bench test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap_or_else(|e| fail(e));
    let leaf_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap_or_else(|e| fail(e));
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .unwrap_or_else(|e| fail(e));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    std::fs::write(dir.join("ca.pem"), ca.pem())
        .unwrap_or_else(|e| die(&format!("write ca.pem: {e}")));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (vec![leaf.der().clone(), ca.der().clone()], key)
}

async fn serve(args: HashMap<String, String>) {
    let http = TcpListener::bind(addr(&args, "http"))
        .await
        .unwrap_or_else(|e| die(&format!("bind --http: {e}")));
    let https = TcpListener::bind(addr(&args, "https"))
        .await
        .unwrap_or_else(|e| die(&format!("bind --https: {e}")));
    let stats = TcpListener::bind(addr(&args, "stats"))
        .await
        .unwrap_or_else(|e| die(&format!("bind --stats: {e}")));
    let dir = PathBuf::from(args.get("cert-dir").map_or("bench-certs", String::as_str));
    let (chain, key) = test_certificate(&dir);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| die(&format!("tls: {e}")))
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| die(&format!("tls: {e}")));
    tls.alpn_protocols = args
        .get("alpn")
        .map_or("h2,http/1.1", String::as_str)
        .split(',')
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(1024);

    let plain = {
        let builder = builder.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = http.accept().await else {
                    continue;
                };
                COUNTERS.http_connections.fetch_add(1, Relaxed);
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|r| token(r, &COUNTERS.http_requests));
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };
    let secure = {
        let builder = builder.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = https.accept().await else {
                    continue;
                };
                COUNTERS.https_connections.fetch_add(1, Relaxed);
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(_) => {
                            COUNTERS.tls_failed_handshakes.fetch_add(1, Relaxed);
                            return;
                        }
                    };
                    let session = stream.get_ref().1;
                    if session.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        COUNTERS.tls_resumed_handshakes.fetch_add(1, Relaxed);
                    } else {
                        COUNTERS.tls_full_handshakes.fetch_add(1, Relaxed);
                    }
                    if session.alpn_protocol() == Some(b"h2") {
                        COUNTERS.h2_connections.fetch_add(1, Relaxed);
                    }
                    let service =
                        hyper::service::service_fn(|r| token(r, &COUNTERS.https_requests));
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };
    let stats_server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = stats.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_r: Request<Incoming>| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(COUNTERS.json())))
                            .unwrap_or_default(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    eprintln!(
        "kick-bench-stub: serving; CA at {}",
        dir.join("ca.pem").display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| die(&format!("signal: {e}")));
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    plain.abort();
    secure.abort();
    stats_server.abort();
    println!("{}", COUNTERS.json());
}

async fn token(
    request: Request<Incoming>,
    counter: &'static AtomicU64,
) -> Result<Response<Full<Bytes>>, Infallible> {
    counter.fetch_add(1, Relaxed);
    let is_token = request.method() == Method::POST && request.uri().path() == "/oauth/token";
    // Read the whole body, as a real endpoint does (and keep-alive needs).
    let _ = request.into_body().collect().await;
    let response = if is_token {
        Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from_static(TOKEN_JSON)))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
    };
    Ok(response.unwrap_or_default())
}

/// A client with the settings of the proxy's provider client (`ProviderSettings::client` in
/// src/upstream/client.rs: the same TLS, redirect, timeout and pool rules; the proxy builds it from
/// hyper-util directly), plus trust in the benchmark's test CA. Keep the settings in step.
fn proxy_like_client(ca: &reqwest::Certificate) -> reqwest::Client {
    let timeout = Duration::from_secs(10);
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent("kick-oauth-proxy/bench-probe")
        .add_root_certificate(ca.clone())
        .build()
        .unwrap_or_else(|e| die(&format!("client: {e}")))
}

async fn stats(url: &str) -> HashMap<String, u64> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| die(&format!("stats client: {e}")));
    let text = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| die(&format!("stats: {e}")))
        .text()
        .await
        .unwrap_or_default();
    text.trim_matches(|c| c == '{' || c == '}' || c == '\n')
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once(':')?;
            Some((k.trim_matches('"').to_owned(), v.parse().ok()?))
        })
        .collect()
}

type Forwarder = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn forward(args: HashMap<String, String>) {
    let listener = TcpListener::bind(addr(&args, "listen"))
        .await
        .unwrap_or_else(|e| die(&format!("bind: {e}")));
    let upstream: hyper::Uri = args
        .get("upstream")
        .unwrap_or_else(|| die("--upstream URL is required"))
        .parse()
        .unwrap_or_else(|e| die(&format!("--upstream: {e}")));
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    let client: Forwarder =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(8192)
            .build(tcp);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                hop(client.clone(), upstream.clone(), request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn hop(
    client: Forwarder,
    upstream: hyper::Uri,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let failed = || {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(failed());
    };
    let mut outbound = Request::post(upstream);
    if let Some(kind) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        outbound = outbound.header(hyper::header::CONTENT_TYPE, kind);
    }
    let Ok(outbound) = outbound.body(Full::new(body)) else {
        return Ok(failed());
    };
    let Ok(answer) = client.request(outbound).await else {
        return Ok(failed());
    };
    let (parts, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(failed());
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    if let Some(kind) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, kind.clone());
    }
    Ok(response)
}

async fn probe(args: HashMap<String, String>) {
    let url: reqwest::Url = args
        .get("url")
        .unwrap_or_else(|| die("--url is required"))
        .parse()
        .unwrap_or_else(|_| die("bad --url"));
    let pem = std::fs::read(args.get("ca").unwrap_or_else(|| die("--ca is required")))
        .unwrap_or_else(|e| die(&format!("--ca: {e}")));
    let ca = reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| die(&format!("--ca: {e}")));
    let stats_url = args
        .get("stats")
        .unwrap_or_else(|| die("--stats is required"))
        .clone();
    let requests: usize = args
        .get("requests")
        .map_or(Ok(1000), |n| n.parse())
        .unwrap_or_else(|_| die("bad --requests"));
    let concurrency: usize = args
        .get("concurrency")
        .map_or(Ok(1), |n| n.parse())
        .unwrap_or_else(|_| die("bad --concurrency"));
    let fresh = args.contains_key("fresh");

    let shared = proxy_like_client(&ca);
    const FORM: [(&str, &str); 6] = [
        ("grant_type", "authorization_code"),
        ("code", "bench-code"),
        ("client_id", "bench-client"),
        ("client_secret", "bench-secret"),
        ("redirect_uri", "http://localhost:1420/auth/callback"),
        (
            "code_verifier",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ),
    ];
    let send = |client: reqwest::Client, url: reqwest::Url| async move {
        let started = Instant::now();
        let response = client
            .post(url)
            .header("accept", "application/json")
            .form(&FORM)
            .send()
            .await
            .unwrap_or_else(|e| die(&format!("request: {e}")));
        let version = response.version();
        let ok = response.status() == StatusCode::OK;
        let _ = response.bytes().await;
        (started.elapsed(), ok, version)
    };
    if !fresh {
        // Warm: the pool holds `concurrency` connections before counting starts.
        let warm: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(send(shared.clone(), url.clone())))
            .collect();
        for w in warm {
            let _ = w.await;
        }
    }
    let before = stats(&stats_url).await;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let shared = shared.clone();
        let url = url.clone();
        let ca = ca.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while (next.fetch_add(1, Relaxed) as usize) < requests {
                let client = if fresh {
                    proxy_like_client(&ca)
                } else {
                    shared.clone()
                };
                samples.push(send(client, url.clone()).await);
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    let after = stats(&stats_url).await;
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.0.as_secs_f64() * 1e3).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[i]
    };
    let ok = samples.iter().filter(|s| s.1).count();
    let version = samples
        .first()
        .map_or("none".to_owned(), |s| format!("{:?}", s.2));
    println!(
        "{{\"mode\":\"{}\",\"requests\":{},\"ok\":{},\"concurrency\":{},\"version\":\"{}\",\
         \"tcp_connections\":{},\"tls_full_handshakes\":{},\"tls_resumed_handshakes\":{},\
         \"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
        if fresh { "fresh-client" } else { "pooled" },
        samples.len(),
        ok,
        concurrency,
        version,
        delta("https_connections"),
        delta("tls_full_handshakes"),
        delta("tls_resumed_handshakes"),
        samples.len() as f64 / elapsed.as_secs_f64(),
        pct(50.0),
        pct(99.0),
        pct(99.9),
    );
}
