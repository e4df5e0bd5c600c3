//! End to end: the real proxy in front of the real Kick emulator, both on loopback ports.
//!
//! Unlike the wiremock tests, the provider here keeps state the way Kick's fosite server does
//! (single-use codes, PKCE, rotation with a grace period, revocation), so these tests show that
//! the proxy forwards exactly what a real login needs and that every failure mode of the
//! provider reaches the desktop app as the contract says. The emulator's `stats()` prove which
//! requests reached the provider.

use crate::helpers::{
    assert_error, assert_kick_502, assert_token_headers, without_egress_proxy, TestApp,
};
use kick_emulator::{Emulator, EmulatorConfig, Fault, RegisteredClient};
use kick_oauth_client::{parse_callback_url, AuthorizeRequest, PkceVerifier, Scope};
use kick_oauth_proxy::cli::dev::DevEnvironment;
use serde_json::{json, Value};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Battles Record's development redirect URI (registered at the emulator, allowed by the proxy).
const LOOPBACK_REDIRECT: &str = "http://localhost:1420/auth/callback";
/// Battles Record's production deep link (also registered and allowed).
const APP_REDIRECT: &str = "battles-record://oauth/callback";
/// Length of every code and token Kick (and so the emulator) issues.
const KICK_TOKEN_LEN: usize = 48;

/// The emulator, the proxy in front of it, and an HTTP client that never follows redirects.
struct E2e {
    env: DevEnvironment,
    http: reqwest::Client,
}

/// What the app holds after the browser came back: the code and the verifier that goes with it.
struct Login {
    code: String,
    verifier: String,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// The provider's own semantics show only with the proxy's replay and breaker off (an identical
/// retry would be answered from replay; a run of faults would open the breaker). Those mechanisms
/// have their own tests, with the emulator too (`replay_*` below, tests/api/replay.rs).
async fn start() -> E2e {
    start_with("[replay]\nwindow_secs = 0\n[limits]\nbreaker_failures = 0\n").await
}

async fn start_with(extra_toml: &str) -> E2e {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let env = DevEnvironment::start_with(loopback, loopback, extra_toml)
        .await
        .expect("emulator and proxy start");
    E2e {
        env,
        http: http_client(),
    }
}

/// The browser step: the emulator approves at once and redirects with a code.
async fn authorize(http: &reqwest::Client, emulator: &Emulator, redirect_uri: &str) -> Login {
    let client_id = RegisteredClient::emulator_default().client_id;
    let (url, pending) = AuthorizeRequest::new(client_id, redirect_uri)
        .authorize_url(emulator.authorize_url())
        .scopes([Scope::UserRead, Scope::ChannelRead])
        .build()
        .expect("authorize URL");
    let answer = http.get(url).send().await.expect("emulator answers");
    assert_eq!(answer.status(), 302, "authorize redirects");
    let location = answer.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("ASCII Location")
        .to_owned();
    let code = parse_callback_url(&location, &pending).expect("the callback carries a code");
    Login {
        code: code.secret().to_owned(),
        verifier: pending.verifier().secret().to_owned(),
    }
}

/// `POST {base}/api/v1/kick/{endpoint}` with a JSON body, as Battles Record sends it.
async fn post(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/kick/{endpoint}"))
        .json(body)
        .send()
        .await
        .expect("proxy answers")
}

impl E2e {
    async fn authorize(&self, redirect_uri: &str) -> Login {
        authorize(&self.http, &self.env.emulator, redirect_uri).await
    }

    async fn post(&self, endpoint: &str, body: &Value) -> reqwest::Response {
        post(&self.http, &self.env.proxy_url(), endpoint, body).await
    }

    async fn exchange(&self, login: &Login, redirect_uri: &str) -> reqwest::Response {
        self.post("token", &token_body(login, redirect_uri)).await
    }

    async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post("refresh", &json!({ "refresh_token": refresh_token }))
            .await
    }

    async fn shutdown(self) {
        self.env.shutdown().await;
    }
}

