//! The egress proxy of the environment, for provider calls: `HTTP_PROXY` (absolute-form request
//! to the proxy over HTTP/1.1, its credentials in `Proxy-Authorization`), `HTTPS_PROXY` (a
//! `CONNECT` tunnel; the request itself never reaches the proxy in clear), `NO_PROXY`, the start-up
//! log line naming the proxy, and a SOCKS proxy refused at start-up. The variables are
//! process-global, so each test runs the real binary as a child with its own environment.

use crate::helpers::tls_provider::{pointing_at, TestCa, TlsProvider};
use crate::helpers::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `proxy-user:proxy-pass`, as HTTP Basic credentials.
const PROXY_BASIC: &str = "Basic cHJveHktdXNlcjpwcm94eS1wYXNz";

/// The password of a proxy URL, which no log line or error may show.
const PROXY_PASSWORD_CANARY: &str = "proxy-pass-CANARY";

/// Writes `toml` to `dir/proxy.toml`; its path.
fn config_file(dir: &Path, toml: &str) -> PathBuf {
    let file = dir.join("proxy.toml");
    std::fs::write(&file, toml).expect("write config");
    file
}

/// Writes `ca` and a config whose `kick` token endpoint is `token_url`, with `ca` as its
/// `ca_file`, to `dir`; the config's path.
fn config_file_trusting(dir: &Path, ca: &TestCa, token_url: &str) -> PathBuf {
    let ca_file = ca.write(dir, "ca.pem");
    let toml = pointing_at(config_toml("http://127.0.0.1:9"), token_url, Some(&ca_file));
    config_file(dir, &toml)
}

/// A wiremock answering Kick's success shape to `POST /oauth/token`, `times` times.
async fn token_endpoint(times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(times)
        .mount(&server)
        .await;
    server
}

/// The start-up lines that say a provider's calls go through an egress proxy.
fn proxy_announcements(binary: &RunningBinary) -> Vec<Value> {
    binary
        .logged()
        .into_iter()
        .filter(|event| event["message"] == "provider calls go through an egress proxy")
        .collect()
}

#[tokio::test]
async fn provider_calls_go_through_the_http_proxy_the_environment_names() {
    // The "proxy" answers as the provider would; the provider's own address is dead (port 9).
    let proxy = token_endpoint(1).await;
    let proxy_url = format!(
        "http://proxy-user:proxy-pass@{}",
        proxy.address() // credentials in the proxy URL, as curl takes them
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &config_toml("http://127.0.0.1:9"));
    // At TRACE: the proxy's credentials must not reach a line at any level.
    let mut binary = spawn_binary_with_env(
        &config,
        &[
            ("HTTP_PROXY", proxy_url),
            ("KICK_PROXY_LOG__FILTER", "trace".to_owned()),
        ],
    )
    .await;

    let response = binary.exchange().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let received = proxy.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    let request = &received[0];
    // Absolute-form request target: the proxy is told where the request goes.
    assert_eq!(request.url.as_str(), "http://127.0.0.1:9/oauth/token");
    assert_eq!(request.headers["host"], "127.0.0.1:9");
    assert_eq!(request.headers["proxy-authorization"], PROXY_BASIC);
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(request.headers["accept"], "application/json");
    assert_eq!(
        request.headers["user-agent"],
        concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(form_of(request), exchange_form());
    // Logged once at start-up, both endpoints on one line, without the credentials.
    let announced = proxy_announcements(&binary);
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["provider"], "kick");
    assert_eq!(
        announced[0]["proxy"],
        format!("http://{}", proxy.address()).as_str()
    );
    assert_eq!(announced[0]["endpoints"], "token_url,revoke_url");
    assert_eq!(announced[0]["level"], "INFO");
    // Every line up to the exchange's own request line, the provider call's TRACE lines included.
    binary.wait_for_log("request").await;
    let lines = binary.logged();
    assert!(
        lines.iter().any(|event| event["level"] == "TRACE"),
        "TRACE on: {lines:?}"
    );
    // Then every line it wrote to the end, stdout and stderr, JSON or not.
    let output = binary.output_to_the_end().await;
    // The search reads the lines that name the proxy: its address is there, its credentials not.
    let address = proxy.address().to_string();
    assert!(
        output.iter().any(|line| line.contains(&address)),
        "{output:?}"
    );
    let encoded = PROXY_BASIC.trim_start_matches("Basic ");
    for line in output {
        for canary in ["proxy-pass", "proxy-user", encoded] {
            assert!(!line.contains(canary), "{canary} written: {line}");
        }
    }
}

/// Runs one exchange against a wiremock provider on 127.0.0.1 with `HTTP_PROXY` naming another
/// wiremock, plus `extra` variables; the calls each of them received (proxy, provider).
async fn exchange_with_http_proxy_and(extra: &[(&str, String)]) -> (usize, usize) {
    let provider = MockServer::start().await;
    let proxy = MockServer::start().await;
    // Both answer as the provider: whichever is called, the exchange works.
    for server in [&provider, &proxy] {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
            .mount(server)
            .await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &config_toml(&provider.uri()));
    let mut env = vec![("http_proxy", proxy.uri())];
    env.extend(extra.iter().cloned());
    let binary = spawn_binary_with_env(&config, &env).await;

    let response = binary.exchange().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let proxy_calls = proxy.received_requests().await.expect("recorded");
    let provider_calls = provider.received_requests().await.expect("recorded");
    for request in proxy_calls.iter().chain(&provider_calls) {
        assert_eq!(form_of(request), exchange_form());
    }
    (proxy_calls.len(), provider_calls.len())
}

