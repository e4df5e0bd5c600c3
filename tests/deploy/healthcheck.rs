//! `kick-oauth-proxy healthcheck`, the image's `HEALTHCHECK`: exit codes, deadlines, no redirects
//! and no proxy, and the listener it probes found in the config `serve` runs with.

use crate::helpers::TestApp;
use crate::PROXY_BIN;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `healthcheck --url URL` with a proxy in the environment that would break the check if it
/// were used: the subcommand must go straight to the URL.
async fn healthcheck(url: String) -> (std::process::Output, Duration) {
    healthcheck_with(vec!["--url".to_owned(), url], Vec::new()).await
}

/// Runs `healthcheck ARGS` with `env` added to a clean `KICK_PROXY_*` environment and a proxy
/// that would break the check if it were used.
async fn healthcheck_with(
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
) -> (std::process::Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut command = Command::new(PROXY_BIN);
        command.arg("healthcheck").args(&args);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KICK_PROXY_")) {
            command.env_remove(key);
        }
        let output = command
            .envs(env)
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .expect("run kick-oauth-proxy");
        (output, started.elapsed())
    })
    .await
    .expect("join")
}

fn one_line(output: &std::process::Output) -> String {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(all.lines().count(), 1, "one line of output: {all:?}");
    all
}

#[tokio::test]
async fn healthcheck_exits_0_when_healthz_answers_200() {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(r#"{"status":"ok"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let (output, _) = healthcheck(format!("{}/healthz", server.uri())).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(0), "{line}");
    assert!(line.starts_with("healthy: "), "{line}");
}

#[tokio::test]
async fn healthcheck_exits_1_when_healthz_is_not_200() {
    use wiremock::matchers::path;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let (output, _) = healthcheck(format!("{}/healthz", server.uri())).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains("503"), "{line}");
}

#[tokio::test]
async fn healthcheck_does_not_follow_redirects() {
    use wiremock::matchers::path;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(path("/healthz"))
        .respond_with(wiremock::ResponseTemplate::new(302).insert_header("location", "/elsewhere"))
        .mount(&server)
        .await;
    wiremock::Mock::given(path("/elsewhere"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let (output, _) = healthcheck(format!("{}/healthz", server.uri())).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
}

#[tokio::test]
async fn healthcheck_fails_fast_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (output, elapsed) = healthcheck(format!("http://127.0.0.1:{port}/healthz")).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.starts_with("unhealthy: "), "{line}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn healthcheck_gives_up_after_2_seconds_on_a_server_that_never_answers() {
    // Accepts the connection (the kernel does, from the backlog) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (output, elapsed) = healthcheck(format!("http://{addr}/healthz")).await;
    drop(listener);
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}, expected the 2 s deadline: {line}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: `healthcheck` finds the listener in the config `serve` runs with

/// A provider table `healthcheck` must not need: its secret file does not exist.
const PROVIDER_WITHOUT_SECRET: &str = r#"
[providers.kick]
client_id = "01KCLIENT"
client_secret_file = "/nonexistent/kick_client_secret"
allowed_redirect_uris = ["http://localhost:1420/auth/callback"]
"#;

/// The real proxy on a free loopback port, `server_extra` added to its `[server]` table; it
/// stops when the returned app is dropped.
async fn serve_on_a_free_port(server_extra: &str) -> TestApp {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n\
         [providers.kick]\nclient_id = \"01KCLIENT\"\nclient_secret = \"test-secret\"\n\
         allowed_redirect_uris = [\"http://localhost:1420/auth/callback\"]\n"
    );
    let app = TestApp::builder().config(toml).spawn().await;
    assert_ne!(
        app.addr.port(),
        8080,
        "the test needs a port other than the default"
    );
    app
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[tokio::test]
async fn healthcheck_probes_the_port_the_config_listens_on_via_loopback() {
    let app = serve_on_a_free_port("").await;
    let addr = app.addr;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"0.0.0.0:{}\"\n{PROVIDER_WITHOUT_SECRET}",
            addr.port()
        ),
    );
    let (output, _) = healthcheck_with(vec!["--config".to_owned(), config], Vec::new()).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(0), "{line}");
    assert!(
        line.contains(&format!(
            "GET http://127.0.0.1:{}/healthz -> 200",
            addr.port()
        )),
        "{line}"
    );
}

