//! Secrets never reach the logs, at any level. The whole flow (successes, provider errors, upstream
//! faults, rejected input) runs with the real subscriber at TRACE, dependencies included as far as
//! they are allowed to log, and the captured output is searched for every canary.
//!
//! Its own test binary: it installs the process-wide subscriber.

/// The API tests' harness (`TestApp`), shared rather than rolled again.
#[allow(dead_code)]
#[path = "api/helpers/mod.rs"]
mod helpers;

use helpers::TestApp;
use kick_oauth_proxy::config::Settings;
use kick_oauth_proxy::telemetry;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

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
const APP_STATE: &str = "CANARYappState0013";
const RELAY_CODE: &str = "CANARYrelayCode0014";
const RELAY_ERROR: &str = "CANARYrelayError0015";
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

    let app = TestApp::builder().config_for(leak_config).spawn().await;
    let upstream = &app.upstream;
    let tokens = json!({
        "access_token": ACCESS_OUT, "token_type": "Bearer", "expires_in": 7200,
        "refresh_token": REFRESH_OUT, "scope": "user:read", "id_token": ID_TOKEN_OUT
    });
    Mock::given(path("/oauth/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .mount(upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&tokens))
        .mount(upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&tokens))
        .up_to_n_times(1)
        .mount(upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": format!("code {CODE} reused {UPSTREAM_BODY}")}),
        ))
        .up_to_n_times(1)
        .mount(upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(503).set_body_raw(
            format!("<html>{UPSTREAM_BODY} {CLIENT_SECRET}</html>"),
            "text/html",
        ))
        .mount(upstream)
        .await;

    let settings =
        Settings::from_toml_with_env(&leak_config(&upstream.uri()), []).expect("valid config");
    let printed = format!("{settings:?} {settings:#?}");
    assert!(
        !printed.contains(CLIENT_SECRET),
        "Debug of the settings shows the secret"
    );
    let base = format!("http://{}", app.addr);
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
    // The same endpoints through axum's router instead of the direct path (a percent-encoded
    // provider): an exchange the provider fails with its HTML page, and a replayed refresh.
    let routed = [
        post_to(
            &http,
            &format!("{base}/api/v1/%6Bick/token"),
            with_verifier("4"),
            "application/json",
        )
        .await,
        post_to(
            &http,
            &format!("{base}/api/v1/%6Bick/refresh"),
            format!("refresh_token={REFRESH}"),
            "application/x-www-form-urlencoded",
        )
        .await,
    ];
    assert_eq!(routed, [502, 200]);
    let mut live_tokens = emulator_flow().await;
    live_tokens.extend(relay_flow().await);
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
    for route in [
        "/api/v1/{provider}/authorize",
        "/api/v1/{provider}/callback",
    ] {
        assert!(
            output.contains(&format!("\"route\":\"{route}\"")),
            "the relayed flow's request lines are in the capture: {route}"
        );
    }
    assert!(output.contains("relay refused the request"), "{output}");
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
        APP_STATE,
        RELAY_CODE,
        RELAY_ERROR,
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

/// The proxy's config: the canary client secret, replay on (its default), `upstream` as Kick.
fn leak_config(upstream: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.kick]
client_id = "01KLEAKTEST"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{REDIRECT}"]
token_url = "{upstream}/oauth/token"
revoke_url = "{upstream}/oauth/revoke"
timeout_secs = 2
"#
    )
}

/// The dev environment (real emulator, real proxy, the client crate) through a whole login and a
/// faulty provider; returns every code and token that went by, to search the logs for.
async fn emulator_flow() -> Vec<String> {
    use kick_oauth_client::{parse_callback_url, AuthorizeRequest, ProxyClient, TokenTypeHint};
    use kick_oauth_proxy::cli::dev::{DevEnvironment, DEV_REDIRECT_URI};

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

/// The relay (issue #16) through a whole relayed login on an ephemeral port with the client crate
/// and the emulator, then a provider error, a tampered state and refused targets carrying canary
/// values; returns every code, state and token that went by.
async fn relay_flow() -> Vec<String> {
    use kick_oauth_client::{
        CallbackListener, CsrfState, ProxyClient, RelayAuthorizeRequest, RELAY_LOOPBACK_TARGET,
    };
    use kick_oauth_proxy::cli::dev::DevEnvironment;

    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("dev environment");
    let listener = CallbackListener::bind(RELAY_LOOPBACK_TARGET)
        .await
        .expect("listener");
    let target = listener.redirect_uri().to_owned();
    let (url, pending) = RelayAuthorizeRequest::new(env.proxy_url(), "kick", &target)
        .callback_url(env.relay_callback_url.clone())
        .state(CsrfState::new(APP_STATE))
        .build()
        .expect("relay URL");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    // The browser, one hop at a time, keeping the sealed state the provider was sent.
    let to_provider = http.get(url.as_str()).send().await.expect("authorize");
    let to_provider = to_provider.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let sealed = url::Url::parse(&to_provider)
        .expect("URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("sealed state");
    let to_callback = http.get(&to_provider).send().await.expect("emulator");
    let to_callback = to_callback.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let to_app = http.get(&to_callback).send().await.expect("relay callback");
    let to_app = to_app.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let browser = tokio::spawn(async move { reqwest::get(to_app).await.map(drop) });
    let code = listener.wait(&pending).await.expect("relayed code");
    let _ = browser.await;
    let proxy = ProxyClient::new(env.proxy_url(), "kick").expect("proxy client");
    let tokens = proxy
        .exchange(&code, pending.verifier(), pending.redirect_uri())
        .await
        .expect("relayed exchange");

    // A provider error, a tampered state carrying a canary code, refused targets and challenges.
    let callback = format!("{}/api/v1/kick/callback", env.proxy_url());
    let tampered = format!("{}x", &sealed[..sealed.len() - 1]);
    for query in [
        format!("error=access_denied&error_description={RELAY_ERROR}&state={sealed}"),
        format!("code={RELAY_CODE}&state={tampered}"),
        format!("code={RELAY_CODE}"),
        format!("code={RELAY_CODE}&state={APP_STATE}"),
    ] {
        let _ = http.get(format!("{callback}?{query}")).send().await;
    }
    let authorize = format!("{}/api/v1/kick/authorize", env.proxy_url());
    for query in [
        format!("redirect_uri=http://{RELAY_CODE}.example/callback&state={APP_STATE}&code_challenge_method=S256&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        format!("redirect_uri={target}&state={APP_STATE}&code_challenge_method=plain&code_challenge={RELAY_CODE}"),
    ] {
        let answer = http.get(format!("{authorize}?{query}")).send().await;
        assert_eq!(answer.map(|a| a.status().as_u16()).ok(), Some(400));
    }
    let collected = vec![
        sealed,
        tampered,
        code.secret().to_owned(),
        pending.verifier().secret().to_owned(),
        tokens.access_token.secret().to_owned(),
        tokens
            .refresh_token
            .as_ref()
            .map(|t| t.secret().to_owned())
            .unwrap_or_default(),
    ];
    env.shutdown().await;
    collected.into_iter().filter(|v| !v.is_empty()).collect()
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: String,
    content_type: &str,
) -> u16 {
    post_to(
        http,
        &format!("{base}/api/v1/kick/{endpoint}"),
        body,
        content_type,
    )
    .await
}

async fn post_to(http: &reqwest::Client, url: &str, body: String, content_type: &str) -> u16 {
    http.post(url)
        .header("content-type", content_type)
        .header("authorization", format!("Bearer {BEARER}"))
        .body(body)
        .send()
        .await
        .expect("proxy answers")
        .status()
        .as_u16()
}
