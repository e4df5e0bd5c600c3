//! Request cases and what they must produce: one request (through reqwest, or as raw bytes) and
//! the exact answer, the provider calls it may cost, and the service's health afterwards.
//!
//! Used by the adversarial tests (`tests/api/adversarial/`), which send many variations of the
//! same request: a test states the variation and the expected outcome, this module checks it the
//! same way every time.

use super::raw_http::{self, RawResponse};
use super::*;
use serde_json::Value;
use std::time::Duration;

pub const TOKEN: &str = "/api/v1/kick/token";
pub const REFRESH: &str = "/api/v1/kick/refresh";
pub const REVOKE: &str = "/api/v1/kick/revoke";
pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";
/// Every field the proxy may send the provider's token endpoint; anything else is a leak of
/// caller input.
pub const FORWARDED: [&str; 7] = [
    "grant_type",
    "code",
    "client_id",
    "client_secret",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
];

// ---------------------------------------------------------------------------------------------
// Request bodies.

/// A code no other case uses: a replayed exchange would be answered without a provider call.
pub fn code(n: u32) -> String {
    format!("{CODE}{n:04}")
}

/// `value` form-urlencoded.
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `code_verifier=…&redirect_uri=…` for a form.
pub fn form_rest() -> String {
    format!(
        "code_verifier={VERIFIER}&redirect_uri={}",
        enc(REDIRECT_URI)
    )
}

/// A valid `/token` form with `code`.
pub fn form_exchange(code: &str) -> String {
    format!("code={}&{}", enc(code), form_rest())
}

/// A valid `/token` JSON body with `code`, and `extra` (raw JSON members, with a trailing comma)
/// first.
pub fn json_exchange_with(extra: &str, code: &str) -> String {
    format!(
        r#"{{{extra}"code":"{code}","code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}"}}"#
    )
}

/// A valid `/token` JSON body with `code`.
pub fn json_exchange(code: &str) -> String {
    json_exchange_with("", code)
}

