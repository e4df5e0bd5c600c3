//! `kick-oauth-proxy emulator`: the real binary runs the Kick emulator alone, prints where it is
//! and which client it registered, serves a whole authorization-code exchange, and stops on
//! SIGTERM.

use crate::helpers::without_egress_proxy;
use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT_URI: &str = "http://127.0.0.1:4567/callback";

/// Kills the child if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the printed block up to "Serving until Ctrl-C." as `label → value`.
fn printed_block(lines: &mpsc::Receiver<String>) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut block = HashMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no \"Serving\" line within 20 s; got {block:?}"));
        if line.starts_with("Serving until Ctrl-C") {
            return block;
        }
        if let Some(url) = line.strip_prefix("Kick emulator  ") {
            block.insert("url".to_owned(), url.trim().to_owned());
        } else if let Some((label, value)) = line.split_once(char::is_whitespace) {
            block.insert(label.to_owned(), value.trim().to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_command_serves_a_token_exchange_and_stops_on_sigterm() {
    let mut child = without_egress_proxy(&mut Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy")))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "desktop-app",
            "--redirect-uri",
            REDIRECT_URI,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut running = Running(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let printed = tokio::task::spawn_blocking(move || printed_block(&lines))
        .await
        .expect("reader");

    let base = &printed["url"];
    assert!(base.starts_with("http://127.0.0.1:"), "{printed:?}");
    assert!(!base.ends_with(":0"), "the real port is printed: {base}");
    assert_eq!(printed["authorize"], format!("{base}/oauth/authorize"));
    assert_eq!(printed["token"], format!("{base}/oauth/token"));
    assert_eq!(printed["client_id"], "desktop-app");
    assert_eq!(printed["client_secret"], "emulator-client-secret");
    assert_eq!(printed["redirect_uris"], REDIRECT_URI);

    // Authorize as a desktop app would: the emulator approves at once and redirects with a code.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let authorize = reqwest::Url::parse_with_params(
        &printed["authorize"],
        [
            ("client_id", "desktop-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "user:read"),
            ("state", "state-1234567890"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .expect("authorize URL");
    let answer = http.get(authorize).send().await.expect("authorize answers");
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().expect("ASCII");
    let callback = reqwest::Url::parse(location).expect("callback URL");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");

    // Exchange it with the printed client credentials.
    let answer = http
        .post(&printed["token"])
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
            ("client_id", "desktop-app"),
            ("client_secret", printed["client_secret"].as_str()),
        ])
        .send()
        .await
        .expect("token endpoint answers");
    assert_eq!(answer.status(), 200);
    let tokens: serde_json::Value = answer.json().await.expect("JSON");
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{tokens}"
    );
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert_eq!(tokens["expires_in"], 7200);

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = running.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        http.get(base.as_str()).send().await.is_err(),
        "nothing listens after the exit"
    );
}
