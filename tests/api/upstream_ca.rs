//! `providers.<name>.ca_file`: a provider served over HTTPS with a certificate from a private CA
//! (a self-hosted OAuth server, an egress proxy that re-signs TLS, the benchmark's stub). Trusted
//! only when `ca_file` names that CA; connections are pooled (one TLS handshake, not one per call).

use crate::helpers::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kick_oauth_proxy::api::AppState;
use kick_oauth_proxy::config::Settings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A private certificate authority.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
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
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

impl TestCa {
    /// Writes the CA certificate (PEM) to `dir/file`; its path.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }

    /// A server certificate for 127.0.0.1 signed by this CA, and its key.
    fn server_certificate(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "test provider");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// One request the provider received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    form: HashMap<String, String>,
}

/// A token endpoint over HTTPS (HTTP/1.1, keep-alive) answering Kick's success shape to every
/// request, counting the TCP connections it accepted and recording what it received.
struct TlsProvider {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsProvider {
    async fn start(ca: &TestCa) -> Self {
        let (cert, key) = ca.server_certificate();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    let received = Arc::clone(&received);
                    tokio::spawn(async move {
                        // A client that does not trust the CA aborts the handshake here.
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |request: hyper::Request<hyper::body::Incoming>| {
                                let received = Arc::clone(&received);
                                async move { Ok::<_, hyper::Error>(answer(request, &received).await) }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            connections,
            received,
            task,
        }
    }

    fn token_url(&self) -> String {
        format!("https://{}/oauth/token", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    received: &Mutex<Vec<Received>>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = url::form_urlencoded::parse(&body).into_owned().collect();
    received.lock().expect("lock").push(Received {
        method,
        path,
        content_type,
        form,
    });
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(kick_tokens().to_string())))
        .expect("response")
}

/// The test config with `kick`'s token endpoint at `token_url` and, when given, `ca_file`.
fn pointing_at(toml: String, token_url: &str, ca_file: Option<&Path>) -> String {
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

/// An HTTPS provider behind a private CA, and a proxy whose `ca_file` trusts that CA.
async fn trusted_provider_and_proxy() -> (TlsProvider, TestApp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("kick-oauth-proxy test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let provider = TlsProvider::start(&ca).await;
    let token_url = provider.token_url();
    // The file is read at start-up: the directory may go once the proxy runs.
    let app = spawn_app_with(|toml| pointing_at(toml, &token_url, Some(&ca_file))).await;
    (provider, app)
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_is_reached_when_ca_file_trusts_it() {
    let (provider, app) = trusted_provider_and_proxy().await;

    let response = app.exchange().await;

    assert_eq!(response.status(), 200);
    assert_token_headers(response.headers());
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let received = provider.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/oauth/token");
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.form, exchange_form());
}

#[tokio::test]
async fn without_the_right_ca_file_the_provider_is_not_trusted_and_the_caller_gets_the_502() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("kick-oauth-proxy test CA");
    let other_ca = test_ca("some other CA");
    let other_ca_file = other_ca.write(dir.path(), "other-ca.pem");
    let provider = TlsProvider::start(&ca).await;
    let token_url = provider.token_url();

    // No ca_file: the built-in roots alone do not know the private CA.
    let app = spawn_app_with(|toml| pointing_at(toml, &token_url, None)).await;
    assert_kick_502(app.exchange().await).await;
    let after_first = provider.connections();
    assert!(after_first >= 1, "the proxy did try to connect");

    // A ca_file with a different CA: still not trusted (the file adds roots, it does not turn
    // verification off).
    let app = spawn_app_with(|toml| pointing_at(toml, &token_url, Some(&other_ca_file))).await;
    assert_kick_502(app.exchange().await).await;

    assert!(
        provider.connections() > after_first,
        "the second proxy did try to connect ({} connections, {after_first} before it)",
        provider.connections()
    );
    assert!(
        provider.received().is_empty(),
        "no request may be sent over an untrusted connection: {:?}",
        provider.received()
    );
}

#[tokio::test]
async fn sequential_exchanges_over_tls_reuse_one_connection() {
    let (provider, app) = trusted_provider_and_proxy().await;

    for i in 0..5 {
        let response = app.exchange().await;
        assert_eq!(response.status(), 200, "exchange {i}");
        assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    }

    assert_eq!(provider.received().len(), 5);
    assert_eq!(
        provider.connections(),
        1,
        "one TCP connection (one TLS handshake) for five sequential exchanges"
    );
}

fn settings_with_ca(ca_file: Option<&Path>) -> Settings {
    let toml = pointing_at(
        config_toml("http://127.0.0.1:9"),
        "https://127.0.0.1:9/oauth/token",
        ca_file,
    );
    Settings::from_toml_with_env(&toml, []).expect("valid")
}

#[tokio::test]
async fn a_changed_ca_file_is_reported_on_reload_as_needing_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = test_ca("first CA").write(dir.path(), "ca.pem");
    let started = settings_with_ca(Some(&path));
    assert_eq!(started.providers["kick"].ca_certificates.len(), 1);
    let state = AppState::new(&started, None).expect("clients build");
    let ca_file_only = vec!["providers.kick.ca_file".to_owned()];

    // Same file, same content: nothing to restart for.
    assert_eq!(
        state.reload(&settings_with_ca(Some(&path))),
        Vec::<String>::new()
    );

    // Same path, new content (a rotated CA): the running client still trusts the old one.
    test_ca("second CA").write(dir.path(), "ca.pem");
    assert_eq!(state.reload(&settings_with_ca(Some(&path))), ca_file_only);
    // Still reported on the next reload (the running client was built from the first CA), while
    // what does reload, such as the allowlist, is applied.
    let mut next = settings_with_ca(Some(&path));
    let added = "http://127.0.0.1:4242/added-on-reload".to_owned();
    next.providers
        .get_mut("kick")
        .expect("kick")
        .allowed_redirect_uris
        .push(added.clone());
    assert_eq!(state.reload(&next), ca_file_only);
    let allowlist = state
        .exchange()
        .provider("kick")
        .expect("kick")
        .allowed_redirect_uris
        .load();
    assert!(allowlist.contains(&added), "{allowlist:?}");

    // Removed.
    assert_eq!(state.reload(&settings_with_ca(None)), ca_file_only);

    // Another restart-only key is named on its own, and alongside.
    let mut moved = settings_with_ca(None);
    moved.providers.get_mut("kick").expect("kick").token_url =
        "https://127.0.0.1:10/oauth/token".parse().expect("url");
    assert_eq!(
        state.reload(&moved),
        ["providers.kick.token_url", "providers.kick.ca_file"]
    );
}
