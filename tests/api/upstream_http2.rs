//! HTTP/2 to a provider that offers it by ALPN (`h2` before `http/1.1`), over TLS from a private
//! CA trusted by `ca_file`: the exchange works, sequential calls share one connection, and the
//! request is the same as over HTTP/1.1 (method, path, authority, headers, form). A stream the
//! provider refuses unprocessed (`REFUSED_STREAM`, or left out of a graceful `GOAWAY`) is sent
//! again, at most twice; one it resets otherwise is not.

use crate::helpers::tls_provider::{pointing_at, TestCa, TlsProvider};
use crate::helpers::*;
use serde_json::Value;

/// The app with the provider's token URL and its CA as `ca_file`.
async fn app_for(provider: &TlsProvider, ca: &TestCa) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let token_url = provider.token_url();
    let app = spawn_app_with(|toml| pointing_at(toml, &token_url, Some(&ca_file))).await;
    (app, dir)
}

#[tokio::test]
async fn a_provider_that_negotiates_h2_is_called_over_http2_on_one_connection() {
    let ca = TestCa::new("kick-oauth-proxy h2 test CA");
    let provider = TlsProvider::h2(&ca).await;
    let (app, _dir) = app_for(&provider, &ca).await;

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
            Some(provider.addr.to_string().as_str())
        );
        assert_eq!(request.path, "/oauth/token");
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(request.header("accept"), Some("application/json"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(request.form, exchange_form());
    }
    assert_eq!(
        provider.connections(),
        1,
        "HTTP/2 multiplexes the calls over one pooled connection"
    );
}

#[tokio::test]
async fn a_stream_the_provider_refused_unprocessed_is_sent_again() {
    let ca = TestCa::new("kick-oauth-proxy h2 test CA");
    let provider = TlsProvider::h2_resetting_first(&ca, h2::Reason::REFUSED_STREAM).await;
    let (app, _dir) = app_for(&provider, &ca).await;

    let response = app.exchange().await;

    assert_eq!(provider.streams(), 2, "refused, then sent again");
    assert_exchanged_once(response, &provider).await;
}

#[tokio::test]
async fn a_stream_the_provider_reset_otherwise_is_not_sent_again() {
    // INTERNAL_ERROR says nothing about whether the code was used: never retried.
    let ca = TestCa::new("kick-oauth-proxy h2 test CA");
    let provider = TlsProvider::h2_resetting_first(&ca, h2::Reason::INTERNAL_ERROR).await;
    let (app, _dir) = app_for(&provider, &ca).await;

    let response = app.exchange().await;

    assert_eq!(provider.streams(), 1, "one attempt only");
    assert_kick_502_unprocessed(response, &provider).await;
}

#[tokio::test]
async fn a_stream_left_out_of_a_graceful_goaway_is_sent_again_on_a_new_connection() {
    let ca = TestCa::new("kick-oauth-proxy h2 test CA");
    let provider = TlsProvider::h2_going_away_first(&ca).await;
    let (app, _dir) = app_for(&provider, &ca).await;

    let response = app.exchange().await;

    assert_eq!(provider.connections(), 2, "GOAWAY, then a new connection");
    assert_exchanged_once(response, &provider).await;
}

#[tokio::test]
async fn a_stream_refused_every_time_is_sent_at_most_twice_more() {
    let ca = TestCa::new("kick-oauth-proxy h2 test CA");
    let provider = TlsProvider::h2_resetting(&ca, h2::Reason::REFUSED_STREAM, usize::MAX).await;
    let (app, _dir) = app_for(&provider, &ca).await;

    let response = app.exchange().await;

    assert_eq!(provider.streams(), 3, "the first attempt and two more");
    assert_kick_502_unprocessed(response, &provider).await;
}

/// Answered with the tokens, and the provider processed the exchange exactly once.
async fn assert_exchanged_once(response: reqwest::Response, provider: &TlsProvider) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let received = provider.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].form, exchange_form());
}

/// The contract's 502, and the provider processed nothing.
async fn assert_kick_502_unprocessed(response: reqwest::Response, provider: &TlsProvider) {
    assert_kick_502(response).await;
    assert!(provider.received().is_empty());
}