#[tokio::test]
async fn healthcheck_follows_kick_proxy_config_and_the_listen_override_as_the_image_sets_them() {
    let app = serve_on_a_free_port("").await;
    let addr = app.addr;
    // The image's setup: KICK_PROXY_CONFIG names the shipped config (port 8080), and the operator
    // moves the listener with KICK_PROXY_SERVER__LISTEN; no flags.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let env = vec![
        ("KICK_PROXY_CONFIG", shipped.to_owned()),
        (
            "KICK_PROXY_SERVER__LISTEN",
            format!("0.0.0.0:{}", addr.port()),
        ),
    ];
    let (output, _) = healthcheck_with(Vec::new(), env).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(0), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{}", addr.port())),
        "{line}"
    );
}

#[tokio::test]
async fn healthcheck_from_the_config_exits_1_when_nothing_listens_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{PROVIDER_WITHOUT_SECRET}"),
    );
    let (output, _) = healthcheck_with(vec!["--config".to_owned(), config], Vec::new()).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(
        line.starts_with(&format!("unhealthy: GET http://127.0.0.1:{port}/healthz")),
        "{line}"
    );

    // A config that does not load is unhealthy too, in one line.
    let broken = write_config(dir.path(), "[server]\nlisten = \"not an address\"\n");
    let (output, _) = healthcheck_with(vec!["--config".to_owned(), broken], Vec::new()).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains("server.listen"), "{line}");
}

#[tokio::test]
async fn healthcheck_probes_a_tls_listener_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Issued for the public host name, as in production: probing by address cannot match it.
    let generated = rcgen::generate_simple_self_signed(vec!["proxy.example.com".to_owned()])
        .expect("certificate");
    std::fs::write(dir.path().join("tls.crt"), generated.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("tls.key"),
        generated.signing_key.serialize_pem(),
    )
    .expect("write");
    let tls = format!(
        "[server.tls]\ncert_file = \"{0}/tls.crt\"\nkey_file = \"{0}/tls.key\"\n",
        dir.path().display()
    );
    let app = serve_on_a_free_port(&tls).await;
    let addr = app.addr;
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"0.0.0.0:{}\"\n{tls}{PROVIDER_WITHOUT_SECRET}",
            addr.port()
        ),
    );
    let (output, _) = healthcheck_with(vec!["--config".to_owned(), config], Vec::new()).await;
    let line = one_line(&output);
    assert_eq!(output.status.code(), Some(0), "{line}");
    assert!(
        line.contains(&format!(
            "GET https://127.0.0.1:{}/healthz -> 200",
            addr.port()
        )),
        "{line}"
    );
}

#[test]
fn the_health_url_is_the_listen_address_with_unspecified_addresses_on_loopback() {
    use kick_oauth_proxy::config::ServerSettings;
    let dir = tempfile::tempdir().expect("tempdir");
    for (listen, tls, expected) in [
        ("0.0.0.0:9000", "", "http://127.0.0.1:9000/healthz"),
        ("[::]:9000", "", "http://[::1]:9000/healthz"),
        ("10.1.2.3:8081", "", "http://10.1.2.3:8081/healthz"),
        ("[2001:db8::5]:443", "", "http://[2001:db8::5]:443/healthz"),
        (
            "0.0.0.0:8443",
            "[server.tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\n",
            "https://127.0.0.1:8443/healthz",
        ),
    ] {
        let config = write_config(
            dir.path(),
            &format!("[server]\nlisten = \"{listen}\"\n{tls}"),
        );
        let server = ServerSettings::load_with_env(Path::new(&config), []).expect(listen);
        assert_eq!(server.health_url().as_str(), expected);
    }
    // The environment wins over the file, as for `serve`.
    let config = write_config(dir.path(), "[server]\nlisten = \"0.0.0.0:8080\"\n");
    let env = [(
        "KICK_PROXY_SERVER__LISTEN".to_owned(),
        "127.0.0.1:9999".to_owned(),
    )];
    let server = ServerSettings::load_with_env(Path::new(&config), env).expect("loads");
    assert_eq!(
        server.health_url().as_str(),
        "http://127.0.0.1:9999/healthz"
    );
}
