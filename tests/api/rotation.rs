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

fn exchange_with(code: &str, redirect_uri: &str) -> serde_json::Value {
    json!({"code": code, "code_verifier": VERIFIER, "redirect_uri": redirect_uri})
}

#[tokio::test]
async fn sighup_swaps_the_secret_and_allowlist_while_a_request_is_in_flight() {
    let upstream = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={OLD}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(kick_tokens())
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={NEW}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(2)
        .mount(&upstream)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    let config_file = dir.path().join("proxy.toml");
    std::fs::write(&secret, format!("{OLD}\n")).expect("write");
    std::fs::write(
        &config_file,
        config(&upstream.uri(), &secret, &[REDIRECT_URI]),
    )
    .expect("write");
    let mut binary = spawn_binary(&config_file).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    // In flight with the old secret...
    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = binary.url("/api/v1/kick/token");
        async move {
            http.post(url)
                .json(&exchange_with("CODE-1", REDIRECT_URI))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ...while the secret rotates and the allowlist gains the app's deep link.
    std::fs::write(&secret, format!("{NEW}\n")).expect("write");
    std::fs::write(
        &config_file,
        config(&upstream.uri(), &secret, &[REDIRECT_URI, APP_REDIRECT_URI]),
    )
    .expect("write");
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
    std::fs::remove_file(&secret).expect("remove");
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
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={OLD}")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .expect(1)
        .mount(&app.upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={NEW}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(2)
        .mount(&app.upstream)
        .await;

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
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={OLD}")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .expect(1)
        .mount(&upstream)
        .await;
    // The next secret works, slowly: the operator's reload lands while this attempt is out.
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={NEW}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(kick_tokens())
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={THIRD}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(1)
        .mount(&upstream)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    let config_file = dir.path().join("proxy.toml");
    std::fs::write(&secret, format!("{OLD}\n")).expect("write");
    let with_next = config(&upstream.uri(), &secret, &[REDIRECT_URI]).replace(
        "client_secret_file",
        &format!("next_client_secret = \"{NEW}\"\nclient_secret_file"),
    );
    std::fs::write(&config_file, with_next).expect("write");
    let mut binary = spawn_binary(&config_file).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = binary.url("/api/v1/kick/token");
        async move {
            http.post(url)
                .json(&exchange_with("CODE-1", REDIRECT_URI))
                .send()
                .await
        }
    });
    binary.wait_for_log("trying the next one").await;
    // The operator moves to a third secret, without a next one.
    std::fs::write(&secret, format!("{THIRD}\n")).expect("write");
    std::fs::write(
        &config_file,
        config(&upstream.uri(), &secret, &[REDIRECT_URI]),
    )
    .expect("write");
    binary.signal("HUP");
    binary.wait_for_log("reloaded").await;
    let finished = in_flight.await.expect("join").expect("answer");
    assert_eq!(finished.status(), 200);

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