fn token_body(login: &Login, redirect_uri: &str) -> Value {
    json!({
        "code": login.code,
        "code_verifier": login.verifier,
        "redirect_uri": redirect_uri,
    })
}

/// A 200 token response in Kick's shape; its body.
async fn assert_tokens(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "token response status");
    assert_token_headers(response.headers());
    let body: Value = response.json().await.expect("JSON token response");
    for field in ["access_token", "refresh_token"] {
        let token = body[field].as_str().unwrap_or_default();
        assert_eq!(token.len(), KICK_TOKEN_LEN, "{field} is a Kick token");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64(), "expires_in is an integer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["scope"], "user:read channel:read");
    body
}

fn field(body: &Value, name: &str) -> String {
    body[name].as_str().expect("string field").to_owned()
}

/// An OAuth error from the provider, passed through as 400; its description never echoes `secret`.
async fn assert_grant_error(response: reqwest::Response, code: &str, secret: &str) {
    let body = assert_error(response, 400, code).await;
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(!description.contains(secret), "description echoes a secret");
    assert!(body.get("details").is_none(), "{body}");
}

#[tokio::test]
async fn a_whole_login_goes_through_the_proxy_authorize_exchange_refresh_revoke() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;

    let first = assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
    let refreshed = assert_tokens(e2e.refresh(&field(&first, "refresh_token")).await).await;
    assert_ne!(refreshed["access_token"], first["access_token"]);
    assert_ne!(refreshed["refresh_token"], first["refresh_token"]);

    let newest = field(&refreshed, "refresh_token");
    let revoked = e2e
        .post(
            "revoke",
            &json!({"token": newest, "token_type_hint": "refresh_token"}),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    assert_token_headers(revoked.headers());
    assert_eq!(revoked.json::<Value>().await.expect("JSON"), json!({}));

    assert_grant_error(e2e.refresh(&newest).await, "invalid_grant", &newest).await;

    let stats = e2e.env.emulator.stats();
    assert_eq!(stats.codes_issued, 1);
    assert_eq!(stats.authorization_code_grants_ok, 1);
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.revoke_requests, 1);
    assert_eq!(stats.revocations_of_known_tokens, 1);
    assert_eq!(stats.token_errors, 1, "only the revoked refresh failed");
    assert_eq!(stats.token_requests, 3, "one upstream call per proxy call");
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_code_exchanged_once_is_refused_the_second_time_and_its_grant_dies() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    let tokens = assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;

    assert_grant_error(
        e2e.exchange(&login, LOOPBACK_REDIRECT).await,
        "invalid_grant",
        &login.code,
    )
    .await;

    // fosite revokes everything issued from a replayed code (RFC 6749 §4.1.2).
    let refresh_token = field(&tokens, "refresh_token");
    assert_grant_error(
        e2e.refresh(&refresh_token).await,
        "invalid_grant",
        &refresh_token,
    )
    .await;
    let stats = e2e.env.emulator.stats();
    assert_eq!(stats.token_requests, 3);
    assert_eq!(stats.authorization_code_grants_ok, 1);
    assert_eq!(stats.token_errors, 2);
    e2e.shutdown().await;
}