/// `"code_verifier":"…","redirect_uri":"…"` for hand-built JSON.
pub fn json_rest() -> String {
    format!(r#""code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}""#)
}

/// Bytes: `parts` concatenated (for bodies that are not UTF-8).
pub fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// Requests through reqwest.

/// What a request must produce.
#[derive(Debug, Clone)]
pub enum Expect {
    /// An error with this status and `error` code, and no provider call.
    Refused(u16, &'static str),
    /// Kick's tokens after exactly one provider call, whose form holds these pairs (and only
    /// fields from [`FORWARDED`]).
    Served(Vec<(&'static str, String)>),
}

/// One request through reqwest, and what it must produce.
pub struct Case {
    pub name: String,
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub expect: Expect,
}

pub fn case(
    name: impl Into<String>,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        path,
        content_type,
        body: body.into(),
        expect,
    }
}

/// `400 invalid_request`, no provider call.
pub fn refused() -> Expect {
    Expect::Refused(400, "invalid_request")
}

/// Served, and the provider received `code`.
pub fn served_with_code(code: &str) -> Expect {
    Expect::Served(vec![("code", code.to_owned())])
}

/// Asserts `response` against `expect`, given the provider calls made before it was sent.
pub async fn check(
    app: &TestApp,
    name: &str,
    response: reqwest::Response,
    expect: &Expect,
    calls_before: usize,
) {
    match expect {
        Expect::Refused(status, code) => {
            assert_eq!(response.status().as_u16(), *status, "{name}: status");
            assert_error(response, *status, code).await;
            assert_eq!(
                app.provider_calls().await,
                calls_before,
                "{name}: the provider was called"
            );
        }
        Expect::Served(sent) => {
            assert_eq!(response.status(), 200, "{name}: status");
            assert_token_headers(response.headers());
            let body: Value = response.json().await.expect("token response is JSON");
            assert_eq!(body, kick_tokens(), "{name}");
            let requests = app.upstream.received_requests().await.unwrap_or_default();
            assert_eq!(requests.len(), calls_before + 1, "{name}: provider calls");
            let form = form_of(requests.last().expect("one call"));
            for (name_sent, value) in sent {
                assert_eq!(
                    form.get(*name_sent),
                    Some(value),
                    "{name}: `{name_sent}` sent to the provider"
                );
            }
            for key in form.keys() {
                assert!(
                    FORWARDED.contains(&key.as_str()),
                    "{name}: `{key}` was forwarded"
                );
            }
        }
    }
}

/// Runs every case on one app, whose provider is set up for exactly the served ones; checks
/// health after each case. Failures name the case.
pub async fn run_table(cases: Vec<Case>) {
    let app = spawn_app().await;
    let served = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Served(_)))
        .count();
    app.upstream_succeeds_times(served as u64).await;
    for case in cases {
        let before = app.provider_calls().await;
        let response = app.post_raw(case.path, case.content_type, case.body).await;
        check(&app, &case.name, response, &case.expect, before).await;
        assert!(
            app.is_healthy().await,
            "{}: the service stopped answering",
            case.name
        );
    }
}

/// One case on its own app: its test is the case.
pub async fn run_case(case: Case) {
    run_table(vec![case]).await;
}

// ---------------------------------------------------------------------------------------------
// Raw requests: exact bytes on the wire.

/// What one response on a raw connection must be.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// The application's JSON error.
    Error(u16, &'static str),
    /// The application's token response (one provider call).
    Tokens,
    /// hyper's own bodyless error: the message could not be framed, so the application never saw
    /// it, no field was read and nothing reached the provider.
    Protocol(u16),
}

/// One raw-TCP case: exact bytes, and every response the connection must carry, in order; no
/// other response may follow (a smuggled request must never be answered).
pub struct RawCase {
    pub name: &'static str,
    pub request: Vec<u8>,
    pub answers: Vec<Answer>,
    /// The server closes the connection right after the last answer, instead of keeping it for
    /// another request until the 1 s idle deadline: it will not read what follows.
    pub closes: bool,
}

pub fn raw_case(
    name: &'static str,
    request: Vec<u8>,
    answers: Vec<Answer>,
    closes: bool,
) -> RawCase {
    RawCase {
        name,
        request,
        answers,
        closes,
    }
}

pub fn assert_answer(name: &str, response: &RawResponse, answer: Answer) {
    match answer {
        Answer::Error(status, code) => {
            assert_eq!(response.status, status, "{name}: {}", response.status_line);
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.header("cache-control"), Some("no-store"));
            assert_eq!(response.header("pragma"), Some("no-cache"));
            let body: Value = serde_json::from_slice(&response.body).expect("JSON error body");
            assert_eq!(body["error"], code, "{name}: {body}");
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}: {body}"
            );
        }
        Answer::Tokens => {
            assert_eq!(response.status, 200, "{name}: {}", response.status_line);
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.header("cache-control"), Some("no-store"));
            assert_eq!(response.header("pragma"), Some("no-cache"));
            let body: Value = serde_json::from_slice(&response.body).expect("JSON tokens");
            assert_eq!(body, kick_tokens(), "{name}");
        }
        Answer::Protocol(status) => {
            assert_eq!(response.status, status, "{name}: {}", response.status_line);
            assert!(
                response.body.is_empty(),
                "{name}: hyper's errors are bodyless"
            );
            assert_eq!(response.header("connection"), Some("close"), "{name}");
        }
    }
}

/// Runs raw cases on one app whose provider answers exactly the `Tokens` answers.
pub async fn run_raw_table(cases: Vec<RawCase>) {
    let app = spawn_app().await;
    let served = cases
        .iter()
        .flat_map(|c| &c.answers)
        .filter(|a| matches!(a, Answer::Tokens))
        .count();
    app.upstream_succeeds_times(served as u64).await;
    for case in cases {
        let before = app.provider_calls().await;
        // Idle keep-alive connections are closed at the 1 s header deadline of the test config.
        let outcome = raw_http::exchange(app.addr, &case.request, Duration::from_secs(4)).await;
        let name = case.name;
        assert!(outcome.closed, "{name}: the connection was never closed");
        assert_eq!(
            outcome.responses.len(),
            case.answers.len(),
            "{name}: responses {:#?}, then {:?}",
            outcome.responses,
            String::from_utf8_lossy(&outcome.rest)
        );
        assert!(outcome.rest.is_empty(), "{name}: trailing bytes");
        for (response, answer) in outcome.responses.iter().zip(&case.answers) {
            assert_answer(name, response, *answer);
        }
        if case.closes {
            assert!(
                outcome.elapsed < Duration::from_millis(900),
                "{name}: closed only after {:?}",
                outcome.elapsed
            );
        }
        let tokens = case
            .answers
            .iter()
            .filter(|a| matches!(a, Answer::Tokens))
            .count();
        assert_eq!(
            app.provider_calls().await,
            before + tokens,
            "{name}: provider calls"
        );
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}
