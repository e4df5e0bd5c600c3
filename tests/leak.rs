//! Secrets never reach the logs, at any level. The whole flow (successes, provider errors, upstream
//! faults, rejected input) runs with the real subscriber at TRACE, dependencies included as far as
//! they are allowed to log, and the captured output is searched for every canary.
//!
//! Its own test binary: it installs the process-wide subscriber.

use kick_oauth_proxy::config::Settings;
use kick_oauth_proxy::server::Application;
use kick_oauth_proxy::telemetry;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_SECRET: &str = "CANARYclientSECRET0001";
const CODE: &str = "CANARYcode0002";
const VERIFIER: &str = "CANARYverifier0003xxxxxxxxxxxxxxxxxxxxxxxxxxxx";
const REFRESH: &str = "CANARYrefresh0004";
const ACCESS_OUT: &str = "CANARYaccessOUT0005";
const REFRESH_OUT: &str = "CANARYrefreshOUT0006";
const ID_TOKEN_OUT: &str = "CANARYidtokenOUT0007";
const UPSTREAM_BODY: &str = "CANARYupstreamBODY0008";
const BEARER: &str = "CANARYbearer0009";
const BAD_CODE: &str = "CANARY bad code 0010";
const REVOKED: &str = "CANARYrevoked0011";
const GRANT_TYPE: &str = "CANARYgrantType0012";
const REDIRECT: &str = "http://localhost:1420/auth/callback";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(telemetry::subscriber_with(
        EnvFilter::new("trace"),
        true,
        capture.clone(),
    ))
    .expect("first subscriber");

    let upstream = MockServer::start().await;
    let tokens = json!({
        "access_token": ACCESS_OUT, "token_type": "Bearer", "expires_in": 7200,
        "refresh_token": REFRESH_OUT, "scope": "user:read", "id_token": ID_TOKEN_OUT
    });
    Mock::given(path("/oauth/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&tokens))
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&tokens))
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": format!("code {CODE} reused {UPSTREAM_BODY}")}),
        ))
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(503).set_body_raw(
            format!("<html>{UPSTREAM_BODY} {CLIENT_SECRET}</html>"),
            "text/html",
        ))
        .mount(&upstream)
        .await;

    let settings = Settings::from_toml_with_env(
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
[providers.kick]
client_id = "01KLEAKTEST"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{REDIRECT}"]
token_url = "{uri}/oauth/token"
revoke_url = "{uri}/oauth/revoke"
timeout_secs = 2
"#,
            uri = upstream.uri()
        ),
        [],
    )
    .expect("valid config");
    let printed = format!("{settings:?} {settings:#?}");
    assert!(
        !printed.contains(CLIENT_SECRET),
        "Debug of the settings shows the secret"
    );
    let app = Application::build(settings).await.expect("build");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let exchange = json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": REDIRECT});
    let with_verifier = |v: &str| {
        json!({"code": CODE, "code_verifier": format!("{VERIFIER}{v}"), "redirect_uri": REDIRECT})
            .to_string()
    };
    let statuses = [
        // Success, its replay, then (other verifiers: other requests) the provider's
        // invalid_grant and its 503 HTML page.
        post(&http, &base, "token", exchange.to_string(), "application/json").await,
        post(&http, &base, "token", exchange.to_string(), "application/json").await,
        post(&http, &base, "token", with_verifier("2"), "application/json").await,
        post(&http, &base, "token", with_verifier("3"), "application/json").await,
        post(&http, &base, "refresh", format!("refresh_token={REFRESH}"), "application/x-www-form-urlencoded").await,
        // The same refresh sent to /token, as standard libraries do (replayed), and a grant type
        // the proxy does not offer.
        post(&http, &base, "token", format!("grant_type=refresh_token&refresh_token={REFRESH}"), "application/x-www-form-urlencoded").await,
        post(&http, &base, "token", format!("grant_type={GRANT_TYPE}&refresh_token={REFRESH}"), "application/x-www-form-urlencoded").await,
        // Rejected input carrying would-be secrets.
        post(&http, &base, "token", json!({"code": BAD_CODE, "code_verifier": VERIFIER, "redirect_uri": REDIRECT}).to_string(), "application/json").await,
        post(&http, &base, "token", json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": format!("{REDIRECT}?{CODE}")}).to_string(), "application/json").await,
        post(&http, &base, "refresh", format!("{{\"refresh_token\": \"{REFRESH}\""), "application/json").await,
        post(&http, &base, "refresh", format!("refresh_token={REFRESH}"), "text/plain").await,
        // The token travels to Kick in the revoke URL's query string.
        post(&http, &base, "revoke", format!("token={REVOKED}&token_type_hint=refresh_token"), "application/x-www-form-urlencoded").await,
    ];
    assert_eq!(
        statuses,
        [200, 200, 400, 502, 200, 200, 400, 400, 400, 400, 415, 200]
    );
    let live_tokens = emulator_flow().await;
    let probe = http
        .get(format!("{base}/healthz"))
        .header("authorization", format!("Bearer {BEARER}"))
        .send()
        .await
        .expect("health");
    assert_eq!(probe.status(), 200);

    let output = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8 logs");
    assert!(
        output.matches("\"message\":\"request\"").count() >= statuses.len(),
        "the capture works and holds the request lines:\n{output}"
    );
    assert!(output.contains("upstream call failed"), "{output}");
    assert!(
        output.contains("\"level\":\"TRACE\""),
        "the capture runs at TRACE:\n{output}"
    );
    eprintln!(
        "{} bytes of logs captured, e.g.:\n{}",
        output.len(),
        output.lines().take(4).collect::<Vec<_>>().join("\n")
    );
    for canary in [
        CLIENT_SECRET,
        CODE,
        VERIFIER,
        REFRESH,
        ACCESS_OUT,
        REFRESH_OUT,
        ID_TOKEN_OUT,
        UPSTREAM_BODY,
        BEARER,
        BAD_CODE,
        REVOKED,
        GRANT_TYPE,
        "CANARY",
    ]
    .into_iter()
    .chain(live_tokens.iter().map(String::as_str))
    {
        assert!(
            !output.contains(canary),
            "`{canary}` leaked into the logs:\n{output}"
        );
    }
}

