//! Secret rotation without downtime: SIGHUP re-reads the secret file and the allowlist while a
//! request is in flight, a bad reload keeps the old config, and a `next` secret is tried once when
//! the provider answers `invalid_client`.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OLD: &str = "old-secret-ROTATION";
const NEW: &str = "new-secret-ROTATION";

fn config(upstream: &str, secret_file: &std::path::Path, allowed: &[&str]) -> String {
    let allowed = allowed
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 5
[replay]
window_secs = 0
[providers.kick]
client_id = "{CLIENT_ID}"
client_secret_file = "{}"
allowed_redirect_uris = [{allowed}]
token_url = "{upstream}/oauth/token"
timeout_secs = 5
"#,
        secret_file.display()
    )
}

/// Mounts `answer` for the token calls that carry `client_secret=secret`, expected `times` times.
async fn answer_secret(upstream: &MockServer, secret: &str, answer: ResponseTemplate, times: u64) {
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={secret}")))
        .respond_with(answer)
        .expect(times)
        .mount(upstream)
        .await;
}

/// The provider's tokens, at once.
fn tokens() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(kick_tokens())
}

/// The provider's tokens, after 1.5 s: long enough for a reload to land meanwhile.
fn slow_tokens() -> ResponseTemplate {
    tokens().set_delay(Duration::from_millis(1500))
}

/// A secret file and a config file naming it, in a directory of their own.
struct SecretFiles {
    _dir: tempfile::TempDir,
    secret: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl SecretFiles {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            secret: dir.path().join("secret"),
            config: dir.path().join("proxy.toml"),
            _dir: dir,
        }
    }

    /// Writes `secret` (with a newline, as `echo` leaves it) and the config `toml` makes from the
    /// secret file's path.
    fn write(&self, secret: &str, toml: impl FnOnce(&std::path::Path) -> String) {
        std::fs::write(&self.secret, format!("{secret}\n")).expect("write");
        std::fs::write(&self.config, toml(&self.secret)).expect("write");
    }
}

/// `/token` with `code`, sent in the background.
fn exchange_in_background(
    binary: &RunningBinary,
    http: &reqwest::Client,
    code: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = http
        .post(binary.url("/api/v1/kick/token"))
        .json(&exchange_with(code, REDIRECT_URI));
    tokio::spawn(request.send())
}

fn exchange_with(code: &str, redirect_uri: &str) -> serde_json::Value {
    json!({"code": code, "code_verifier": VERIFIER, "redirect_uri": redirect_uri})
}

#[tokio::test]
async fn sighup_swaps_the_secret_and_allowlist_while_a_request_is_in_flight() {
    let upstream = MockServer::start().await;
    answer_secret(&upstream, OLD, slow_tokens(), 1).await;
    answer_secret(&upstream, NEW, tokens(), 2).await;
    let files = SecretFiles::new();
    files.write(OLD, |secret| {
        config(&upstream.uri(), secret, &[REDIRECT_URI])
    });
    let mut binary = spawn_binary(&files.config).await;
    let http = proxyless_client();

    // In flight with the old secret...
    let in_flight = exchange_in_background(&binary, &http, "CODE-1");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ...while the secret rotates and the allowlist gains the app's deep link.
    files.write(NEW, |secret| {
        config(&upstream.uri(), secret, &[REDIRECT_URI, APP_REDIRECT_URI])
    });
    binary.signal("HUP");
    binary.wait_for_log("reloaded").await;

    let after = http
        .post(binary.url("/api/v1/kick/token"))
        .json(&exchange_with("CODE-2", APP_REDIRECT_URI))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        after.status(),
        200,
        "the new allowlist entry and the new secret are in use"
    );
    let finished = in_flight.await.expect("join").expect("answer");
    assert_eq!(
        finished.status(),
        200,
        "the in-flight request kept its connection and secret"
    );

    // A reload that cannot load keeps the running configuration.
    std::fs::remove_file(&files.secret).expect("remove");
    binary.signal("HUP");
    let failed = binary.wait_for_log("reload failed").await;
    assert!(failed["error"]
        .as_str()
        .is_some_and(|e| e.contains("client_secret_file")));
    let still = http
        .post(binary.url("/api/v1/kick/token"))
        .json(&exchange_with("CODE-3", REDIRECT_URI))
        .send()
        .await
        .expect("answer");
    assert_eq!(still.status(), 200);

    binary.signal("TERM");
    assert_eq!(binary.exit_code().await, Some(0));
}

#[tokio::test]
async fn the_next_secret_is_tried_once_on_invalid_client_and_then_promoted() {
    let app = spawn_app_with(|toml| {
        toml.replace(
            &format!("client_secret = \"{CLIENT_SECRET}\""),
            &format!("client_secret = \"{OLD}\"\nnext_client_secret = \"{NEW}\""),
        )
    })
    .await;
    answer_secret(
        &app.upstream,
        OLD,
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;
    answer_secret(&app.upstream, NEW, tokens(), 2).await;

    // The provider already switched: the first request costs one refused attempt, not an outage.
    let first = app
        .post_json("/api/v1/kick/token", &exchange_with("CODE-1", REDIRECT_URI))
        .await;
    assert_eq!(first.status(), 200);
    // Promoted: the next request goes with the new secret straight away.
    let second = app
        .post_json("/api/v1/kick/token", &exchange_with("CODE-2", REDIRECT_URI))
        .await;
    assert_eq!(second.status(), 200);
}

#[tokio::test]
async fn without_a_next_secret_invalid_client_is_a_502_after_one_attempt() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;
    assert_kick_502(app.exchange().await).await;
}

#[tokio::test]
async fn a_reload_during_a_next_secret_attempt_is_not_undone_by_its_promotion() {
    const THIRD: &str = "third-secret-ROTATION";
    let upstream = MockServer::start().await;
    answer_secret(
        &upstream,
        OLD,
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;
    // The next secret works, slowly: the operator's reload lands while this attempt is out (3 s,
    // under the config's 5 s deadline, and far longer than a reload takes).
    answer_secret(
        &upstream,
        NEW,
        tokens().set_delay(Duration::from_secs(3)),
        1,
    )
    .await;
    answer_secret(&upstream, THIRD, tokens(), 1).await;
    let files = SecretFiles::new();
    files.write(OLD, |secret| {
        config(&upstream.uri(), secret, &[REDIRECT_URI]).replace(
            "client_secret_file",
            &format!("next_client_secret = \"{NEW}\"\nclient_secret_file"),
        )
    });
    let mut binary = spawn_binary(&files.config).await;
    let http = proxyless_client();

    let in_flight = exchange_in_background(&binary, &http, "CODE-1");
    binary.wait_for_log("trying the next one").await;
    // The operator moves to a third secret, without a next one.
    files.write(THIRD, |secret| {
        config(&upstream.uri(), secret, &[REDIRECT_URI])
    });
    binary.signal("HUP");
    binary.wait_for_log("reloaded").await;
    let finished = in_flight.await.expect("join").expect("answer");
    assert_eq!(finished.status(), 200);
    // The race happened as staged: the attempt ended after the reload, and said so.
    binary.wait_for_log("reloaded meanwhile").await;

    // The next call goes with the reloaded secret, not the one the slow attempt promoted.
    let after = http
        .post(binary.url("/api/v1/kick/token"))
        .json(&exchange_with("CODE-2", REDIRECT_URI))
        .send()
        .await
        .expect("answer");
    assert_eq!(after.status(), 200);
    upstream.verify().await;
}
