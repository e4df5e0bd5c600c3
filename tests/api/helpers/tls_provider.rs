//! A token endpoint over TLS from a private CA ([`TestCa`]), for the tests of `ca_file`, HTTP/2 by
//! ALPN and the egress proxy: [`TlsProvider`] answers Kick's success shape to every request over
//! whichever protocol was negotiated, counting its connections and recording what it received.

use super::kick_tokens;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A private certificate authority.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate (PEM) to `dir/file`; its path.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }

    /// A TLS server for 127.0.0.1 with a certificate signed by this CA, offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "test provider");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The protocol the TLS handshake negotiated by ALPN.
    pub alpn: Option<Vec<u8>>,
    pub version: hyper::Version,
    pub method: String,
    /// The request target's authority (HTTP/2's `:authority`; an absolute-form target's).
    pub authority: Option<String>,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub form: HashMap<String, String>,
}

impl Received {
    fn of(alpn: Option<Vec<u8>>, parts: &hyper::http::request::Parts, body: &[u8]) -> Self {
        Self {
            alpn,
            version: parts.version,
            method: parts.method.to_string(),
            authority: parts.uri.authority().map(ToString::to_string),
            path: parts.uri.path().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            form: url::form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A token endpoint over TLS on 127.0.0.1; stops when dropped.
pub struct TlsProvider {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// See [`TlsProvider::streams`].
    streams: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsProvider {
    /// Offers `http/1.1` only by ALPN (keep-alive).
    pub async fn http1(ca: &TestCa) -> Self {
        Self::start(ca.server_config(&[b"http/1.1"]), None).await
    }

    /// Offers `h2` before `http/1.1` by ALPN and serves whichever was negotiated.
    pub async fn h2(ca: &TestCa) -> Self {
        Self::start(ca.server_config(&[b"h2", b"http/1.1"]), None).await
    }

    /// As [`TlsProvider::h2`], the first HTTP/2 stream reset with `reason` (served with the `h2`
    /// crate directly, which can send any reset); the others are answered.
    pub async fn h2_resetting_first(ca: &TestCa, reason: h2::Reason) -> Self {
        Self::h2_resetting(ca, reason, 1).await
    }

    /// As [`TlsProvider::h2_resetting_first`], the first `count` streams reset.
    pub async fn h2_resetting(ca: &TestCa, reason: h2::Reason, count: usize) -> Self {
        let config = ca.server_config(&[b"h2", b"http/1.1"]);
        Self::start(config, Some(Misbehaviour::Reset { reason, count })).await
    }

    /// As [`TlsProvider::h2`], but its first connection, once the first request's `HEADERS`
    /// arrived, is shut down with a `GOAWAY` (`NO_ERROR`) whose last stream id, 0, leaves that
    /// request out: a graceful shutdown in which it was not processed (RFC 9113 §6.8).
    pub async fn h2_going_away_first(ca: &TestCa) -> Self {
        let config = ca.server_config(&[b"h2", b"http/1.1"]);
        Self::start(config, Some(Misbehaviour::GoAwayFirstConnection)).await
    }

    async fn start(config: rustls::ServerConfig, misbehaviour: Option<Misbehaviour>) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            let streams = Arc::clone(&streams);
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
                    let acceptor = acceptor.clone();
                    let received = Arc::clone(&received);
                    let streams = Arc::clone(&streams);
                    tokio::spawn(async move {
                        // A client that does not trust the CA aborts the handshake here.
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        let h2 = alpn.as_deref() == Some(b"h2");
                        match (h2, misbehaviour) {
                            (true, Some(Misbehaviour::Reset { reason, count })) => {
                                serve_resetting(tls, reason, count, &streams, &received).await;
                                return;
                            }
                            (true, Some(Misbehaviour::GoAwayFirstConnection)) if first => {
                                go_away_after_first_headers(tls).await;
                                return;
                            }
                            _ => {}
                        }
                        streams.fetch_add(1, Ordering::SeqCst);
                        let service = hyper::service::service_fn(
                            move |request: hyper::Request<hyper::body::Incoming>| {
                                let received = Arc::clone(&received);
                                let alpn = alpn.clone();
                                async move {
                                    Ok::<_, hyper::Error>(answer(request, alpn, &received).await)
                                }
                            },
                        );
                        let io = TokioIo::new(tls);
                        if h2 {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(io, service)
                                .await;
                        }
                    });
                }
            }
        });
        Self {
            addr,
            connections,
            streams,
            received,
            task,
        }
    }

    pub fn token_url(&self) -> String {
        format!("https://{}/oauth/token", self.addr)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Streams served with the `h2` crate (a misbehaving provider: answered or reset), plus one
    /// per connection hyper served (HTTP/1.1, or HTTP/2 from a well-behaved provider).
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

/// How an HTTP/2 connection misbehaves.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// The provider's first `count` streams are reset with `reason`.
    Reset { reason: h2::Reason, count: usize },
    /// See [`TlsProvider::h2_going_away_first`].
    GoAwayFirstConnection,
}

