//! The egress proxy of the environment, for provider calls: `HTTP_PROXY` (absolute-form request
//! to the proxy, its credentials in `Proxy-Authorization`), `HTTPS_PROXY` (a `CONNECT` tunnel;
//! the request itself never reaches the proxy in clear), `NO_PROXY`. The variables are
//! process-global, so each test runs the real binary as a child with its own environment.

use crate::helpers::*;
use serde_json::Value;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every variable that names an egress proxy, in both spellings.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `proxy-user:proxy-pass`, as HTTP Basic credentials.
const PROXY_BASIC: &str = "Basic cHJveHktdXNlcjpwcm94eS1wYXNz";

/// `kick-oauth-proxy serve` with `config` and exactly the proxy variables in `env`; killed on drop.
struct Binary {
    child: std::process::Child,
    addr: String,
}

impl Binary {
    async fn start(config: String, env: Vec<(&'static str, String)>) -> Self {
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("proxy.toml");
            std::fs::write(&file, config).expect("write config");
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy"));
            command
                .args(["serve", "--config", file.to_str().expect("utf8 path")])
                .env("KICK_PROXY_LOG__FORMAT", "json")
                .env_remove("RUST_LOG")
                .env_remove("REQUEST_METHOD")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KICK_PROXY_")) {
                command.env_remove(key);
            }
            for key in PROXY_VARIABLES {
                command.env_remove(key);
            }
            let mut child = command.envs(env).spawn().expect("binary starts");
            let stdout = child.stdout.take().expect("stdout");
            // The config is read at start-up: the "listening" line comes after it.
            let mut lines = std::io::BufReader::new(stdout).lines();
            let addr = loop {
                let line = lines
                    .next()
                    .expect("the binary logs \"listening\" before it exits")
                    .expect("a log line");
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("listening"))
                {
                    break event["addr"].as_str().expect("addr").to_owned();
                }
            };
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            Binary { child, addr }
        })
        .await
        .expect("join")
    }

    /// `/token` with the valid defaults, sent straight to the binary (no proxy on this side).
    async fn exchange(&self) -> reqwest::Response {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!("http://{}/api/v1/kick/token", self.addr))
            .json(&exchange_body())
            .send()
            .await
            .expect("proxy answers")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn provider_calls_go_through_the_http_proxy_the_environment_names() {
    // The "proxy" answers as the provider would; the provider's own address is dead (port 9).
    let proxy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(1)
        .mount(&proxy)
        .await;
    let proxy_url = format!(
        "http://proxy-user:proxy-pass@{}",
        proxy.address() // credentials in the proxy URL, as curl takes them
    );
    let binary = Binary::start(
        config_toml("http://127.0.0.1:9"),
        vec![("HTTP_PROXY", proxy_url)],
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
}

#[tokio::test]
async fn no_proxy_sends_provider_calls_straight_to_the_provider() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .expect(1)
        .mount(&provider)
        .await;
    let proxy = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&proxy)
        .await;
    let binary = Binary::start(
        config_toml(&provider.uri()),
        vec![
            ("http_proxy", proxy.uri()),
            ("no_proxy", "localhost, 127.0.0.1".to_owned()),
        ],
    )
    .await;

    let response = binary.exchange().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), kick_tokens());
    let received = provider.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    assert_eq!(form_of(&received[0]), exchange_form());
    assert!(proxy
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}

/// A proxy that records every `CONNECT` head it receives and refuses the tunnel (403).
async fn refusing_connect_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn({
        let heads = Arc::clone(&heads);
        async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let heads = Arc::clone(&heads);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    heads
                        .lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = stream
                        .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        }
    });
    (format!("http://proxy-user:proxy-pass@{addr}"), heads)
}

#[tokio::test]
async fn https_provider_calls_tunnel_through_the_https_proxy_with_connect() {
    let (proxy_url, heads) = refusing_connect_proxy().await;
    // A name that does not resolve here: through a proxy, only the proxy resolves it.
    let binary = Binary::start(
        config_toml("https://kick-provider.invalid"),
        vec![("HTTPS_PROXY", proxy_url)],
    )
    .await;

    // The tunnel is refused: nothing was sent to the provider, so the connect is tried twice.
    assert_kick_502(binary.exchange().await).await;

    let heads = heads.lock().expect("lock").clone();
    assert_eq!(
        heads.len(),
        2,
        "one CONNECT, then the connect retry: {heads:?}"
    );
    for head in &heads {
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some("CONNECT kick-provider.invalid:443 HTTP/1.1")
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("host"), Some("kick-provider.invalid:443"));
        assert_eq!(header("proxy-authorization"), Some(PROXY_BASIC));
        assert_eq!(
            header("user-agent"),
            Some(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        );
        // The exchange itself goes inside the tunnel, never to the proxy in clear.
        assert!(!head.contains(CLIENT_SECRET), "{head}");
        assert!(!head.contains(CODE), "{head}");
    }
}
