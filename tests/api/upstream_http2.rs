//! HTTP/2 to a provider that offers it by ALPN (`h2` before `http/1.1`), over TLS from a private
//! CA trusted by `ca_file`: the exchange works, sequential calls share one connection, and the
//! request is the same as over HTTP/1.1 (method, path, authority, headers, form). A stream the
//! provider refuses unprocessed (`REFUSED_STREAM`) is sent again; one it resets otherwise is not.

use crate::helpers::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request the provider received.
#[derive(Debug, Clone)]
struct Received {
    alpn: Option<Vec<u8>>,
    version: hyper::Version,
    method: String,
    authority: Option<String>,
    path: String,
    headers: HashMap<String, String>,
    form: HashMap<String, String>,
}

/// An HTTPS token endpoint offering `h2` and `http/1.1`, serving whichever was negotiated.
struct H2Provider {
    port: u16,
    /// HTTP/2 streams opened, answered or reset.
    streams: Arc<AtomicUsize>,
    ca_pem: String,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for H2Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Provider {
    async fn start() -> Self {
        Self::start_resetting_first(None).await
    }

    /// With `reset`, the first HTTP/2 stream is reset with that reason (served with the `h2`
    /// crate directly, which can send any reset); the others are answered.
    async fn start_resetting_first(reset: Option<h2::Reason>) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "kick-oauth-proxy h2 test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).expect("signed");
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
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            let streams = Arc::clone(&streams);
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    let received = Arc::clone(&received);
                    let streams = Arc::clone(&streams);
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        let h2 = alpn.as_deref() == Some(b"h2");
                        if let (true, Some(reason)) = (h2, reset) {
                            serve_resetting_first(tls, reason, &streams, &received).await;
                            return;
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
                                .serve_connection(io, service)
                                .await;
                        }
                    });
                }
            }
        });
        Self {
            port,
            streams,
            ca_pem,
            connections,
            received,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

/// One HTTP/2 connection served with the `h2` crate: the first stream of the provider is reset
/// with `reason`, the others get the token JSON.
async fn serve_resetting_first(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    reason: h2::Reason,
    streams: &Arc<AtomicUsize>,
    received: &Arc<Mutex<Vec<Received>>>,
) {
    let Ok(mut connection) = h2::server::handshake(tls).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        if streams.fetch_add(1, Ordering::SeqCst) == 0 {
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
            received.lock().expect("lock").push(Received {
                alpn: Some(b"h2".to_vec()),
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
                form: url::form_urlencoded::parse(&bytes).into_owned().collect(),
            });
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

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    alpn: Option<Vec<u8>>,
    received: &Mutex<Vec<Received>>,
) -> hyper::Response<Full<Bytes>> {
    let version = request.version();
    let method = request.method().to_string();
    let authority = request.uri().authority().map(ToString::to_string);
    let path = request.uri().path().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = url::form_urlencoded::parse(&body).into_owned().collect();
    received.lock().expect("lock").push(Received {
        alpn,
        version,
        method,
        authority,
        path,
        headers,
        form,
    });
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(kick_tokens().to_string())))
        .expect("response")
}

/// The app with the provider's token URL and its CA as `ca_file`.
async fn app_for(provider: &H2Provider) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &provider.ca_pem).expect("write CA");
    let base = format!("https://127.0.0.1:{}", provider.port);
    let app = spawn_app_with(|toml| {
        format!(
            "{}ca_file = \"{}\"\n",
            toml.lines()
                .map(|line| {
                    if line.starts_with("token_url = ") {
                        format!("token_url = \"{base}/oauth/token\"\n")
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect::<String>(),
            ca_file.display()
        )
    })
    .await;
    (app, dir)
}

#[tokio::test]
async fn a_provider_that_negotiates_h2_is_called_over_http2_on_one_connection() {
    let provider = H2Provider::start().await;
    let (app, _dir) = app_for(&provider).await;

    for i in 0..3 {
        let response = app.exchange().await;
        assert_eq!(response.status(), 200, "exchange {i}");
        assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    }

    let received = provider.received();
    assert_eq!(received.len(), 3, "{received:?}");
    for request in &received {
        assert_eq!(request.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(request.version, hyper::Version::HTTP_2);
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.authority.as_deref(),
            Some(format!("127.0.0.1:{}", provider.port).as_str())
        );
        assert_eq!(request.path, "/oauth/token");
        assert_eq!(
            request.headers.get("content-type").map(String::as_str),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            request.headers.get("accept").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            request.headers.get("user-agent").map(String::as_str),
            Some(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(request.form, exchange_form());
    }
    assert_eq!(
        provider.connections.load(Ordering::SeqCst),
        1,
        "HTTP/2 multiplexes the calls over one pooled connection"
    );
}

#[tokio::test]
async fn a_stream_the_provider_refused_unprocessed_is_sent_again() {
    let provider = H2Provider::start_resetting_first(Some(h2::Reason::REFUSED_STREAM)).await;
    let (app, _dir) = app_for(&provider).await;

    let response = app.exchange().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    assert_eq!(
        provider.streams.load(Ordering::SeqCst),
        2,
        "refused, then sent again"
    );
    let received = provider.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].form, exchange_form());
}

#[tokio::test]
async fn a_stream_the_provider_reset_otherwise_is_not_sent_again() {
    // INTERNAL_ERROR says nothing about whether the code was used: never retried.
    let provider = H2Provider::start_resetting_first(Some(h2::Reason::INTERNAL_ERROR)).await;
    let (app, _dir) = app_for(&provider).await;

    let response = app.exchange().await;

    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "error_kick_server_error"
    );
    assert_eq!(
        provider.streams.load(Ordering::SeqCst),
        1,
        "one attempt only"
    );
    assert!(provider.received().is_empty());
}