#[tokio::test]
async fn no_proxy_naming_the_provider_host_sends_its_calls_straight_to_it() {
    // Control: the same setup without NO_PROXY goes through the proxy.
    assert_eq!(
        exchange_with_http_proxy_and(&[]).await,
        (1, 0),
        "(proxy, provider) calls without NO_PROXY"
    );

    assert_eq!(
        exchange_with_http_proxy_and(&[("no_proxy", "127.0.0.1".to_owned())]).await,
        (0, 1),
        "(proxy, provider) calls with NO_PROXY=127.0.0.1"
    );
}

/// An HTTP proxy for `CONNECT` only: records each request head it receives, and either refuses
/// the tunnel (403) or opens it to the named host and port, recording every byte the client sends
/// through it.
struct ConnectProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    relayed: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    async fn refusing() -> Self {
        Self::start(false).await
    }

    async fn tunnelling() -> Self {
        Self::start(true).await
    }

    async fn start(tunnel: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let relayed = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let heads = Arc::clone(&heads);
            let relayed = Arc::clone(&relayed);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let heads = Arc::clone(&heads);
                    let relayed = Arc::clone(&relayed);
                    tokio::spawn(serve_connect(stream, tunnel, heads, relayed));
                }
            }
        });
        Self {
            addr,
            heads,
            relayed,
            task,
        }
    }

    /// Its URL, with credentials as curl takes them.
    fn url(&self) -> String {
        format!("http://proxy-user:proxy-pass@{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }

    fn relayed(&self) -> Vec<u8> {
        self.relayed.lock().expect("lock").clone()
    }
}

async fn serve_connect(
    mut client: tokio::net::TcpStream,
    tunnel: bool,
    heads: Arc<Mutex<Vec<String>>>,
    relayed: Arc<Mutex<Vec<u8>>>,
) {
    // The client waits for the answer before it sends anything through the tunnel.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().expect("lock").push(head.clone());
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_owned);
    let upstream = match (tunnel, target) {
        (true, Some(target)) => tokio::net::TcpStream::connect(target).await.ok(),
        _ => None,
    };
    let Some(upstream) = upstream else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let outbound = async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            relayed.lock().expect("lock").extend_from_slice(&buf[..n]);
            if to_upstream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_upstream.shutdown().await;
    };
    let inbound = async {
        let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(outbound, inbound);
}

/// The header `name` (lower case) of a request head.
fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[tokio::test]
async fn https_provider_calls_tunnel_through_the_https_proxy_with_connect() {
    let proxy = ConnectProxy::refusing().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A name that does not resolve here: through a proxy, only the proxy resolves it.
    let config = config_file(dir.path(), &config_toml("https://kick-provider.invalid"));
    let binary = spawn_binary_with_env(&config, &[("HTTPS_PROXY", proxy.url())]).await;

    // The tunnel is refused: nothing was sent to the provider, so the connect is tried twice.
    assert_kick_502(binary.exchange().await).await;

    let heads = proxy.heads();
    assert_eq!(
        heads.len(),
        2,
        "one CONNECT, then the connect retry: {heads:?}"
    );
    for head in &heads {
        assert_eq!(
            head.lines().next(),
            Some("CONNECT kick-provider.invalid:443 HTTP/1.1")
        );
        assert_eq!(head_header(head, "host"), Some("kick-provider.invalid:443"));
        assert_eq!(head_header(head, "proxy-authorization"), Some(PROXY_BASIC));
        assert_eq!(
            head_header(head, "user-agent"),
            Some(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        );
        // The exchange itself goes inside the tunnel, never to the proxy in clear.
        assert!(!head.contains(CLIENT_SECRET), "{head}");
        assert!(!head.contains(CODE), "{head}");
    }
}

#[tokio::test]
async fn the_exchange_goes_over_tls_and_http2_inside_the_connect_tunnel_unseen_by_the_proxy() {
    let ca = TestCa::new("kick-oauth-proxy tunnel test CA");
    let provider = TlsProvider::h2(&ca).await;
    let proxy = ConnectProxy::tunnelling().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file_trusting(dir.path(), &ca, &provider.token_url());
    let binary = spawn_binary_with_env(&config, &[("HTTPS_PROXY", proxy.url())]).await;

    let response = binary.exchange().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    // The proxy saw one CONNECT naming the provider's host and port, and nothing else in clear.
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(
        heads[0].lines().next(),
        Some(format!("CONNECT {} HTTP/1.1", provider.addr).as_str())
    );
    assert_eq!(
        head_header(&heads[0], "proxy-authorization"),
        Some(PROXY_BASIC)
    );
    let relayed = String::from_utf8_lossy(&proxy.relayed()).into_owned();
    assert!(!relayed.is_empty(), "the exchange went through the tunnel");
    for clear in [
        CLIENT_SECRET,
        CODE,
        VERIFIER,
        "client_secret",
        "/oauth/token",
    ] {
        assert!(
            !relayed.contains(clear) && !heads[0].contains(clear),
            "the proxy saw {clear:?}"
        );
    }
    // The provider got the exchange over TLS and HTTP/2 (negotiated with it, not the proxy).
    let received = provider.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(received[0].version, hyper::Version::HTTP_2);
    assert_eq!(received[0].path, "/oauth/token");
    assert_eq!(received[0].form, exchange_form());
    assert_eq!(provider.connections(), 1);
    // Only the https:// token endpoint goes through HTTPS_PROXY (the revoke URL is http://).
    let announced = proxy_announcements(&binary);
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        announced[0]["proxy"],
        format!("http://{}", proxy.addr).as_str()
    );
    assert_eq!(announced[0]["endpoints"], "token_url");
}