#[tokio::test]
async fn with_replay_on_a_lost_answer_is_recovered_and_a_refresh_race_costs_one_refresh() {
    // The product's defaults: replay on, breaker on.
    let e2e = start_with("").await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;

    // The app's retry of a code Kick already redeemed gets the same tokens, not invalid_grant.
    let first = assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
    let retry = assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
    assert_eq!(retry, first);
    let stats = e2e.env.emulator.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.authorization_code_grants_ok, 1);

    // Ten parts of the app refresh at once with the same token: one refresh at Kick.
    let refresh_token = field(&first, "refresh_token");
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let http = e2e.http.clone();
            let url = format!("{}/api/v1/kick/refresh", e2e.env.proxy_url());
            let body = json!({"refresh_token": refresh_token});
            tokio::spawn(async move { http.post(url).json(&body).send().await })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let response = racer.await.expect("join").expect("answer");
        answers.push(assert_tokens(response).await);
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every racer got the same pair"
    );
    assert_eq!(e2e.env.emulator.stats().refresh_grants_ok, 1);
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_verifier_that_does_not_match_the_challenge_is_invalid_grant() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    let other = PkceVerifier::generate().expect("verifier");
    assert_ne!(other.secret(), login.verifier);
    let wrong = Login {
        code: login.code.clone(),
        verifier: other.secret().to_owned(),
    };

    assert_grant_error(
        e2e.exchange(&wrong, LOOPBACK_REDIRECT).await,
        "invalid_grant",
        &login.code,
    )
    .await;

    let stats = e2e.env.emulator.stats();
    assert_eq!(
        stats.token_requests, 1,
        "the well-formed verifier reached Kick"
    );
    assert_eq!(stats.token_errors, 1);
    assert_eq!(stats.authorization_code_grants_ok, 0);
    e2e.shutdown().await;
}

#[tokio::test]
async fn an_allowed_redirect_uri_other_than_the_authorize_one_is_refused_by_the_provider() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;

    assert_grant_error(
        e2e.exchange(&login, APP_REDIRECT).await,
        "invalid_grant",
        &login.code,
    )
    .await;

    let stats = e2e.env.emulator.stats();
    assert_eq!(
        stats.token_requests, 1,
        "the proxy allowed the URI; Kick refused it"
    );
    assert_eq!(stats.token_errors, 1);
    assert_eq!(stats.authorization_code_grants_ok, 0);
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_login_through_the_deep_link_redirect_works_too() {
    let e2e = start().await;
    let login = e2e.authorize(APP_REDIRECT).await;

    assert_tokens(e2e.exchange(&login, APP_REDIRECT).await).await;
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_rotated_refresh_token_works_during_the_grace_period_then_dies() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    let first = assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
    let old = field(&first, "refresh_token");

    let second = assert_tokens(e2e.refresh(&old).await).await;
    assert_ne!(field(&second, "refresh_token"), old);
    // Kick's "reusable/flexible" refresh tokens: the old one still works for 60 s.
    let third = assert_tokens(e2e.refresh(&old).await).await;
    let newest = field(&third, "refresh_token");
    assert_ne!(newest, old);

    e2e.env.emulator.advance_clock(Duration::from_secs(61));
    assert_grant_error(e2e.refresh(&old).await, "invalid_grant", &old).await;
    let fourth = assert_tokens(e2e.refresh(&newest).await).await;
    assert_ne!(fourth["access_token"], third["access_token"]);

    let stats = e2e.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 3);
    assert_eq!(stats.token_errors, 1);
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_code_older_than_ten_minutes_is_invalid_grant() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;

    e2e.env
        .emulator
        .advance_clock(Duration::from_secs(10 * 60 + 1));

    assert_grant_error(
        e2e.exchange(&login, LOOPBACK_REDIRECT).await,
        "invalid_grant",
        &login.code,
    )
    .await;
    assert_eq!(e2e.env.emulator.stats().authorization_code_grants_ok, 0);
    e2e.shutdown().await;
}

