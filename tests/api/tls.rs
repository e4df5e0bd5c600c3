//! TLS termination in the binary: a request over HTTPS with a test certificate, HSTS on every
//! response, and a certificate swapped by reload for new handshakes.

use crate::helpers::raw_http;
use crate::helpers::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A TLS 1.2-framed alert record (RFC 8446 §5.1, §6): content type 21 (alert), version 3.3,
/// length 2, level 2 (fatal), description 50 (`decode_error`: the bytes were not a TLS record).
const FATAL_DECODE_ERROR_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 50];

/// The hyper error under a reqwest error, if one caused it.
fn hyper_error(error: &reqwest::Error) -> Option<&hyper::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return Some(hyper);
        }
        source = cause.source();
    }
    None
}

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

    // Plain HTTP on the TLS port gets no HTTP answer at all: a fatal TLS alert, then the close.
    let plain = app.http.get(app.url("/healthz")).send().await;
    let error = plain.expect_err("plain HTTP on the TLS port must not get an HTTP response");
    assert!(
        hyper_error(&error).is_some_and(hyper::Error::is_parse),
        "the client should fail to parse the answer as HTTP: {error:?}"
    );
    let raw = raw_http::exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw.responses.is_empty(), "{raw:?}");
    assert_eq!(
        raw.rest, FATAL_DECODE_ERROR_ALERT,
        "the answer to plain HTTP is one fatal decode_error alert"
    );
    assert!(raw.closed, "the connection is closed after the alert");

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
    let tls_table = format!(
        "[server.tls]\ncert_file = \"{0}/bad.crt\"\nkey_file = \"{0}/bad.key\"\n",
        dir.path().display()
    );
    let error = TestApp::builder()
        .edit(|toml| format!("{toml}\n{tls_table}"))
        .try_spawn()
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("server.tls.cert_file"),
        "{error}"
    );
}

#[test]
fn check_config_loads_the_certificate_as_serve_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.crt"), "not a certificate").expect("write");
    std::fs::write(dir.path().join("bad.key"), "not a key").expect("write");
    write_cert(dir.path(), "good");
    let check = |name: &str| {
        let config = dir.path().join(format!("{name}.toml"));
        let toml = format!(
            "{}\n[server.tls]\ncert_file = \"{1}/{name}.crt\"\nkey_file = \"{1}/{name}.key\"\n",
            config_toml("http://127.0.0.1:9"),
            dir.path().display()
        );
        std::fs::write(&config, toml).expect("write");
        binary_command(
            &["check-config", "--config", config.to_str().expect("utf-8")],
            &[],
        )
        .output()
        .expect("check-config runs")
    };

    let refused = check("bad");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.tls.cert_file"), "{stderr}");

    let accepted = check("good");
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}

#[test]
fn a_certificate_or_key_path_that_is_not_a_regular_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "good");
    // A FIFO: opened for reading, it would block until a writer came, which never does.
    let fifo = dir.path().join("fifo.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let good = |ext: &str| format!("{}/good.{ext}", dir.path().display());
    for (cert, key, named) in [
        (
            fifo.display().to_string(),
            good("key"),
            "server.tls.cert_file",
        ),
        (
            good("crt"),
            fifo.display().to_string(),
            "server.tls.key_file",
        ),
        (good("crt"), "/dev/zero".to_owned(), "server.tls.key_file"),
    ] {
        let config = dir.path().join("proxy.toml");
        let toml = format!(
            "{}\n[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n",
            config_toml("http://127.0.0.1:9")
        );
        std::fs::write(&config, toml).expect("write");
        let mut child = binary_command(
            &["check-config", "--config", config.to_str().expect("utf-8")],
            &[],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("check-config runs");
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("check-config still reading {cert} / {key} after 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("read stderr");
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
}
