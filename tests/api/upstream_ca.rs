//! `providers.<name>.ca_file`: a provider served over HTTPS with a certificate from a private CA
//! (a self-hosted OAuth server, an egress proxy that re-signs TLS, the benchmark's stub). Trusted
//! only when `ca_file` names that CA; connections are pooled (one TLS handshake, not one per call).

use crate::helpers::tls_provider::{pointing_at, TestCa, TlsProvider};
use crate::helpers::*;
use kick_oauth_proxy::api::AppState;
use kick_oauth_proxy::config::Settings;
use serde_json::Value;
use std::path::Path;

/// An HTTPS provider behind a private CA, and a proxy whose `ca_file` trusts that CA.
async fn trusted_provider_and_proxy() -> (TlsProvider, TestApp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("kick-oauth-proxy test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let provider = TlsProvider::http1(&ca).await;
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
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.form, exchange_form());
}

#[tokio::test]
async fn without_the_right_ca_file_the_provider_is_not_trusted_and_the_caller_gets_the_502() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("kick-oauth-proxy test CA");
    let other_ca = TestCa::new("some other CA");
    let other_ca_file = other_ca.write(dir.path(), "other-ca.pem");
    let provider = TlsProvider::http1(&ca).await;
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
    let path = TestCa::new("first CA").write(dir.path(), "ca.pem");
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
    TestCa::new("second CA").write(dir.path(), "ca.pem");
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