#[tokio::test]
async fn every_provider_failure_is_the_teambattles_502_and_is_never_retried() {
    let e2e = start().await;
    let emulator = &e2e.env.emulator;
    let first = e2e.authorize(LOOPBACK_REDIRECT).await;
    let tokens = assert_tokens(e2e.exchange(&first, LOOPBACK_REDIRECT).await).await;
    let refresh_token = field(&tokens, "refresh_token");
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    let faults = [
        Fault::ServerError(500),
        Fault::ServerError(503),
        Fault::HtmlChallenge,
        Fault::Waf403,
        Fault::EmptyBody400,
        Fault::ConnectionReset,
        Fault::Outage,
    ];

    for fault in faults {
        eprintln!("fault {fault:?}");
        emulator.set_fault(fault);
        let before = emulator.stats();

        assert_kick_502(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
        assert_kick_502(e2e.refresh(&refresh_token).await).await;
        assert_kick_502(
            e2e.post(
                "revoke",
                &json!({"token": refresh_token, "token_type_hint": "refresh_token"}),
            )
            .await,
        )
        .await;

        let after = emulator.stats();
        assert_eq!(
            after.token_requests - before.token_requests,
            2,
            "{fault:?}: one upstream call per token request, no retry"
        );
        assert_eq!(
            after.revoke_requests - before.revoke_requests,
            1,
            "{fault:?}"
        );
        assert_eq!(
            after.faults_injected - before.faults_injected,
            3,
            "{fault:?}"
        );
    }

    // None of the failed calls reached the OAuth logic: the same code and refresh token still work.
    emulator.clear_fault();
    assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;
    assert_tokens(e2e.refresh(&refresh_token).await).await;
    let stats = emulator.stats();
    assert_eq!(stats.authorization_code_grants_ok, 2);
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.token_errors, 0);
    assert_eq!(stats.revocations, 0);
    e2e.shutdown().await;
}

#[tokio::test]
async fn a_slow_provider_within_the_deadline_still_answers_200() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    let delay = Duration::from_millis(400);
    e2e.env.emulator.set_fault(Fault::Latency(delay));

    let started = Instant::now();
    assert_tokens(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;

    assert!(started.elapsed() >= delay, "the latency was injected");
    let stats = e2e.env.emulator.stats();
    assert_eq!(stats.faults_injected, 1);
    assert_eq!(stats.authorization_code_grants_ok, 1);
    e2e.shutdown().await;
}

/// A proxy like `DevEnvironment`'s, with a 1 s upstream deadline so a hang costs one second.
async fn spawn_proxy_with_1s_deadline(emulator: &Emulator) -> TestApp {
    let client = RegisteredClient::emulator_default();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 1

[providers.kick]
client_id = {id:?}
client_secret = {secret:?}
allowed_redirect_uris = [{LOOPBACK_REDIRECT:?}, {APP_REDIRECT:?}]
token_url = {token:?}
revoke_url = {revoke:?}
timeout_secs = 1
"#,
        id = client.client_id,
        secret = client.client_secret,
        token = emulator.token_url(),
        revoke = emulator.revoke_url(),
    );
    TestApp::builder().config(toml).spawn().await
}

#[tokio::test]
async fn a_hanging_provider_is_a_502_at_the_deadline_and_the_proxy_recovers() {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let mut proxy = spawn_proxy_with_1s_deadline(&emulator).await;
    let base = format!("http://{}", proxy.addr);
    let http = http_client();
    let login = authorize(&http, &emulator, LOOPBACK_REDIRECT).await;
    emulator.set_fault(Fault::Hang);

    let started = Instant::now();
    let response = post(
        &http,
        &base,
        "token",
        &token_body(&login, LOOPBACK_REDIRECT),
    )
    .await;
    let waited = started.elapsed();

    assert_kick_502(response).await;
    assert!(
        waited >= Duration::from_millis(900),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "deadline not kept: {waited:?}"
    );
    assert_eq!(
        emulator.stats().token_requests,
        1,
        "no retry after a timeout"
    );

    emulator.clear_fault();
    let response = post(
        &http,
        &base,
        "token",
        &token_body(&login, LOOPBACK_REDIRECT),
    )
    .await;
    assert_tokens(response).await;
    assert_eq!(emulator.stats().authorization_code_grants_ok, 1);
    proxy.begin_shutdown();
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_reset_after_kick_processed_the_code_is_a_502_with_exactly_one_upstream_call() {
    let e2e = start().await;
    let login = e2e.authorize(LOOPBACK_REDIRECT).await;
    e2e.env
        .emulator
        .set_fault(Fault::ConnectionResetAfterProcessing);

    assert_kick_502(e2e.exchange(&login, LOOPBACK_REDIRECT).await).await;

    let stats = e2e.env.emulator.stats();
    assert_eq!(
        stats.token_requests, 1,
        "the proxy never replays a sent code"
    );
    assert_eq!(
        stats.authorization_code_grants_ok, 1,
        "Kick did use the code"
    );
    // Why a replay would be useless, and harmful: the code is spent.
    e2e.env.emulator.clear_fault();
    assert_grant_error(
        e2e.exchange(&login, LOOPBACK_REDIRECT).await,
        "invalid_grant",
        &login.code,
    )
    .await;
    e2e.shutdown().await;
}

#[tokio::test]
async fn the_dev_self_check_logs_in_refreshes_and_revokes() {
    let e2e = start().await;

    e2e.env
        .self_check(&mut |_| {})
        .await
        .expect("self-check passes");

    let stats = e2e.env.emulator.stats();
    // The direct login and the relayed one (steps 8 and 9).
    assert_eq!(stats.authorize_requests, 2);
    assert_eq!(stats.authorization_code_grants_ok, 2);
    assert!(stats.refresh_grants_ok >= 1, "{stats:?}");
    assert_eq!(stats.revocations, 1);
    assert_eq!(stats.revocations_of_known_tokens, 1);
    e2e.shutdown().await;
}

/// Maximal runs of `[A-Z0-9]` at least as long as a Kick token.
fn token_like_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
        .filter(|run| run.len() >= KICK_TOKEN_LEN)
        .collect()
}

