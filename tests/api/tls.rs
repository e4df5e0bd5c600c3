//! TLS termination in the binary: a request over HTTPS with a test certificate, HSTS on every
//! response, and a certificate swapped by reload for new handshakes.

use crate::helpers::*;
use serde_json::Value;
use std::path::Path;

struct TestCert {
    pem: String,
}

/// A self-signed certificate for `localhost`, written to `dir/name.{crt,key}`.
fn write_cert(dir: &Path, name: &str) -> TestCert {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let pem = generated.cert.pem();
    std::fs::write(dir.join(format!("{name}.crt")), &pem).expect("write cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        generated.signing_key.serialize_pem(),
    )
    .expect("write key");
    TestCert { pem }
}

fn https_client(trusted: &TestCert, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusted.pem.as_bytes()).expect("pem"))
        .resolve("localhost", addr)
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_proxy_serves_https_with_hsts_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write_cert(dir.path(), "serving");
    let tls_table = format!(
        "[server.tls]\ncert_file = \"{0}/serving.crt\"\nkey_file = \"{0}/serving.key\"\n",
        dir.path().display()
    );
    let app = spawn_app_with(move |toml| format!("{toml}\n{tls_table}")).await;
    app.upstream_succeeds().await;
    let url = |path: &str| format!("https://localhost:{}{path}", app.addr.port());

    let client = https_client(&first, app.addr);
    let health = client
        .get(url("/healthz"))
        .send()
        .await
        .expect("https answers");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let tokens = client
        .post(url("/api/v1/kick/token"))
        .json(&exchange_body())
        .send()
        .await
        .expect("https answers");
    assert_eq!(tokens.status(), 200);
    assert!(tokens.headers().contains_key("strict-transport-security"));
    assert_eq!(tokens.json::<Value>().await.expect("json"), kick_tokens());

    // Plain HTTP on the TLS port gets no answer a client could mistake for success.
    let plain = app.http.get(app.url("/healthz")).send().await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));

    // Swap the files and reload: new handshakes present the new certificate.
    let second = write_cert(dir.path(), "serving");
    app.tls.as_ref().expect("tls on").reload().expect("reload");
    let trusting_new = https_client(&second, app.addr);
    assert_eq!(
        trusting_new
            .get(url("/healthz"))
            .send()
            .await
            .expect("new cert")
            .status(),
        200
    );
    let trusting_old_only = https_client(&first, app.addr);
    assert!(
        trusting_old_only.get(url("/healthz")).send().await.is_err(),
        "the old certificate is no longer presented"
    );
}

#[tokio::test]
async fn an_unusable_certificate_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.crt"), "not a certificate").expect("write");
    std::fs::write(dir.path().join("bad.key"), "not a key").expect("write");
    let toml = format!(
        "{}\n[server.tls]\ncert_file = \"{1}/bad.crt\"\nkey_file = \"{1}/bad.key\"\n",
        config_toml("http://127.0.0.1:9"),
        dir.path().display()
    );
    let settings =
        kick_oauth_proxy::config::Settings::from_toml_with_env(&toml, []).expect("valid");
    let error = kick_oauth_proxy::server::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("server.tls.cert_file"),
        "{error}"
    );
}
