//! The stateless loopback authorize relay (`[providers.<name>.relay]`, issue #16): end to end with
//! the Kick emulator (which compares redirect URIs exactly, as Kick does) and the client crate,
//! the refusals with "the provider and the target never contacted" shown by the emulator's
//! counters and a loopback listener that records every connection, two proxy instances sharing
//! only the sealing key, and the relay's config keys.

use crate::helpers::{exchange_body, spawn_app_with, CLIENT_ID, CODE, VERIFIER};
use kick_emulator::{Emulator, EmulatorConfig, RegisteredClient};
use kick_oauth_client::{
    CallbackListener, PendingLogin, ProxyClient, RelayAuthorizeRequest, Scope,
    RELAY_LOOPBACK_TARGET,
};
use kick_oauth_proxy::config::Settings;
use kick_oauth_proxy::relay::seal::{Flow, Sealer};
use kick_oauth_proxy::server::Application;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

const SEALING_SECRET: &str = "relay-test-sealing-secret-0123456789abcdef";
const OTHER_SECRET: &str = "another-relay-sealing-secret-0123456789abcd";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const APP_STATE: &str = "the-apps-own-state-0001";

/// A proxy serving on a port bound before its config was written.
struct Proxy {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The emulator and proxies in front of it. Every proxy sends the provider the callback URL of
/// `proxies[0]` (a load balancer's public URL would be one address too), registered at the
/// emulator; the proxies share nothing but what their sealing secrets give them.
struct Relayed {
    emulator: Emulator,
    proxies: Vec<Proxy>,
    callback_url: String,
    http: reqwest::Client,
}

/// `(sealing_secret, previous_sealing_secret)` of each proxy to start.
async fn relayed(secrets: &[(&str, Option<&str>)]) -> Relayed {
    let mut sockets = Vec::new();
    for _ in secrets {
        sockets.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let first = sockets[0].local_addr().expect("address");
    let callback_url = format!("http://{first}/api/v1/kick/callback");
    let mut client = RegisteredClient::emulator_default();
    client.redirect_uris = vec![callback_url.clone()];
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![client.clone()],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let mut proxies = Vec::new();
    for (socket, (current, previous)) in sockets.into_iter().zip(secrets) {
        let addr = socket.local_addr().expect("address");
        let previous = previous
            .map(|p| format!("previous_sealing_secret = {p:?}\n"))
            .unwrap_or_default();
        let toml = format!(
            r#"
[server]
listen = "{addr}"
[replay]
window_secs = 0
[providers.kick]
client_id = {id:?}
client_secret = {secret:?}
allowed_redirect_uris = ["http://localhost:1420/auth/callback"]
token_url = {token:?}
revoke_url = {revoke:?}
[providers.kick.relay]
callback_url = {callback_url:?}
authorize_url = {authorize:?}
sealing_secret = {current:?}
{previous}"#,
            id = client.client_id,
            secret = client.client_secret,
            token = emulator.token_url(),
            revoke = emulator.revoke_url(),
            authorize = emulator.authorize_url(),
        );
        let settings = Settings::from_toml_with_env(&toml, []).expect("valid config");
        let app = Application::build_on(settings, socket)
            .await
            .expect("proxy builds");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        proxies.push(Proxy {
            addr,
            stop: Some(stop),
        });
    }
    Relayed {
        emulator,
        proxies,
        callback_url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("client"),
    }
}

/// A loopback listener standing where an app's callback listener would: it answers every
/// connection and records each request line, so a test can show that nothing reached it.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    let line = String::from_utf8_lossy(&buffer[..n])
                        .lines()
                        .next()
                        .unwrap_or("(connection without a request)")
                        .to_owned();
                    seen.lock().expect("lock").push(line);
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self { port, requests }
    }

