//! The one harness: [`TestApp`], the real application on a real loopback port with a wiremock
//! upstream standing in for Kick. [`spawn_app`] starts it with the test config;
//! [`TestApp::builder`] changes the config first (replay, breaker, TLS, another provider address,
//! or a whole config for a provider that is not wiremock).
//!
//! `raw_http` writes and reads HTTP/1.1 by hand; `cases` states a request and what it must
//! produce, for the tests that send many variations of one request; `tls_provider` is a token
//! endpoint over TLS from a private CA. [`spawn_binary`] and [`start_binary`] run the real binary
//! instead, for what is process-wide (signals, exit codes, the environment).

pub mod cases;
pub mod raw_http;
pub mod tls_provider;

use kick_oauth_proxy::config::Settings;

use kick_oauth_proxy::server::startup::{Application, StartupError};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const CLIENT_ID: &str = "01KTESTCLIENTID";
pub const CLIENT_SECRET: &str = "test-client-secret-CANARY";
pub const REDIRECT_URI: &str = "http://localhost:1420/auth/callback";
pub const APP_REDIRECT_URI: &str = "battles-record://oauth/callback";
pub const CODE: &str = "NZQ4ZWE3OTCTMJC5ZS0ZNJQ5LWE2NZUTYMZMNDQZYTC5OGY3";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const REFRESH_TOKEN: &str = "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI";
pub const ACCESS_TOKEN: &str = "NJY1YJYYMGITNMRJZC0ZMTUWLTG1ZWQTOTU2ZJRINDM1YMY0";
pub const NEW_REFRESH_TOKEN: &str = "ZTLHNDE3NZMTMWRKNS0ZZWEYLTK0ZDITMMY2OGQ2YWEWZJGW";

/// A running proxy and its fake provider.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`), when the test's config sets `server.admin_listen`.
    pub admin: Option<SocketAddr>,
    /// The certificate reloader, when the test's config sets `[server.tls]`.
    pub tls: Option<std::sync::Arc<kick_oauth_proxy::server::tls::TlsReloader>>,
    pub upstream: MockServer,
    pub http: reqwest::Client,

    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The config every test starts from, pointing `kick` at `upstream`.
pub fn config_toml(upstream: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
header_read_timeout_secs = 1
body_read_timeout_secs = 1
shutdown_grace_secs = 5

# Each test decides what reaches the provider; replay has its own tests (tests/api/replay.rs).
[replay]
window_secs = 0

# Tests send hundreds of requests from 127.0.0.1: the limits have their own tests.
[rate_limit]
token = {{ per_minute = 1000000, burst = 1000000 }}
refresh = {{ per_minute = 1000000, burst = 1000000 }}
revoke = {{ per_minute = 1000000, burst = 1000000 }}

[providers.kick]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{APP_REDIRECT_URI}", "{REDIRECT_URI}"]
token_url = "{upstream}/oauth/token"
revoke_url = "{upstream}/oauth/revoke"
timeout_secs = 2
"#
    )
}

/// [`TestApp::builder`] with the test config as it is.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// As [`spawn_app`], with the config text edited first.
pub async fn spawn_app_with(edit: impl FnOnce(String) -> String) -> TestApp {
    TestApp::builder().edit(edit).spawn().await
}

type Edit<'a> = Box<dyn FnOnce(String) -> String + 'a>;

/// How a [`TestApp`] is configured before it starts: [`config_toml`] pointing at a new wiremock,
/// then each edit in order.
pub struct TestAppBuilder<'a> {
    /// The config before the edits, from the wiremock's base URI ([`config_toml`] by default).
    base: Box<dyn FnOnce(&str) -> String + 'a>,
    edits: Vec<Edit<'a>>,
}