#[test]
fn token_like_runs_finds_kick_tokens_only() {
    let token = "NZQ1YTM3ZWQTZJU4MS0ZYZKXLWI3NTMTZMIZNDFJNTNHMWUX";
    assert_eq!(
        token_like_runs(&format!("access_token={token}, ok")),
        [token]
    );
    assert!(token_like_runs("access_token [redacted, 48 chars] 2025-01-01T00:00:00Z").is_empty());
}

#[test]
fn the_dev_check_command_passes_and_prints_no_token() {
    let mut child = spawn_piped(&DEV_CHECK);
    let out = read_all(child.stdout.take().expect("stdout"));
    let err = read_all(child.stderr.take().expect("stderr"));

    let status = exit_within(&mut child, "`dev --check`");
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");

    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    assert!(stdout.contains("Login flow OK"), "{stdout}");
    assert!(stdout.contains("[redacted"), "{stdout}");
    for output in [&stdout, &stderr] {
        let runs = token_like_runs(output);
        assert!(runs.is_empty(), "{} token-like strings printed", runs.len());
    }
}

#[test]
fn dev_and_check_config_piped_into_a_reader_that_stops_early_do_not_panic() {
    // `dev --check | head -1`, `check-config | head -1`: a reader that closes stdout early.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        "[providers.kick]\nclient_id = \"01KCLIENT\"\nclient_secret = \"a-secret-of-reasonable-length\"\n\
         allowed_redirect_uris = [\"http://localhost:1420/auth/callback\"]\n",
    )
    .expect("write");
    let config = config.to_str().expect("utf-8").to_owned();
    for args in [&DEV_CHECK[..], &["check-config", "--config", &config]] {
        let mut child = spawn_piped(args);
        // Closed before the command has written anything: every write of it meets a closed pipe.
        drop(child.stdout.take());
        let err = read_all(child.stderr.take().expect("stderr"));
        let status = exit_within(&mut child, &format!("{args:?}"));
        let stderr = err.join().expect("stderr reader");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// Everything `output` yields, read on a thread of its own (so the child never blocks on a full
/// pipe).
fn read_all(mut output: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = output.read_to_string(&mut text);
        text
    })
}

/// The child's exit status; killed, and the test failed, after 60 s.
fn exit_within(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `dev --check`, both servers on free ports.
const DEV_CHECK: [&str; 6] = [
    "dev",
    "--check",
    "--listen",
    "127.0.0.1:0",
    "--emulator-listen",
    "127.0.0.1:0",
];

/// The binary with `args`, stdout and stderr piped, no stdin, no `RUST_LOG`, no egress proxy.
fn spawn_piped(args: &[&str]) -> std::process::Child {
    without_egress_proxy(&mut Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy")))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}