    fn target(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// What a browser does: GET, then follow every `Location` (at most 6), whatever its host.
/// Returns each answer's status and the last URL requested.
async fn browse(http: &reqwest::Client, url: &str) -> (Vec<u16>, Url) {
    let mut next = Url::parse(url).expect("URL");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let Ok(answer) = http.get(next.clone()).send().await else {
            return (statuses, next);
        };
        statuses.push(answer.status().as_u16());
        let Some(location) = answer
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
        else {
            return (statuses, next);
        };
        match next.join(location) {
            Ok(url) => next = url,
            Err(_) => return (statuses, next),
        }
    }
    (statuses, next)
}

fn authorize_query(target: &str, extra: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("redirect_uri", target)
        .append_pair("state", APP_STATE)
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    for (key, value) in extra {
        query.append_pair(key, value);
    }
    query.finish()
}

fn query_value(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Asserts a refusal: 400, the HTML page naming `code`, the relay's headers, no redirect, and
/// nothing of the request echoed.
async fn assert_refused(response: reqwest::Response, code: &str, not_echoed: &[&str]) {
    assert_eq!(response.status(), 400, "{code}");
    let headers = response.headers().clone();
    assert!(
        headers.get("location").is_none(),
        "{code}: a refusal never redirects"
    );
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"]
        .to_str()
        .is_ok_and(|csp| csp.starts_with("default-src 'none'")));
    let body = response.text().await.expect("body");
    assert!(body.contains(&format!("<small>{code}</small>")), "{body}");
    for value in not_echoed.iter().filter(|v| !v.is_empty()) {
        assert!(!body.contains(value), "{code}: the page echoes {value:?}");
    }
}

/// A relay state sealed by the test itself, as a proxy with `secret` would.
fn forged_state(secret: &str, target: &str, expires_at: u64) -> String {
    Sealer::from_secrets(secret, None)
        .seal(
            "kick",
            &Flow {
                target: target.to_owned(),
                app_state: APP_STATE.to_owned(),
                expires_at,
            },
        )
        .expect("seal")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The sealed state a proxy sends the provider for `target`, without going to the provider.
async fn sealed_state_from(relayed: &Relayed, proxy: &Proxy, target: &str) -> String {
    let answer = relayed
        .http
        .get(proxy.url(&format!(
            "/api/v1/kick/authorize?{}",
            authorize_query(target, &[])
        )))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(answer.status(), 302);
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    query_value(&location, "state").expect("sealed state")
}

/// A relayed login through the client crate: an ephemeral loopback listener, the proxy's
/// authorize URL, a browser that follows the redirects, the code received on the listener.
async fn client_login(
    relayed: &Relayed,
    authorize_at: &Proxy,
) -> (kick_oauth_client::AuthorizationCode, PendingLogin, String) {
    let listener = CallbackListener::bind(RELAY_LOOPBACK_TARGET)
        .await
        .expect("loopback listener")
        .timeout(Duration::from_secs(10));
    let target = listener.redirect_uri().to_owned();
    let (url, pending) = RelayAuthorizeRequest::new(authorize_at.url(""), "kick", &target)
        .callback_url(relayed.callback_url.clone())
        .scopes([Scope::UserRead, Scope::ChannelRead])
        .build()
        .expect("authorize URL");
    let browser = tokio::spawn(kick_oauth_proxy::cli::browser::approve(url.to_string()));
    let code = listener.wait(&pending).await.expect("the code arrives");
    let hops = browser.await.expect("join").expect("browser");
    let path: Vec<(u16, String)> = hops.iter().map(|h| (h.status, h.url.clone())).collect();
    assert_eq!(
        path,
        [
            (302, authorize_at.url("/api/v1/kick/authorize")),
            (302, relayed.emulator.authorize_url()),
            (302, relayed.callback_url.clone()),
            (200, target.clone()),
        ],
        "proxy → provider → the registered callback → the app's loopback port"
    );
    (code, pending, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_login_on_an_ephemeral_port_completes_through_the_client_crate() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let (code, pending, target) = client_login(&relayed, &relayed.proxies[0]).await;
    let port = Url::parse(&target).expect("URL").port().expect("port");
    assert!(port != 0 && port != 1420, "an ephemeral port: {port}");
    assert_eq!(code.secret().len(), 48);
    assert_eq!(pending.redirect_uri(), relayed.callback_url);

    let proxy = ProxyClient::new(relayed.proxies[0].url(""), "kick").expect("proxy client");
    let tokens = proxy
        .exchange(&code, pending.verifier(), pending.redirect_uri())
        .await
        .expect("the exchange with redirect_uri = callback_url succeeds");
    assert_eq!(tokens.access_token.secret().len(), 48);
    assert_eq!(tokens.scope.as_deref(), Some("user:read channel:read"));
    let stats = relayed.emulator.stats();
    assert_eq!(stats.authorize_requests, 1);
    assert_eq!(stats.authorization_code_grants_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_relayed_logins_on_different_ports_each_get_their_own_code() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let (first, second) = tokio::join!(
        client_login(&relayed, &relayed.proxies[0]),
        client_login(&relayed, &relayed.proxies[0])
    );
    assert_ne!(first.2, second.2, "two listeners, two ports");
    assert_ne!(first.0.secret(), second.0.secret(), "two codes");
    let proxy = ProxyClient::new(relayed.proxies[0].url(""), "kick").expect("proxy client");
    for (code, pending, _) in [&first, &second] {
        proxy
            .exchange(code, pending.verifier(), pending.redirect_uri())
            .await
            .expect("each code goes with its own verifier");
    }
    assert_eq!(relayed.emulator.stats().authorization_code_grants_ok, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_can_be_served_by_two_instances_sharing_only_the_sealing_key() {
    // proxies[0] owns the registered callback URL; the login starts at proxies[1] and is
    // exchanged there: the callback step runs on an instance that never saw the flow begin.
    let relayed = relayed(&[(SEALING_SECRET, None), (SEALING_SECRET, None)]).await;
    let (code, pending, _) = client_login(&relayed, &relayed.proxies[1]).await;
    let exchanger = ProxyClient::new(relayed.proxies[1].url(""), "kick").expect("proxy client");
    exchanger
        .exchange(&code, pending.verifier(), pending.redirect_uri())
        .await
        .expect("exchanged at the instance that started it");
    assert_eq!(relayed.emulator.stats().authorization_code_grants_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_a_state_sealed_with_the_previous_secret_still_opens() {
    // proxies[0] (the callback) has rotated: new secret, the old one as previous. proxies[1]
    // still seals with the old one, as a replica not yet rolled would.
    let relayed = relayed(&[(OTHER_SECRET, Some(SEALING_SECRET)), (SEALING_SECRET, None)]).await;
    let (code, pending, _) = client_login(&relayed, &relayed.proxies[1]).await;
    ProxyClient::new(relayed.proxies[0].url(""), "kick")
        .expect("proxy client")
        .exchange(&code, pending.verifier(), pending.redirect_uri())
        .await
        .expect("exchange");
    // The other way round, the old-key replica refuses what the new key sealed.
    let recorder = Recorder::start().await;
    let sealed = sealed_state_from(&relayed, &relayed.proxies[0], &recorder.target()).await;
    let answer = relayed
        .http
        .get(relayed.proxies[1].url(&format!("/api/v1/kick/callback?code=x&state={sealed}")))
        .send()
        .await
        .expect("proxy answers");
    assert_refused(answer, "unknown_state_key", &[&sealed]).await;
    assert!(recorder.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_and_look_alike_targets_are_refused_and_nothing_is_contacted() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let recorder = Recorder::start().await;
    let port = recorder.port;
    let refused = [
        "https://evil.example/callback".to_owned(),
        format!("http://192.0.2.1:{port}/callback"),
        format!("http://127.0.0.2:{port}/callback"),
        format!("http://127.0.0.1.evil.com:{port}/callback"),
        format!("http://localhost@evil.com:{port}/callback"),
        format!("http://localhost:{port}@evil.com/callback"),
        format!("http://user:pass@127.0.0.1:{port}/callback"),
        format!("http://0.0.0.0:{port}/callback"),
        format!("http://[::ffff:127.0.0.1]:{port}/callback"),
        format!("http://LOCALHOST:{port}/callback"),
        format!("http://LocalHost:{port}/callback"),
        format!("https://127.0.0.1:{port}/callback"),
        "http://127.0.0.1:0/callback".to_owned(),
        "http://127.0.0.1:65536/callback".to_owned(),
        "http://127.0.0.1:99999/callback".to_owned(),
        format!("http://127.0.0.1:0{port}/callback"),
        format!("http://127.0.0.1:{port}/callback/"),
        format!("http://127.0.0.1:{port}/callback?next=https://evil.example"),
        format!("http://127.0.0.1:{port}/callback#x"),
        format!("http://127.0.0.1:{port}/other"),
        format!("http://127.0.0.1:{port}%2Fcallback"),
        "battles-record://oauth/callback".to_owned(),
        String::new(),
    ];
    for target in &refused {
        let url = relayed.proxies[0].url(&format!(
            "/api/v1/kick/authorize?{}",
            authorize_query(target, &[])
        ));
        let (statuses, _) = browse(&relayed.http, &url).await;
        assert_eq!(statuses, [400], "{target}");
        let page = relayed.http.get(&url).send().await.expect("answer");
        assert_refused(page, "invalid_target", &[target.as_str(), APP_STATE]).await;
    }
    assert_eq!(
        relayed.emulator.stats().authorize_requests,
        0,
        "provider contacted"
    );
    assert_eq!(
        recorder.requests(),
        Vec::<String>::new(),
        "target contacted"
    );

    // The same browser and the allowed form of the target: provider and target are reached, so
    // the silence above is the relay's doing.
    let url = relayed.proxies[0].url(&format!(
        "/api/v1/kick/authorize?{}",
        authorize_query(&recorder.target(), &[("scope", "user:read")])
    ));
    let (statuses, last) = browse(&relayed.http, &url).await;
    assert_eq!(statuses, [302, 302, 302, 200]);
    assert_eq!(relayed.emulator.stats().authorize_requests, 1);
    assert_eq!(query_value(&last, "state").as_deref(), Some(APP_STATE));
    let requests = recorder.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /callback?code="),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_plain_challenge_or_bad_state_is_refused_and_nothing_is_contacted() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let recorder = Recorder::start().await;
    let target = recorder.target();
    let base = |pairs: &[(&str, &str)]| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        relayed.proxies[0].url(&format!("/api/v1/kick/authorize?{}", query.finish()))
    };
    let t = target.as_str();
    let cases: [(&str, Vec<(&str, &str)>); 9] = [
        (
            "invalid_challenge",
            vec![("redirect_uri", t), ("state", APP_STATE)],
        ),
        (
            "invalid_challenge",
            vec![
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", CHALLENGE),
            ],
        ),
        (
            "invalid_challenge",
            vec![
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
        ),
        (
            "invalid_challenge",
            vec![
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
        ),
        (
            "invalid_challenge",
            vec![
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "s256"),
            ],
        ),
        (
            "invalid_request",
            vec![
                ("redirect_uri", t),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ),
        (
            "invalid_request",
            vec![
                ("redirect_uri", t),
                ("state", "short"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ),
        (
            "invalid_request",
            vec![
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", "user:read \"quoted\""),
            ],
        ),
        (
            "invalid_request",
            vec![
                ("redirect_uri", t),
                ("redirect_uri", t),
                ("state", APP_STATE),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ),
    ];
    for (code, pairs) in &cases {
        let url = base(pairs);
        let (statuses, _) = browse(&relayed.http, &url).await;
        assert_eq!(statuses, [400], "{pairs:?}");
        let page = relayed.http.get(&url).send().await.expect("answer");
        assert_refused(page, code, &[APP_STATE]).await;
    }
    assert_eq!(relayed.emulator.stats().authorize_requests, 0);
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_key_expired_and_missing_states_get_a_page_and_no_redirect() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let recorder = Recorder::start().await;
    let target = recorder.target();
    let sealed = sealed_state_from(&relayed, &relayed.proxies[0], &target).await;
    let middle = sealed.len() / 2;
    let flipped = if &sealed[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{flipped}{}", &sealed[..middle], &sealed[middle + 1..]);
    let foreign = forged_state(OTHER_SECRET, &target, now() + 600);
    let expired = forged_state(SEALING_SECRET, &target, now() - 1);
    let callback =
        |query: String| relayed.proxies[0].url(&format!("/api/v1/kick/callback?{query}"));
    for (query, code) in [
        (format!("code=CODE1234&state={tampered}"), "invalid_state"),
        (
            format!("code=CODE1234&state={foreign}"),
            "unknown_state_key",
        ),
        (format!("code=CODE1234&state={expired}"), "expired_state"),
        (
            "code=CODE1234&state=not-a-sealed-state".to_owned(),
            "invalid_state",
        ),
        ("code=CODE1234".to_owned(), "missing_state"),
        ("code=CODE1234&state=".to_owned(), "missing_state"),
        (format!("state={sealed}"), "invalid_request"),
        (
            format!("code=CODE1234&code=CODE5678&state={sealed}"),
            "invalid_request",
        ),
        (format!("code=bad%20code&state={sealed}"), "invalid_code"),
    ] {
        let (statuses, _) = browse(&relayed.http, &callback(query.clone())).await;
        assert_eq!(statuses, [400], "{query}");
        let page = relayed
            .http
            .get(callback(query))
            .send()
            .await
            .expect("answer");
        assert_refused(page, code, &["CODE1234", APP_STATE, &sealed]).await;
    }
    let stats = relayed.emulator.stats();
    assert_eq!(stats.authorize_requests + stats.token_requests, 0);
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());

    // A state forged with the right key and a future expiry does open: the refusals above are
    // about the state, not about forging.
    let good = forged_state(SEALING_SECRET, &target, now() + 600);
    let (statuses, last) = browse(
        &relayed.http,
        &callback(format!("code=CODE1234&state={good}")),
    )
    .await;
    assert_eq!(statuses, [302, 200]);
    assert_eq!(query_value(&last, "code").as_deref(), Some("CODE1234"));
    assert_eq!(query_value(&last, "state").as_deref(), Some(APP_STATE));
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_passes_through_to_the_app_sanitised() {
    let relayed = relayed(&[(SEALING_SECRET, None)]).await;
    let recorder = Recorder::start().await;
    let sealed = sealed_state_from(&relayed, &relayed.proxies[0], &recorder.target()).await;
    let callback =
        |query: String| relayed.proxies[0].url(&format!("/api/v1/kick/callback?{query}"));

    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("error", "access_denied")
        .append_pair(
            "error_description",
            "The user said \"no\"\r\n<script>alert(1)</script>\\",
        )
        .append_pair("error_uri", "https://evil.example/")
        .append_pair("state", &sealed);
    let answer = relayed
        .http
        .get(callback(query.finish()))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 302);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_eq!(answer.headers()["referrer-policy"], "no-referrer");
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    assert!(location
        .as_str()
        .starts_with(&format!("{}?", recorder.target())));
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("error".to_owned(), "access_denied".to_owned()),
            (
                "error_description".to_owned(),
                "The user said no<script>alert(1)</script>".to_owned()
            ),
            ("state".to_owned(), APP_STATE.to_owned()),
        ],
        "RFC 6749 §5.2 characters only, error_uri dropped, the app's own state"
    );

    // An `error` that is not an OAuth error code becomes `server_error`.
    let answer = relayed
        .http
        .get(callback(format!(
            "error=%3Cb%3Enope%3C%2Fb%3E&state={sealed}"
        )))
        .send()
        .await
        .expect("answer");
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("server_error")
    );
    assert!(query_value(&location, "error_description").is_none());
    // A well-formed code RFC 6749 does not define, too.
    let answer = relayed
        .http
        .get(callback(format!("error=made_up_error&state={sealed}")))
        .send()
        .await
        .expect("answer");
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("server_error")
    );
    assert_eq!(relayed.emulator.stats().token_requests, 0);
}

#[tokio::test]
async fn token_accepts_the_relay_callback_url_only_where_a_relay_is_configured() {
    const CALLBACK: &str = "https://proxy.example.com/api/v1/kick/callback";
    let body = json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": CALLBACK});

    let plain = spawn_app_with(|toml| toml).await;
    plain.upstream_must_not_be_called().await;
    let answer = plain.post_json("/api/v1/kick/token", &body).await;
    crate::helpers::assert_error(answer, 400, "invalid_request").await;
    for path in ["/api/v1/kick/authorize", "/api/v1/kick/callback"] {
        let answer = plain
            .http
            .get(plain.url(path))
            .send()
            .await
            .expect("answer");
        crate::helpers::assert_error(answer, 404, "not_found").await;
    }

    let with_relay = spawn_app_with(|toml| {
        format!(
            "{toml}\n[providers.kick.relay]\ncallback_url = {CALLBACK:?}\nsealing_secret = {SEALING_SECRET:?}\n"
        )
    })
    .await;
    with_relay
        .upstream_answers(
            wiremock::ResponseTemplate::new(200).set_body_json(crate::helpers::kick_tokens()),
            2,
        )
        .await;
    let answer = with_relay.post_json("/api/v1/kick/token", &body).await;
    assert_eq!(answer.status(), 200);
    let forms = with_relay.upstream_forms().await;
    assert_eq!(forms[0]["redirect_uri"], CALLBACK);
    assert_eq!(forms[0]["client_id"], CLIENT_ID);
    // The allowlist itself still works as before.
    let answer = with_relay
        .post_json("/api/v1/kick/token", &exchange_body())
        .await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn authorize_sends_the_provider_this_proxys_client_id_callback_and_sealed_state() {
    let app = spawn_app_with(|toml| {
        format!(
            "{toml}\n[providers.kick.relay]\ncallback_url = \"https://proxy.example.com/api/v1/kick/callback\"\nsealing_secret = {SEALING_SECRET:?}\n"
        )
    })
    .await;
    app.upstream_must_not_be_called().await;
    let answer = app
        .http
        .get(app.url(&format!(
            "/api/v1/kick/authorize?{}",
            authorize_query(
                "http://[::1]:50123/callback",
                &[
                    ("scope", "user:read channel:read"),
                    ("client_id", "someone-else")
                ]
            )
        )))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 302);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_eq!(answer.headers()["referrer-policy"], "no-referrer");
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    assert_eq!(
        location.as_str().split('?').next(),
        Some("https://id.kick.com/oauth/authorize"),
        "the kick preset's authorization endpoint"
    );
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method"
        ]
    );
    assert_eq!(
        query_value(&location, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_value(&location, "redirect_uri").as_deref(),
        Some("https://proxy.example.com/api/v1/kick/callback")
    );
    assert_eq!(
        query_value(&location, "code_challenge").as_deref(),
        Some(CHALLENGE)
    );
    let state = query_value(&location, "state").expect("state");
    assert!(!state.contains(APP_STATE) && !location.as_str().contains("50123"));
    let opened = Sealer::from_secrets(SEALING_SECRET, None)
        .open("kick", &state, now())
        .expect("sealed with the configured secret");
    assert_eq!(opened.target, "http://[::1]:50123/callback");
    assert_eq!(opened.app_state, APP_STATE);
    let lifetime = opened.expires_at.saturating_sub(now());
    assert!(
        (595..=600).contains(&lifetime),
        "default lifetime 10 min: {lifetime}"
    );
}

/// The relay table on top of the standard test provider.
fn config_with_relay(relay: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.kick]
client_id = "01KTESTCLIENTID"
client_secret = "test-client-secret"
allowed_redirect_uris = ["http://localhost:1420/auth/callback"]
[providers.kick.relay]
{relay}
"#
    )
}

fn refused_key(toml: &str) -> (String, String) {
    let error = Settings::from_toml_with_env(toml, []).expect_err("refused");
    (error.key.clone(), error.to_string())
}

#[test]
fn relay_config_errors_name_the_key_and_never_print_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let short = "31-bytes-SECRET-CANARY-xxxxxxxx";
    assert_eq!(short.len(), 31);
    let cb = r#"callback_url = "https://proxy.example.com/api/v1/kick/callback""#;
    let secret = format!("sealing_secret = {SEALING_SECRET:?}");
    let missing_file = dir.path().join("missing");
    let cases: Vec<(String, &str)> = vec![
        (secret.clone(), "providers.kick.relay.callback_url"),
        (
            format!("{secret}\ncallback_url = \"http://proxy.example.com/api/v1/kick/callback\""),
            "providers.kick.relay.callback_url",
        ),
        (
            format!("{secret}\ncallback_url = \"https://proxy.example.com/api/v1/twitch/callback\""),
            "providers.kick.relay.callback_url",
        ),
        (
            format!("{secret}\ncallback_url = \"https://proxy.example.com/api/v1/kick/callback?x=1\""),
            "providers.kick.relay.callback_url",
        ),
        (
            format!("{secret}\ncallback_url = \"https://Proxy.Example.com:443/api/v1/kick/callback\""),
            "providers.kick.relay.callback_url",
        ),
        (cb.to_owned(), "providers.kick.relay.sealing_secret"),
        (
            format!("{cb}\nsealing_secret = {short:?}"),
            "providers.kick.relay.sealing_secret",
        ),
        (
            format!("{cb}\nsealing_secret = \"replace-with-a-random-secret-of-at-least-32-bytes\""),
            "providers.kick.relay.sealing_secret",
        ),
        (
            format!("{cb}\n{secret}\nsealing_secret_file = {:?}", missing_file),
            "providers.kick.relay.sealing_secret",
        ),
        (
            format!("{cb}\nsealing_secret_file = {:?}", missing_file),
            "providers.kick.relay.sealing_secret_file",
        ),
        (
            format!("{cb}\n{secret}\nprevious_sealing_secret = {SEALING_SECRET:?}"),
            "providers.kick.relay.previous_sealing_secret",
        ),
        (
            format!("{cb}\n{secret}\nprevious_sealing_secret = {short:?}"),
            "providers.kick.relay.previous_sealing_secret",
        ),
        (
            format!("{cb}\n{secret}\ntargets = []"),
            "providers.kick.relay.targets",
        ),
        (
            format!("{cb}\n{secret}\ntargets = [\"http://127.0.0.1:*/callback\", \"https://app.example.com/callback\"]"),
            "providers.kick.relay.targets[1]",
        ),
        (
            format!("{cb}\n{secret}\ntargets = [\"http://127.0.0.1:1420/callback\"]"),
            "providers.kick.relay.targets[0]",
        ),
        (
            format!("{cb}\n{secret}\nflow_lifetime_secs = 5"),
            "providers.kick.relay.flow_lifetime_secs",
        ),
        (
            format!("{cb}\n{secret}\nauthorize_url = \"http://id.kick.com/oauth/authorize\""),
            "providers.kick.relay.authorize_url",
        ),
    ];
    for (relay, key) in &cases {
        let (got, message) = refused_key(&config_with_relay(relay));
        assert_eq!(&got, key, "{relay}\n{message}");
        assert!(!message.contains("CANARY"), "{message}");
        assert!(!message.contains(SEALING_SECRET), "{message}");
    }
    // An unknown key in the table is named too.
    let (got, _) = refused_key(&config_with_relay(&format!(
        "{cb}\n{secret}\nsealing_key = 1"
    )));
    assert!(got.contains("relay"), "{got}");
    // A generic provider has no built-in authorization endpoint.
    let generic = format!(
        r#"
[providers.acme]
client_id = "acme"
client_secret = "acme-secret"
allowed_redirect_uris = ["https://app.example.com/cb"]
token_url = "https://id.acme.example/token"
[providers.acme.relay]
callback_url = "https://proxy.example.com/api/v1/acme/callback"
{secret}
"#
    );
    assert_eq!(
        refused_key(&generic).0,
        "providers.acme.relay.authorize_url"
    );
}

#[test]
fn relay_secrets_come_from_files_or_env_and_check_config_prints_them_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay_sealing_secret");
    std::fs::write(&file, format!("{SEALING_SECRET}\n")).expect("write");
    let toml = config_with_relay(&format!(
        "callback_url = \"https://proxy.example.com/api/v1/kick/callback\"\nsealing_secret_file = {file:?}\nprevious_sealing_secret = {OTHER_SECRET:?}\nflow_lifetime_secs = 300"
    ));
    let settings = Settings::from_toml_with_env(
        &toml,
        [(
            "KICK_PROXY_PROVIDERS__KICK__RELAY__TARGETS".to_owned(),
            r#"["http://127.0.0.1:*/cb", "http://[::1]:*/cb"]"#.to_owned(),
        )],
    )
    .expect("valid");
    let relay = settings.providers["kick"].relay.as_ref().expect("relay");
    assert_eq!(relay.flow_lifetime, Duration::from_secs(300));
    assert_eq!(relay.targets.len(), 2);
    // The file's secret (trailing newline dropped) is the one in force, the inline previous one
    // still opens.
    let sealed = forged_state(SEALING_SECRET, "http://127.0.0.1:5/cb", now() + 60);
    assert!(relay.sealer.open("kick", &sealed, now()).is_ok());
    let sealed = forged_state(OTHER_SECRET, "http://127.0.0.1:5/cb", now() + 60);
    assert!(relay.sealer.open("kick", &sealed, now()).is_ok());

    let printed = settings.redacted_toml();
    let debug = format!("{settings:?}");
    for shown in [&printed, &debug] {
        assert!(!shown.contains(SEALING_SECRET), "{shown}");
        assert!(!shown.contains(OTHER_SECRET), "{shown}");
    }
    assert!(printed.contains("[providers.kick.relay]"), "{printed}");
    assert!(
        printed.contains(&format!(
            "sealing_secret_file = {:?}",
            file.display().to_string()
        )),
        "{printed}"
    );
    assert!(
        printed.contains("previous_sealing_secret = \"[redacted]\""),
        "{printed}"
    );
    assert!(
        printed.contains("authorize_url = \"https://id.kick.com/oauth/authorize\""),
        "{printed}"
    );
    assert!(printed.contains("flow_lifetime_secs = 300"), "{printed}");
}

#[test]
fn the_relay_endpoints_are_in_the_openapi_document() {
    let doc: serde_json::Value =
        serde_json::from_str(kick_oauth_proxy::api::openapi::document_json()).expect("JSON");
    for (path, required) in [
        (
            "/api/v1/{provider}/authorize",
            &[
                "provider",
                "redirect_uri",
                "state",
                "code_challenge",
                "code_challenge_method",
            ][..],
        ),
        ("/api/v1/{provider}/callback", &["provider", "state"][..]),
    ] {
        let operation = &doc["paths"][path]["get"];
        assert_eq!(operation["tags"], json!(["relay"]), "{path}");
        let responses = &operation["responses"];
        assert!(
            responses["302"]["headers"]["Location"].is_object(),
            "{path}"
        );
        assert!(
            responses["302"]["headers"]["Referrer-Policy"].is_object(),
            "{path}"
        );
        assert!(
            responses["400"]["content"]["text/html"].is_object(),
            "{path}"
        );
        for status in ["404", "405", "503"] {
            assert!(responses.get(status).is_some(), "{path} {status}");
        }
        let listed: Vec<&str> = operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["required"] == true)
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(listed, required, "{path}");
    }
}

#[tokio::test]
async fn a_reload_applies_a_new_sealing_secret_and_callback_url() {
    let relay_table = |callback: &str, current: &str, previous: Option<&str>| {
        let previous = previous
            .map(|p| format!("previous_sealing_secret = {p:?}\n"))
            .unwrap_or_default();
        Settings::from_toml_with_env(
            &config_with_relay(&format!(
                "callback_url = {callback:?}\nsealing_secret = {current:?}\n{previous}"
            )),
            [],
        )
        .expect("valid")
    };
    let before = relay_table(
        "https://a.example.com/api/v1/kick/callback",
        SEALING_SECRET,
        None,
    );
    let app = Application::build(before).await.expect("build");
    let addr = app.local_addr();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let authorize = format!(
        "http://{addr}/api/v1/kick/authorize?{}",
        authorize_query("http://127.0.0.1:5000/callback", &[])
    );
    let location = |answer: reqwest::Response| {
        Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL")
    };
    let first = location(http.get(&authorize).send().await.expect("answer"));
    let old_state = query_value(&first, "state").expect("state");

    let restart_keys = state.reload(&relay_table(
        "https://b.example.com/api/v1/kick/callback",
        OTHER_SECRET,
        Some(SEALING_SECRET),
    ));
    assert!(restart_keys.is_empty(), "{restart_keys:?}");
    let second = location(http.get(&authorize).send().await.expect("answer"));
    assert_eq!(
        query_value(&second, "redirect_uri").as_deref(),
        Some("https://b.example.com/api/v1/kick/callback")
    );
    let new_state = query_value(&second, "state").expect("state");
    assert!(Sealer::from_secrets(OTHER_SECRET, None)
        .open("kick", &new_state, now())
        .is_ok());
    // A login started before the reload still comes back.
    let back = http
        .get(format!(
            "http://{addr}/api/v1/kick/callback?code=c0de&state={old_state}"
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(back.status(), 302);
    assert!(location(back)
        .as_str()
        .starts_with("http://127.0.0.1:5000/callback?code=c0de&state="));
}

#[tokio::test]
async fn after_a_reload_that_changes_client_id_authorize_keeps_the_one_token_uses() {
    let relay = format!(
        "callback_url = \"https://a.example.com/api/v1/kick/callback\"\nsealing_secret = {SEALING_SECRET:?}\n"
    );
    let settings = Settings::from_toml_with_env(&config_with_relay(&relay), []).expect("valid");
    let app = Application::build(settings).await.expect("build");
    let addr = app.local_addr();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");

    let changed = config_with_relay(&relay).replace(CLIENT_ID, "01KANOTHERCLIENT");
    let restart_keys = state.reload(&Settings::from_toml_with_env(&changed, []).expect("valid"));
    assert_eq!(restart_keys, ["providers.kick.client_id"]);
    let answer = http
        .get(format!(
            "http://{addr}/api/v1/kick/authorize?{}",
            authorize_query("http://127.0.0.1:5000/callback", &[])
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 302);
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("URL");
    assert_eq!(
        query_value(&location, "client_id").as_deref(),
        Some(CLIENT_ID),
        "codes must be issued to the client id /token exchanges them with until the restart"
    );
}

#[tokio::test]
async fn a_relay_only_provider_needs_no_allowlist_and_token_accepts_only_its_callback() {
    const CALLBACK: &str = "https://proxy.example.com/api/v1/kick/callback";
    let relay = format!("callback_url = {CALLBACK:?}\nsealing_secret = {SEALING_SECRET:?}\n");
    let relay_only = config_with_relay(&relay).replace(
        "allowed_redirect_uris = [\"http://localhost:1420/auth/callback\"]",
        "allowed_redirect_uris = []",
    );
    let settings = Settings::from_toml_with_env(&relay_only, []).expect("a relay-only provider");
    assert_eq!(
        settings.providers["kick"].accepted_redirect_uris(),
        [CALLBACK]
    );

    let (without_relay, _) = relay_only
        .split_once("[providers.kick.relay]")
        .expect("a relay table");
    let refused = Settings::from_toml_with_env(without_relay, [])
        .expect_err("an empty allowlist without a relay");
    assert!(
        refused
            .to_string()
            .contains("providers.kick.allowed_redirect_uris"),
        "{refused}"
    );

    let app = spawn_app_with(|toml| {
        format!(
            "{}\n[providers.kick.relay]\n{relay}",
            toml.lines()
                .map(|line| if line.starts_with("allowed_redirect_uris") {
                    "allowed_redirect_uris = []"
                } else {
                    line
                })
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
    .await;
    app.upstream_answers(
        wiremock::ResponseTemplate::new(200).set_body_json(crate::helpers::kick_tokens()),
        1,
    )
    .await;
    let answer = app.post_json("/api/v1/kick/token", &exchange_body()).await;
    crate::helpers::assert_error(answer, 400, "invalid_request").await;
    let answer = app
        .post_json(
            "/api/v1/kick/token",
            &json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": CALLBACK}),
        )
        .await;
    assert_eq!(answer.status(), 200);
}