#[tokio::test]
async fn an_http_endpoint_reached_through_an_https_proxy_is_sent_over_http1_not_h2() {
    // The https:// "proxy" offers h2 by ALPN and answers as the provider would: the request must
    // still reach it as HTTP/1.1 in absolute form, as a proxy expects.
    let ca = TestCa::new("kick-oauth-proxy https proxy test CA");
    let proxy = TlsProvider::h2(&ca).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The proxy's certificate is trusted through the provider's ca_file, as its TLS roots.
    let config = config_file_trusting(dir.path(), &ca, "http://127.0.0.1:9/oauth/token");
    let proxy_url = format!("https://proxy-user:proxy-pass@{}", proxy.addr);
    let binary = spawn_binary_with_env(&config, &[("HTTP_PROXY", proxy_url)]).await;

    let response = binary.exchange().await;

    assert_eq!(response.status(), 200);
    let received = proxy.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_ne!(
        request.alpn.as_deref(),
        Some(&b"h2"[..]),
        "the TLS connection to the proxy must not negotiate h2"
    );
    assert_eq!(request.version, hyper::Version::HTTP_11);
    assert_eq!(request.authority.as_deref(), Some("127.0.0.1:9"));
    assert_eq!(request.path, "/oauth/token");
    assert_eq!(request.header("proxy-authorization"), Some(PROXY_BASIC));
    assert_eq!(request.form, exchange_form());
}

#[tokio::test]
async fn a_socks_proxy_for_a_provider_endpoint_stops_serve_with_a_message_naming_both() {
    // Nothing may be sent to it: the listener only proves that.
    let socks = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let socks_addr = socks.local_addr().expect("addr");
    let socks_url = format!("socks5h://proxy-user:{PROXY_PASSWORD_CANARY}@{socks_addr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &config_toml("https://kick-provider.invalid"));

    let mut binary = start_binary(&config, &[("ALL_PROXY", socks_url.clone())]);
    let (code, lines) = binary
        .exited_within(Duration::from_secs(20))
        .await
        .expect("serve exits at start-up");

    assert_eq!(code, Some(1), "{lines:?}");
    let all = lines.join("\n");
    assert!(
        all.contains(&format!("socks5h://{socks_addr}"))
            && all.contains("provider `kick`")
            && all.contains("`token_url` (https://kick-provider.invalid:443)")
            && all.contains("NO_PROXY"),
        "{all}"
    );
    assert!(!all.contains(PROXY_PASSWORD_CANARY), "{all}");
    assert!(!all.contains("proxy-user"), "{all}");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), socks.accept())
            .await
            .is_err(),
        "nothing connected to the SOCKS proxy"
    );

    // Control: the same SOCKS proxy with the provider's host in NO_PROXY is not used, so serve
    // starts (the revoke URL is on the same host).
    let binary = spawn_binary_with_env(
        &config,
        &[
            ("ALL_PROXY", socks_url),
            ("NO_PROXY", "kick-provider.invalid".to_owned()),
        ],
    )
    .await;
    assert!(proxy_announcements(&binary).is_empty());
}

#[test]
fn check_config_reports_a_socks_proxy_for_a_provider_endpoint_as_serve_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &config_toml("https://kick-provider.invalid"));
    let config = config.to_str().expect("utf8");
    let socks_url = format!("socks4://proxy-user:{PROXY_PASSWORD_CANARY}@127.0.0.1:1080");

    let output = binary_command(
        &["check-config", "--config", config],
        &[("HTTPS_PROXY", socks_url)],
    )
    .output()
    .expect("check-config runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("socks4://127.0.0.1:1080")
            && stderr.contains("`token_url` (https://kick-provider.invalid:443)"),
        "{stderr}"
    );
    assert!(!stderr.contains(PROXY_PASSWORD_CANARY), "{stderr}");

    // Control: without it, the same config checks out.
    let output = binary_command(&["check-config", "--config", config], &[])
        .output()
        .expect("check-config runs");
    assert_eq!(output.status.code(), Some(0));
}