type ServerTls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// One HTTP/2 connection served with the `h2` crate: the provider's first `count` streams are
/// reset with `reason`, the others get the token JSON.
async fn serve_resetting(
    tls: ServerTls,
    reason: h2::Reason,
    count: usize,
    streams: &Arc<AtomicUsize>,
    received: &Arc<Mutex<Vec<Received>>>,
) {
    let Ok(mut connection) = h2::server::handshake(tls).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        if streams.fetch_add(1, Ordering::SeqCst) < count {
            respond.send_reset(reason);
            continue;
        }
        let received = Arc::clone(received);
        // Each stream in a task of its own: the connection must go on being polled meanwhile.
        tokio::spawn(async move {
            let (parts, mut body) = request.into_parts();
            let mut bytes = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            received
                .lock()
                .expect("lock")
                .push(Received::of(Some(b"h2".to_vec()), &parts, &bytes));
            let response = hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(())
                .expect("response");
            if let Ok(mut send) = respond.send_response(response, false) {
                let _ = send.send_data(Bytes::from(kick_tokens().to_string()), true);
            }
        });
    }
}

/// Speaks just enough HTTP/2 by hand (the `h2` crate counts a stream it has read as processed):
/// the server's SETTINGS, an ACK of the client's, and once a HEADERS frame arrived a GOAWAY with
/// last stream id 0 and `NO_ERROR`; then reads until the client closes.
async fn go_away_after_first_headers(mut tls: ServerTls) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    const GOAWAY: u8 = 0x7;
    const ACK: u8 = 0x1;
    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len())
            .expect("short frame")
            .to_be_bytes();
        let mut bytes = vec![length[1], length[2], length[3], kind, flags, 0, 0, 0, 0];
        bytes.extend_from_slice(payload);
        bytes
    }
    let mut preface = [0; 24];
    if tls.read_exact(&mut preface).await.is_err()
        || tls.write_all(&frame(SETTINGS, 0, &[])).await.is_err()
    {
        return;
    }
    loop {
        let mut head = [0; 9];
        if tls.read_exact(&mut head).await.is_err() {
            return;
        }
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; length];
        if tls.read_exact(&mut payload).await.is_err() {
            return;
        }
        match (head[3], head[4] & ACK) {
            (SETTINGS, 0) if tls.write_all(&frame(SETTINGS, ACK, &[])).await.is_err() => return,
            (HEADERS, _) => break,
            _ => {}
        }
    }
    // Last stream id 0, error code NO_ERROR (0).
    if tls.write_all(&frame(GOAWAY, 0, &[0; 8])).await.is_err() || tls.flush().await.is_err() {
        return;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut rest),
    )
    .await;
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    alpn: Option<Vec<u8>>,
    received: &Mutex<Vec<Received>>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    received
        .lock()
        .expect("lock")
        .push(Received::of(alpn, &parts, &body));
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(kick_tokens().to_string())))
        .expect("response")
}

/// The test config with `kick`'s token endpoint at `token_url` and, when given, `ca_file`.
pub fn pointing_at(toml: String, token_url: &str, ca_file: Option<&Path>) -> String {
    let mut edited: String = toml
        .lines()
        .map(|line| {
            if line.starts_with("token_url = ") {
                format!("token_url = \"{token_url}\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    // `[providers.kick]` is the config's last table: the key lands in it.
    if let Some(path) = ca_file {
        edited.push_str(&format!("ca_file = \"{}\"\n", path.display()));
    }
    edited
}