impl<'a> TestAppBuilder<'a> {
    /// Edits the config text (after the edits before it).
    pub fn edit(mut self, edit: impl FnOnce(String) -> String + 'a) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Turns replay on with this window (the test config has it off).
    pub fn replay_window(self, window_secs: u64) -> Self {
        self.edit(move |toml| {
            toml.replace(
                "[replay]\nwindow_secs = 0",
                &format!("[replay]\nwindow_secs = {window_secs}"),
            )
        })
    }

    /// Adds a `[limits]` table with this circuit breaker.
    pub fn breaker(self, failures: u32, cooldown_secs: u64) -> Self {
        self.edit(move |toml| {
            format!(
                "{toml}\n[limits]\nbreaker_failures = {failures}\nbreaker_cooldown_secs = {cooldown_secs}\n"
            )
        })
    }

    /// Sends `kick`'s token requests to `{base}/oauth/token` instead of the wiremock (for raw TCP
    /// providers that misbehave below HTTP).
    pub fn token_url_base(self, base: &str) -> Self {
        let base = base.to_owned();
        self.edit(move |toml| {
            toml.lines()
                .map(|l| {
                    if l.starts_with("token_url") {
                        format!("token_url = \"{base}/oauth/token\"")
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Replaces the whole config (for a provider that is not the wiremock, such as the emulator;
    /// [`TestApp::upstream`] then stays unused).
    pub fn config(self, toml: String) -> Self {
        self.config_for(move |_| toml)
    }

    /// Starts from `config(upstream)` instead of [`config_toml`], `upstream` being the wiremock's
    /// base URI: a config of the test's own that still uses [`TestApp::upstream`].
    pub fn config_for(mut self, config: impl FnOnce(&str) -> String + 'a) -> Self {
        self.base = Box::new(config);
        self
    }

    /// Builds the application; its start-up error, if it refuses the config.
    pub async fn try_spawn(self) -> Result<TestApp, StartupError> {
        let upstream = MockServer::start().await;
        let toml = self
            .edits
            .into_iter()
            .fold((self.base)(&upstream.uri()), |toml, edit| edit(toml));
        let settings = Settings::from_toml_with_env(&toml, []).expect("test config is valid");
        let app = Application::build(settings).await?;
        let addr = app.local_addr();
        let admin = app.admin_addr();
        let tls = app.tls();

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Ok(TestApp {
            addr,
            admin,
            tls,
            upstream,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("client"),

            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Builds and starts the application; it stops when the [`TestApp`] is dropped.
    pub async fn spawn(self) -> TestApp {
        self.try_spawn().await.expect("app builds")
    }
}

impl TestApp {
    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            base: Box::new(config_toml),
            edits: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /metrics` on the admin listener (the config must set `server.admin_listen`): the text.
    pub async fn scrape_metrics(&self) -> String {
        let admin = self.admin.expect("admin listener");
        self.http
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("text")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    pub async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.post_raw(path, "application/x-www-form-urlencoded", body.to_owned())
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("proxy answers")
    }

    /// `/token` with the valid defaults.
    pub async fn exchange(&self) -> reqwest::Response {
        self.post_json("/api/v1/kick/token", &exchange_body()).await
    }

    /// Mounts a provider answer for `POST /oauth/token`, expected `times` times.
    pub async fn upstream_answers(&self, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(response)
            .expect(times)
            .mount(&self.upstream)
            .await;
    }

    /// Mounts Kick's success answer.
    pub async fn upstream_succeeds(&self) {
        self.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 1)
            .await;
    }

    /// Mounts Kick's success answer, expected `times` times.
    pub async fn upstream_succeeds_times(&self, times: u64) {
        self.upstream_answers(
            ResponseTemplate::new(200).set_body_json(kick_tokens()),
            times,
        )
        .await;
    }

    /// Requests the provider has received so far.
    pub async fn provider_calls(&self) -> usize {
        self.upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    /// Asserts the provider was never called (for rejected input).
    pub async fn upstream_must_not_be_called(&self) {
        self.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 0)
            .await;
    }

    /// The form fields of every request the provider received.
    pub async fn upstream_forms(&self) -> Vec<HashMap<String, String>> {
        self.upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(form_of)
            .collect()
    }

    /// Starts the same shutdown SIGTERM starts.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to finish shutting down; its result.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        match self.server.take() {
            Some(handle) => handle.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub async fn is_healthy(&self) -> bool {
        matches!(
            self.http.get(self.url("/healthz")).send().await,
            Ok(r) if r.status() == 200
        )
    }
}

pub fn form_of(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

pub fn exchange_body() -> Value {
    json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI})
}

/// The form the provider receives for [`exchange_body`] with `client_secret_post`: every field,
/// the client credentials added.
pub fn exchange_form() -> HashMap<String, String> {
    [
        ("grant_type", "authorization_code"),
        ("code", CODE),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Kick's real success shape.
pub fn kick_tokens() -> Value {
    json!({
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 7200,
        "refresh_token": NEW_REFRESH_TOKEN,
        "scope": "user:read channel:read"
    })
}

/// Asserts an error response: status, `error` code, JSON, no-store; returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_token_headers(response.headers());
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description in {body}"
    );
    body
}

/// The headers every response that carries or could carry tokens has.
pub fn assert_token_headers(headers: &HeaderMap) {
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

/// The 502 body, exactly as the contract documents it.
pub async fn assert_kick_502(response: reqwest::Response) {
    let body = assert_error(response, 502, "error_kick_server_error").await;
    assert_eq!(
        body,
        json!({
            "error": "error_kick_server_error",
            "error_description": "Failed to communicate with Kick OAuth server",
            "details": "Failed to communicate with Kick OAuth server"
        })
    );
}

/// Every variable that names an egress proxy, in both spellings; the binary starts without them
/// unless a test sets them.
pub const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// How long the binary may take to log "listening".
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(20);

/// The real binary, `serve`-ing a config file, with its JSON log lines collected; killed when
/// dropped.
pub struct RunningBinary {
    pub child: std::process::Child,
    pub addr: String,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    /// Everything it wrote to stderr so far (a panic message, a line before logging starts).
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread reading stderr; it ends when the process has exited.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// The binary serving the test config ([`config_toml`]) against `upstream`, the directory of its
/// config file (keep it while the binary runs), and an HTTP client that ignores egress proxies.
pub async fn spawn_binary_against(
    upstream: &MockServer,
) -> (RunningBinary, tempfile::TempDir, reqwest::Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, config_toml(&upstream.uri())).expect("write config");
    let binary = spawn_binary(&config).await;
    (binary, dir, proxyless_client())
}

/// An HTTP client that ignores the egress proxy variables, for talking to a spawned binary.
pub fn proxyless_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Starts `kick-oauth-proxy serve --config config` and waits for its "listening" line.
pub async fn spawn_binary(config: &std::path::Path) -> RunningBinary {
    spawn_binary_with_env(config, &[]).await
}

/// As [`spawn_binary`], with `env` set: waits for "listening" (20 s at most).
pub async fn spawn_binary_with_env(
    config: &std::path::Path,
    env: &[(&str, String)],
) -> RunningBinary {
    let mut running = start_binary(config, env);
    let listening = running.wait_for_log_within("listening", READY_WITHIN).await;
    running.addr = listening["addr"].as_str().expect("addr").to_owned();
    running
}

/// `command` without the egress proxy variables of this process's environment: a developer's
/// `ALL_PROXY` would route provider calls elsewhere, or (SOCKS) stop `serve` and `check-config`.
pub fn without_egress_proxy(command: &mut std::process::Command) -> &mut std::process::Command {
    for key in PROXY_VARIABLES {
        command.env_remove(key);
    }
    command
}

/// `kick-oauth-proxy ARGS` with JSON logs, no `KICK_PROXY_*` variable and no egress proxy
/// variable of this process's environment, then `env`.
pub fn binary_command(args: &[&str], env: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy"));
    without_egress_proxy(&mut command)
        .args(args)
        .env_remove("RUST_LOG")
        // A CGI environment turns the egress proxy variables off.
        .env_remove("REQUEST_METHOD");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KICK_PROXY_")) {
        command.env_remove(key);
    }
    command
        .env("KICK_PROXY_LOG__FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts `kick-oauth-proxy serve --config config` as [`binary_command`] runs it; does not wait.
pub fn start_binary(config: &std::path::Path, env: &[(&str, String)]) -> RunningBinary {
    use std::io::BufRead;
    let mut child = binary_command(
        &["serve", "--config", config.to_str().expect("utf8 path")],
        env,
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Drains stderr to the end too, so the child never blocks on it, and keeps it for the leak
    // checks.
    let stderr_reader = std::thread::spawn({
        let stderr = std::sync::Arc::clone(&stderr);
        move || {
            for line in std::io::BufReader::new(stderr_pipe)
                .lines()
                .map_while(Result::ok)
            {
                stderr
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        }
    });
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Drains stdout to the end, so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    RunningBinary {
        child,
        addr: String::new(),
        lines,
        seen: Vec::new(),
        stderr,
        stderr_reader: Some(stderr_reader),
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        // Already reaped when the test waited for its exit: then both do nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningBinary {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `/token` with the valid defaults, sent straight to the binary (no proxy on this side).
    pub async fn exchange(&self) -> reqwest::Response {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(self.url("/api/v1/kick/token"))
            .json(&exchange_body())
            .send()
            .await
            .expect("proxy answers")
    }

    /// The log lines read so far, parsed (those that are JSON).
    pub fn logged(&self) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Every line it wrote, as written, JSON or not: stdout, then stderr. Stops the process
    /// (`TERM`, then waits for it to exit) so that nothing is still on its way: what a leak check
    /// searches.
    pub async fn output_to_the_end(&mut self) -> Vec<String> {
        self.signal("TERM");
        let (_, mut lines) = self
            .exited_within(std::time::Duration::from_secs(30))
            .await
            .expect("the process exits within 30 s of TERM");
        if let Some(reader) = self.stderr_reader.take() {
            // Its stderr is closed: the reader ends.
            reader.join().expect("the stderr reader ends");
        }
        lines.extend(
            self.stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        lines
    }

    /// Sends a signal (`TERM`, `HUP`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (10 s at most) for a log line whose message contains `needle`; returns it parsed.
    pub async fn wait_for_log(&mut self, needle: &str) -> Value {
        self.wait_for_log_within(needle, std::time::Duration::from_secs(10))
            .await
    }

    /// Waits (`limit` at most) for a log line whose message contains `needle`; returns it parsed.
    pub async fn wait_for_log_within(&mut self, needle: &str, limit: std::time::Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no log line with {needle:?} within {limit:?}; saw {:?}",
                        self.seen
                    )
                })
                .unwrap_or_else(|| {
                    panic!(
                        "the process ended without logging {needle:?}; saw {:?}",
                        self.seen
                    )
                });
            self.seen.push(line.clone());
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
                {
                    return event;
                }
            }
        }
    }

    /// The process's exit code if it exits within `limit` (polled; never waits longer), with
    /// every line it logged by then.
    pub async fn exited_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<(Option<i32>, Vec<String>)> {
        let deadline = tokio::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        // Its stdout is closed: the reader thread sends what is left, then ends.
        while let Ok(Some(line)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.lines.recv()).await
        {
            self.seen.push(line);
        }
        Some((status.code(), self.seen.clone()))
    }

    /// Waits (60 s at most) for the process to exit; its exit code.
    pub async fn exit_code(mut self) -> Option<i32> {
        self.exited_within(std::time::Duration::from_secs(60))
            .await
            .expect("the process exits within 60 s")
            .0
    }
}