/// The dev environment (real emulator, real proxy, the client crate) through a whole login and a
/// faulty provider; returns every code and token that went by, to search the logs for.
async fn emulator_flow() -> Vec<String> {
    use kick_oauth_client::{parse_callback_url, AuthorizeRequest, ProxyClient, TokenTypeHint};
    use kick_oauth_proxy::dev::{DevEnvironment, DEV_REDIRECT_URI};

    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("dev environment");
    env.self_check(&mut |line| tracing::info!(%line, "self-check"))
        .await
        .expect("self-check");

    let (url, pending) = AuthorizeRequest::new(&env.client.client_id, DEV_REDIRECT_URI)
        .authorize_url(env.emulator.authorize_url())
        .build()
        .expect("authorize URL");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = http.get(url.as_str()).send().await.expect("authorize");
    let location = answer.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let code = parse_callback_url(&location, &pending).expect("code");
    let proxy = ProxyClient::new(env.proxy_url(), "kick").expect("proxy client");
    let tokens = proxy
        .exchange(&code, pending.verifier(), pending.redirect_uri())
        .await
        .expect("exchange");
    let refresh = tokens.refresh_token.clone().expect("refresh token");
    let refreshed = proxy.refresh(&refresh).await.expect("refresh");
    let newest = refreshed.refresh_token.clone().expect("new refresh token");
    env.emulator
        .set_fault_times(kick_emulator::Fault::ConnectionResetAfterProcessing, 1);
    let _ = proxy.refresh(&newest).await;
    env.emulator
        .set_fault_times(kick_emulator::Fault::HtmlChallenge, 1);
    let _ = proxy.refresh(&newest).await;
    env.emulator.clear_fault();
    proxy
        .revoke(newest.secret(), Some(TokenTypeHint::RefreshToken))
        .await
        .expect("revoke");
    let collected = vec![
        code.secret().to_owned(),
        pending.verifier().secret().to_owned(),
        tokens.access_token.secret().to_owned(),
        refresh.secret().to_owned(),
        refreshed.access_token.secret().to_owned(),
        newest.secret().to_owned(),
        env.client.client_secret.clone(),
    ];
    env.shutdown().await;
    collected
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: String,
    content_type: &str,
) -> u16 {
    http.post(format!("{base}/api/v1/kick/{endpoint}"))
        .header("content-type", content_type)
        .header("authorization", format!("Bearer {BEARER}"))
        .body(body)
        .send()
        .await
        .expect("proxy answers")
        .status()
        .as_u16()
}
