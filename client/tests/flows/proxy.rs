use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kick_oauth_client::{
    AuthorizationCode, Error, OAuthErrorCode, PkceVerifier, ProxyClient, RefreshToken, RetryPolicy,
    TemporaryKind, TokenSet, TokenTypeHint,
};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{fast_retry, proxy_for, t0, token_body};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://localhost:1420/auth/callback";

fn code() -> AuthorizationCode {
    AuthorizationCode::new("the-code")
}

fn verifier() -> PkceVerifier {
    PkceVerifier::parse(VERIFIER).expect("valid")
}

fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": error, "error_description": "fixed text"}))
}

#[tokio::test]
async fn exchange_sends_code_verifier_and_redirect_uri_as_json_and_returns_the_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/kick/token"))
        .and(header("content-type", "application/json"))
        // Exact body: nothing else (no client_id, no secret, no grant_type) is sent.
        .and(body_json(json!({
            "code": "the-code",
            "code_verifier": VERIFIER,
            "redirect_uri": REDIRECT,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(
            "acc-1",
            Some("ref-1"),
            7200,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let response = proxy_for(&server)
        .exchange(&code(), &verifier(), REDIRECT)
        .await
        .expect("exchange succeeds");
    assert_eq!(response.access_token.secret(), "acc-1");
    assert_eq!(
        response.refresh_token.as_ref().map(RefreshToken::secret),
        Some("ref-1")
    );
    assert_eq!(response.expires_in, Some(7200));
    let set = TokenSet::from_response(response, t0());
    assert_eq!(set.expires_at, t0() + Duration::from_secs(7200));
}

#[tokio::test]
async fn refresh_and_revoke_send_the_documented_json_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/kick/refresh"))
        .and(body_json(json!({"refresh_token": "ref-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("acc-2", None, 7200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/kick/revoke"))
        .and(body_json(
            json!({"token": "ref-1", "token_type_hint": "refresh_token"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/kick/revoke"))
        .and(body_json(json!({"token": "acc-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;

    let proxy = proxy_for(&server);
    let refreshed = proxy
        .refresh(&RefreshToken::new("ref-1"))
        .await
        .expect("refresh succeeds");
    assert_eq!(refreshed.access_token.secret(), "acc-2");
    assert!(refreshed.refresh_token.is_none());
    proxy
        .revoke("ref-1", Some(TokenTypeHint::RefreshToken))
        .await
        .expect("revoke succeeds");
    proxy
        .revoke("acc-2", None)
        .await
        .expect("revoke without hint");
}

#[tokio::test]
async fn invalid_grant_means_log_in_again_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(oauth_error(400, "invalid_grant"))
        .expect(1)
        .mount(&server)
        .await;
    let err = proxy_for(&server)
        .refresh(&RefreshToken::new("dead"))
        .await
        .expect_err("dead grant");
    assert!(err.is_login_required());
    match err {
        Error::GrantInvalid { description } => {
            assert_eq!(description.as_deref(), Some("fixed text"))
        }
        other => panic!("expected GrantInvalid, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_request_is_rejected_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/token"))
        .respond_with(oauth_error(400, "invalid_request"))
        .expect(1)
        .mount(&server)
        .await;
    let err = proxy_for(&server)
        .exchange(&code(), &verifier(), "http://localhost:9999/not-allowed")
        .await
        .expect_err("rejected");
    assert!(!err.is_temporary() && !err.is_login_required());
    assert!(matches!(
        err,
        Error::Rejected {
            status: 400,
            error: OAuthErrorCode::InvalidRequest,
            ..
        }
    ));
}

#[tokio::test]
async fn bad_gateway_then_success_is_retried_and_recovers() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/token"))
        .respond_with(oauth_error(502, "error_kick_server_error"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/kick/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("acc", None, 7200)))
        .expect(1)
        .mount(&server)
        .await;
    let response = proxy_for(&server)
        .exchange(&code(), &verifier(), REDIRECT)
        .await
        .expect("second attempt succeeds");
    assert_eq!(response.access_token.secret(), "acc");
}

#[tokio::test]
async fn persistent_bad_gateway_gives_up_after_the_attempt_limit() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(oauth_error(502, "error_kick_server_error"))
        .expect(3)
        .mount(&server)
        .await;
    let err = proxy_for(&server)
        .refresh(&RefreshToken::new("r"))
        .await
        .expect_err("still down");
    assert!(matches!(
        err,
        Error::Temporary {
            kind: TemporaryKind::Upstream,
            retry_after: None
        }
    ));
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_next_attempt() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(oauth_error(503, "temporarily_unavailable").insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("acc", None, 60)))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    proxy_for(&server)
        .refresh(&RefreshToken::new("r"))
        .await
        .expect("recovers");
    // Backoff alone would be ~10 ms; the server asked for a second.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_longer_than_the_limit_is_handed_to_the_caller_at_once() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(oauth_error(429, "slow_down").insert_header("retry-after", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = proxy_for(&server)
        .refresh(&RefreshToken::new("r"))
        .await
        .expect_err("rate limited");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        err,
        Error::Temporary {
            kind: TemporaryKind::RateLimited,
            ..
        }
    ));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_timeout_after_the_request_was_sent_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_body("late", None, 60))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let proxy = ProxyClient::builder(server.uri(), "kick")
        .retry_policy(fast_retry())
        .timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    let err = proxy
        .exchange(&code(), &verifier(), REDIRECT)
        .await
        .expect_err("times out");
    assert!(matches!(
        err,
        Error::Temporary {
            kind: TemporaryKind::Timeout,
            ..
        }
    ));
}

#[tokio::test]
async fn connection_refused_is_retried_and_reported_as_temporary() {
    // A port with nothing listening: every attempt fails to connect, so nothing was ever sent.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let proxy = ProxyClient::builder(format!("http://127.0.0.1:{port}"), "kick")
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(1),
        })
        .build()
        .expect("valid");
    let started = Instant::now();
    let err = proxy
        .refresh(&RefreshToken::new("r"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(
        err,
        Error::Temporary {
            kind: TemporaryKind::Connect,
            ..
        }
    ));
    // Two backoffs of 50-100 ms each show that it was retried.
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unknown_provider_is_a_configuration_error_and_non_token_200_is_invalid() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/twich/refresh"))
        .respond_with(oauth_error(404, "not_found"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>challenge</html>"))
        .expect(1)
        .mount(&server)
        .await;
    let typo = ProxyClient::builder(server.uri(), "twich")
        .retry_policy(fast_retry())
        .build()
        .expect("valid");
    assert!(matches!(
        typo.refresh(&RefreshToken::new("r")).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        proxy_for(&server).refresh(&RefreshToken::new("r")).await,
        Err(Error::InvalidResponse(_))
    ));
}

#[tokio::test]
async fn base_url_with_a_path_prefix_is_kept() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth-proxy/api/v1/kick/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let proxy = ProxyClient::new(format!("{}/oauth-proxy", server.uri()), "kick").expect("valid");
    proxy.revoke("t", None).await.expect("revoked");
}

#[test]
fn cleartext_remote_proxy_and_bad_provider_names_are_refused() {
    assert!(matches!(
        ProxyClient::new("http://teambattles.gg", "kick"),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        ProxyClient::new("https://teambattles.gg", "../admin"),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        ProxyClient::new("https://teambattles.gg", ""),
        Err(Error::Config(_))
    ));
    ProxyClient::new("https://teambattles.gg", "kick").expect("https is fine");
    ProxyClient::new("http://127.0.0.1:8080", "kick").expect("loopback http is fine");
}

/// A writer that collects everything `tracing` prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_logs_even_at_trace() {
    const CODE: &str = "CANARYcode4f1e";
    const ACCESS: &str = "CANARYaccess93b2";
    const REFRESH: &str = "CANARYrefresh7c0d";

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(
            ACCESS,
            Some(REFRESH),
            7200,
        )))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/kick/refresh"))
        .respond_with(oauth_error(502, "error_kick_server_error"))
        .mount(&server)
        .await;
    let proxy = proxy_for(&server);
    let response = proxy
        .exchange(&AuthorizationCode::new(CODE), &verifier(), REDIRECT)
        .await
        .expect("exchange");
    let set = TokenSet::from_response(response, t0());
    tracing::info!(tokens = ?set, "what an app might log");
    let _ = proxy
        .refresh(set.refresh_token.as_ref().expect("issued"))
        .await;
    let _ = proxy.revoke(set.access_token.secret(), None).await;

    let logs = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf8");
    assert!(logs.contains("retrying"), "the run did log: {logs}");
    for canary in [CODE, ACCESS, REFRESH, VERIFIER] {
        assert!(!logs.contains(canary), "{canary} leaked into logs:\n{logs}");
    }
}
