//! The contract's input rules for `/token` and `/refresh` ("Input rules", "Errors"): every refusal
//! has the exact status and `error` code, the token-response headers, and happens before the
//! provider is called. Accepted edge values are proven to reach the provider unchanged.

use crate::helpers::raw_http::{self, RawResponse};
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "/api/v1/kick/token";
const REFRESH: &str = "/api/v1/kick/refresh";
/// The contract's body limit (16 KiB).
const LIMIT: usize = 16 * 1024;
/// RFC 7636 §4.1 `unreserved`.
const VERIFIER_ALPHABET: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

type Fields = Vec<(&'static str, String)>;

/// The valid `/token` fields, in order.
fn exchange_fields() -> Fields {
    vec![
        ("code", CODE.to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
        ("redirect_uri", REDIRECT_URI.to_owned()),
    ]
}

/// The valid `/refresh` fields.
fn refresh_fields() -> Fields {
    vec![("refresh_token", REFRESH_TOKEN.to_owned())]
}

/// `fields` with `name` set to `value`.
fn with(mut fields: Fields, name: &str, value: &str) -> Fields {
    for (k, v) in &mut fields {
        if *k == name {
            *v = value.to_owned();
        }
    }
    fields
}

fn to_json(fields: &[(&str, String)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect(),
    )
}

/// A correctly percent-encoded form: the proxy decodes exactly `fields`.
fn to_form(fields: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// Asserts a refusal (status, `error`, headers, no echo of the request's secrets) and that the
/// provider has received nothing so far. `case` names the table row in failure messages.
async fn assert_refused(
    app: &TestApp,
    case: &str,
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> Value {
    assert_eq!(response.status().as_u16(), status, "{case}: status");
    let body = assert_error(response, status, code).await;
    let text = body.to_string();
    for secret in [CODE, VERIFIER, REFRESH_TOKEN] {
        assert!(
            !text.contains(secret),
            "{case}: the error echoes input: {text}"
        );
    }
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "{case}: the provider was called");
    body
}

/// Asserts a 200 token response.
async fn assert_tokens(case: &str, response: reqwest::Response) {
    assert_eq!(response.status(), 200, "{case}: status");
    assert_token_headers(response.headers());
    let body: Value = response.json().await.expect("token response is JSON");
    assert_eq!(body, kick_tokens(), "{case}");
}

/// A JSON `/token` body of exactly `len` bytes: the valid fields plus an unknown `padding` field.
fn padded_exchange(len: usize) -> String {
    let open = format!(
        r#"{{"code":"{CODE}","code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}","padding":""#
    );
    let close = r#""}"#;
    let body = format!(
        "{open}{}{close}",
        "x".repeat(len - open.len() - close.len())
    );
    assert_eq!(body.len(), len);
    body
}

// ---------------------------------------------------------------------------------------------
// Required fields: present, non-empty, strings only.

/// Each field of `fields` missing, then empty, in JSON and in a form; plus the empty bodies.
async fn assert_missing_or_empty_fields_are_refused(path: &str, fields: Fields) {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    for (name, _) in &fields {
        let missing: Fields = fields.iter().filter(|(k, _)| k != name).cloned().collect();
        let empty = with(fields.clone(), name, "");
        for (shape, body) in [("missing", missing), ("empty", empty)] {
            let response = app.post_json(path, &to_json(&body)).await;
            assert_refused(
                &app,
                &format!("{name} {shape}, JSON"),
                response,
                400,
                "invalid_request",
            )
            .await;
            let response = app.post_form(path, &to_form(&body)).await;
            assert_refused(
                &app,
                &format!("{name} {shape}, form"),
                response,
                400,
                "invalid_request",
            )
            .await;
        }
        // `name` with no `=` at all: a form field with an empty value.
        let bare = fields
            .iter()
            .map(|(k, v)| {
                if k == name {
                    (*k).to_owned()
                } else {
                    to_form(&[(k, v.clone())])
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let response = app.post_form(path, &bare).await;
        assert_refused(
            &app,
            &format!("{name} without `=`, form"),
            response,
            400,
            "invalid_request",
        )
        .await;
    }
    let response = app.post_json(path, &json!({})).await;
    assert_refused(&app, "empty JSON object", response, 400, "invalid_request").await;
    let response = app.post_form(path, "").await;
    assert_refused(&app, "empty form", response, 400, "invalid_request").await;
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_400_when_a_required_field_is_missing_or_empty() {
    assert_missing_or_empty_fields_are_refused(TOKEN, exchange_fields()).await;
}

#[tokio::test]
async fn refresh_returns_400_when_refresh_token_is_missing_or_empty() {
    assert_missing_or_empty_fields_are_refused(REFRESH, refresh_fields()).await;
}

/// Each field of `fields` replaced by every non-string JSON type, including containers that hold
/// the valid value (a lenient parser would unwrap them).
async fn assert_non_string_fields_are_refused(path: &str, fields: Fields) {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    for (name, valid) in &fields {
        let non_strings = [
            ("number", json!(42)),
            ("zero", json!(0)),
            ("float", json!(-1.5)),
            ("null", Value::Null),
            ("empty array", json!([])),
            ("array holding the valid value", json!([valid])),
            ("empty object", json!({})),
            ("object holding the valid value", json!({ "value": valid })),
            ("true", json!(true)),
            ("false", json!(false)),
        ];
        for (kind, value) in non_strings {
            let mut body = to_json(&fields);
            body[*name] = value;
            let response = app.post_json(path, &body).await;
            assert_refused(
                &app,
                &format!("{name} as {kind}"),
                response,
                400,
                "invalid_request",
            )
            .await;
        }
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_400_when_a_required_field_is_not_a_string() {
    assert_non_string_fields_are_refused(TOKEN, exchange_fields()).await;
}

#[tokio::test]
async fn refresh_returns_400_when_refresh_token_is_not_a_string() {
    assert_non_string_fields_are_refused(REFRESH, refresh_fields()).await;
}

// ---------------------------------------------------------------------------------------------
// code_verifier: 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1).

/// Sends `verifier` to `/token` in JSON and in a form and asserts both are refused.
async fn assert_verifiers_are_refused(cases: Vec<(String, String)>) {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    for (case, verifier) in cases {
        let fields = with(exchange_fields(), "code_verifier", &verifier);
        let response = app.post_json(TOKEN, &to_json(&fields)).await;
        assert_refused(
            &app,
            &format!("{case}, JSON"),
            response,
            400,
            "invalid_request",
        )
        .await;
        let response = app.post_form(TOKEN, &to_form(&fields)).await;
        assert_refused(
            &app,
            &format!("{case}, form"),
            response,
            400,
            "invalid_request",
        )
        .await;
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_400_when_verifier_is_too_short() {
    assert_verifiers_are_refused(vec![
        ("42 characters".into(), VERIFIER[..42].to_owned()),
        ("one character".into(), "a".into()),
    ])
    .await;
}

#[tokio::test]
async fn token_returns_400_when_verifier_is_too_long() {
    let long: String = VERIFIER_ALPHABET.chars().cycle().take(129).collect();
    assert_verifiers_are_refused(vec![
        ("129 characters".into(), long),
        ("4096 characters".into(), "a".repeat(4096)),
    ])
    .await;
}

#[tokio::test]
async fn token_returns_400_when_verifier_has_a_forbidden_character() {
    let cases = [
        "+", "/", "=", " ", "é", "%", "%41", "*", "\t", "\0", "\u{200B}",
    ]
    .into_iter()
    // 43 characters with the forbidden one in the middle: only the alphabet is wrong.
    .map(|c| {
        (
            format!("{c:?} inside"),
            format!("{}{c}{}", &VERIFIER[..21], &VERIFIER[..21]),
        )
    })
    .collect();
    assert_verifiers_are_refused(cases).await;
}

#[tokio::test]
async fn token_accepts_verifiers_of_exactly_43_and_128_characters() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(4).await;
    // Both ends of the range, using every character of the alphabet (including `-._~`).
    let shortest: String = VERIFIER_ALPHABET.chars().rev().take(43).collect();
    let longest: String = VERIFIER_ALPHABET.chars().cycle().take(128).collect();
    assert_eq!((shortest.len(), longest.len()), (43, 128));
    let mut sent = Vec::new();
    for verifier in [&shortest, &longest] {
        let fields = with(exchange_fields(), "code_verifier", verifier);
        let response = app.post_json(TOKEN, &to_json(&fields)).await;
        assert_tokens(&format!("{} characters, JSON", verifier.len()), response).await;
        let response = app.post_form(TOKEN, &to_form(&fields)).await;
        assert_tokens(&format!("{} characters, form", verifier.len()), response).await;
        sent.extend([verifier.clone(), verifier.clone()]);
    }

    let forwarded: Vec<String> = app
        .upstream_forms()
        .await
        .iter()
        .map(|form| form["code_verifier"].clone())
        .collect();
    assert_eq!(forwarded, sent);
}

// ---------------------------------------------------------------------------------------------
// code and refresh_token: visible ASCII only, at most 4096 bytes.

#[tokio::test]
async fn token_and_refresh_return_400_when_a_credential_is_not_bounded_visible_ascii() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let bad = [
        ("space inside", "NZQ4 ZWE3".to_owned()),
        ("leading space", format!(" {CODE}")),
        ("trailing space", format!("{CODE} ")),
        ("tab", "NZQ4\tZWE3".to_owned()),
        ("LF", format!("{CODE}\n")),
        ("CR LF and a header", format!("{CODE}\r\nX-Injected: 1")),
        ("NUL", "NZQ4\0ZWE3".to_owned()),
        ("control char U+0001", "NZQ4\u{1}ZWE3".to_owned()),
        ("escape", "NZQ4\u{1b}[31m".to_owned()),
        ("DEL", "NZQ4\u{7f}ZWE3".to_owned()),
        ("non-ASCII é", "NZQ4éZWE3".to_owned()),
        ("non-breaking space", "NZQ4\u{a0}ZWE3".to_owned()),
        ("zero-width space", "NZQ4\u{200B}ZWE3".to_owned()),
        ("emoji", "NZQ4\u{1F600}".to_owned()),
        ("4097 bytes", "A".repeat(4097)),
        (
            "4095 ASCII bytes and one é (4097 bytes)",
            format!("{}é", "A".repeat(4095)),
        ),
    ];
    for (path, name, fields) in [
        (TOKEN, "code", exchange_fields()),
        (REFRESH, "refresh_token", refresh_fields()),
    ] {
        for (case, value) in &bad {
            let body = with(fields.clone(), name, value);
            let response = app.post_json(path, &to_json(&body)).await;
            assert_refused(
                &app,
                &format!("{name} {case}, JSON"),
                response,
                400,
                "invalid_request",
            )
            .await;
            let response = app.post_form(path, &to_form(&body)).await;
            assert_refused(
                &app,
                &format!("{name} {case}, form"),
                response,
                400,
                "invalid_request",
            )
            .await;
        }
        // Form spellings that decode to a space or to invalid UTF-8.
        for (case, raw) in [("`+` (a space)", "A+B"), ("%20", "A%20B"), ("%FF", "A%FFB")] {
            let rest: Fields = fields.iter().filter(|(k, _)| *k != name).cloned().collect();
            let form = format!("{name}={raw}&{}", to_form(&rest));
            let response = app.post_form(path, &form).await;
            assert_refused(
                &app,
                &format!("{name} {case}, raw form"),
                response,
                400,
                "invalid_request",
            )
            .await;
        }
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_and_refresh_accept_a_credential_of_4096_visible_ascii_characters() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(4).await;
    // Every visible ASCII character, `"` and `\` included, cycled to the limit.
    let longest: String = (0x21u8..=0x7e).cycle().take(4096).map(char::from).collect();

    for (path, name, fields) in [
        (TOKEN, "code", exchange_fields()),
        (REFRESH, "refresh_token", refresh_fields()),
    ] {
        let body = with(fields, name, &longest);
        assert_tokens(
            &format!("{name}, JSON"),
            app.post_json(path, &to_json(&body)).await,
        )
        .await;
        assert_tokens(
            &format!("{name}, form"),
            app.post_form(path, &to_form(&body)).await,
        )
        .await;
    }

    let forms = app.upstream_forms().await;
    assert_eq!(forms.len(), 4);
    assert_eq!(forms[0]["code"], longest);
    assert_eq!(forms[1]["code"], longest);
    assert_eq!(forms[2]["refresh_token"], longest);
    assert_eq!(forms[3]["refresh_token"], longest);
}

// ---------------------------------------------------------------------------------------------
// Duplicates (RFC 6749 §3.2: parameters "MUST NOT be included more than once").

#[tokio::test]
async fn token_and_refresh_return_400_when_a_parameter_is_sent_twice() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let (c, v, r) = (CODE, VERIFIER, REDIRECT_URI);
    let r_form = to_form(&[("redirect_uri", REDIRECT_URI.to_owned())]);
    let rest = format!("code_verifier={v}&{r_form}");
    let forms = [
        (
            TOKEN,
            "code twice, different",
            format!("code=a&code=b&{rest}"),
        ),
        (
            TOKEN,
            "code twice, identical",
            format!("code={c}&code={c}&{rest}"),
        ),
        (
            TOKEN,
            "code empty then set",
            format!("code=&code={c}&{rest}"),
        ),
        (
            TOKEN,
            "code set then empty",
            format!("{rest}&code={c}&code="),
        ),
        (
            TOKEN,
            "code_verifier twice",
            format!("code={c}&{rest}&code_verifier={v}"),
        ),
        (
            TOKEN,
            "redirect_uri twice",
            format!("code={c}&{rest}&{r_form}"),
        ),
        (
            REFRESH,
            "refresh_token twice",
            "refresh_token=a&refresh_token=b".to_owned(),
        ),
    ];
    for (path, case, body) in forms {
        let response = app.post_form(path, &body).await;
        assert_refused(
            &app,
            &format!("{case}, form"),
            response,
            400,
            "invalid_request",
        )
        .await;
    }
    let jsons = [
        (
            TOKEN,
            "code twice, different",
            format!(r#"{{"code":"a","code":"b","code_verifier":"{v}","redirect_uri":"{r}"}}"#),
        ),
        (
            TOKEN,
            "code twice, identical",
            format!(r#"{{"code":"{c}","code":"{c}","code_verifier":"{v}","redirect_uri":"{r}"}}"#),
        ),
        (
            TOKEN,
            "code null then set",
            format!(r#"{{"code":null,"code":"{c}","code_verifier":"{v}","redirect_uri":"{r}"}}"#),
        ),
        (
            TOKEN,
            "code_verifier twice",
            format!(
                r#"{{"code":"{c}","code_verifier":"{v}","redirect_uri":"{r}","code_verifier":"{v}"}}"#
            ),
        ),
        (
            TOKEN,
            "redirect_uri twice",
            format!(
                r#"{{"code":"{c}","code_verifier":"{v}","redirect_uri":"{r}","redirect_uri":"{r}"}}"#
            ),
        ),
        (
            REFRESH,
            "refresh_token twice",
            r#"{"refresh_token":"a","refresh_token":"b"}"#.to_owned(),
        ),
    ];
    for (path, case, body) in jsons {
        let response = app.post_raw(path, "application/json", body).await;
        assert_refused(
            &app,
            &format!("{case}, JSON"),
            response,
            400,
            "invalid_request",
        )
        .await;
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_duplicated_unknown_or_ignored_field_is_accepted() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(4).await;
    let (c, v, r) = (CODE, VERIFIER, REDIRECT_URI);
    let r_form = to_form(&[("redirect_uri", REDIRECT_URI.to_owned())]);

    let response = app
        .post_form(
            TOKEN,
            &format!("foo=1&foo=2&code={c}&code_verifier={v}&{r_form}"),
        )
        .await;
    assert_tokens("unknown field twice, form", response).await;
    let response = app
        .post_raw(
            TOKEN,
            "application/json",
            format!(
                r#"{{"foo":1,"foo":"2","code":"{c}","code_verifier":"{v}","redirect_uri":"{r}"}}"#
            ),
        )
        .await;
    assert_tokens("unknown field twice, JSON", response).await;
    let response = app
        .post_form(
            REFRESH,
            &format!("client_id=a&client_id=b&refresh_token={REFRESH_TOKEN}"),
        )
        .await;
    assert_tokens("caller's client_id twice, form", response).await;
    let response = app
        .post_raw(
            REFRESH,
            "application/json",
            format!(
                r#"{{"client_secret":"a","client_secret":"b","refresh_token":"{REFRESH_TOKEN}"}}"#
            ),
        )
        .await;
    assert_tokens("caller's client_secret twice, JSON", response).await;

    let forms = app.upstream_forms().await;
    assert!(forms.iter().all(|f| f["client_id"] == CLIENT_ID
        && f["client_secret"] == CLIENT_SECRET
        && !f.contains_key("foo")));
}

// ---------------------------------------------------------------------------------------------
// Bodies that are not a JSON object.

#[tokio::test]
async fn malformed_json_bodies_return_400_and_the_service_stays_healthy() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let valid = exchange_body().to_string();
    let fields = valid
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_owned();
    let verifier_and_redirect =
        format!(r#""code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT_URI}""#);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("empty body", TOKEN, vec![]),
        ("whitespace only", TOKEN, b"  \n ".to_vec()),
        ("unclosed object", TOKEN, b"{".to_vec()),
        (
            "truncated",
            TOKEN,
            valid.as_bytes()[..valid.len() - 1].to_vec(),
        ),
        ("not JSON", TOKEN, b"code=abc".to_vec()),
        ("single quotes", TOKEN, b"{'code': 'abc'}".to_vec()),
        (
            "trailing comma",
            TOKEN,
            format!("{{{fields},}}").into_bytes(),
        ),
        ("top-level empty array", TOKEN, b"[]".to_vec()),
        (
            "top-level array holding a valid body",
            TOKEN,
            format!("[{valid}]").into_bytes(),
        ),
        ("top-level string", TOKEN, br#""code""#.to_vec()),
        ("top-level number", TOKEN, b"42".to_vec()),
        ("top-level null", TOKEN, b"null".to_vec()),
        ("top-level true", TOKEN, b"true".to_vec()),
        ("trailing garbage", TOKEN, format!("{valid} x").into_bytes()),
        ("two objects", TOKEN, format!("{valid}{valid}").into_bytes()),
        (
            "trailing comma after the object",
            TOKEN,
            format!("{valid},").into_bytes(),
        ),
        (
            "NaN",
            TOKEN,
            format!(r#"{{{fields},"x":NaN}}"#).into_bytes(),
        ),
        (
            "lone surrogate escape in code",
            TOKEN,
            format!(r#"{{"code":"\ud800",{verifier_and_redirect}}}"#).into_bytes(),
        ),
        (
            "invalid UTF-8 in code",
            TOKEN,
            [
                &br#"{"code":"AB"#[..],
                &b"\xff\xfe"[..],
                format!(r#"",{verifier_and_redirect}}}"#).as_bytes(),
            ]
            .concat(),
        ),
        (
            "10,000 unclosed `[` in an unknown field",
            TOKEN,
            format!(r#"{{{fields},"deep":{}"#, "[".repeat(10_000)).into_bytes(),
        ),
        (
            "10,000 unclosed `[` in a required field",
            TOKEN,
            format!(r#"{{{verifier_and_redirect},"code":{}"#, "[".repeat(10_000)).into_bytes(),
        ),
        (
            "6,000 balanced `[` in a required field",
            TOKEN,
            format!(
                r#"{{{verifier_and_redirect},"code":{}{}}}"#,
                "[".repeat(6_000),
                "]".repeat(6_000)
            )
            .into_bytes(),
        ),
        ("unclosed object", REFRESH, b"{".to_vec()),
        (
            "top-level array",
            REFRESH,
            format!(r#"[{{"refresh_token":"{REFRESH_TOKEN}"}}]"#).into_bytes(),
        ),
        (
            "10,000 unclosed `[`",
            REFRESH,
            "[".repeat(10_000).into_bytes(),
        ),
    ];
    for (case, path, body) in cases {
        assert!(
            body.len() <= LIMIT,
            "{case}: the body must be under the limit"
        );
        let response = app.post_raw(path, "application/json", body).await;
        assert_refused(
            &app,
            &format!("{path}: {case}"),
            response,
            400,
            "invalid_request",
        )
        .await;
        assert!(
            app.is_healthy().await,
            "{case}: the proxy stopped answering"
        );
    }
}

/// Deep nesting that is valid JSON sits in an unknown field, which the contract ignores: it must
/// be skipped without recursion (no stack overflow), and the request served normally.
#[tokio::test]
async fn deeply_nested_valid_json_in_an_unknown_field_is_ignored_and_the_service_stays_healthy() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(2).await;
    let valid = exchange_body().to_string();
    let fields = valid.trim_start_matches('{').trim_end_matches('}');
    let cases = [
        (
            "6,000 balanced `[`",
            format!(
                r#"{{"deep":{}{},{fields}}}"#,
                "[".repeat(6_000),
                "]".repeat(6_000)
            ),
        ),
        (
            "2,000 nested objects",
            format!(
                r#"{{"deep":{}1{},{fields}}}"#,
                r#"{"a":"#.repeat(2_000),
                "}".repeat(2_000)
            ),
        ),
    ];
    for (case, body) in cases {
        assert!(
            body.len() <= LIMIT,
            "{case}: the body must be under the limit"
        );
        let response = app.post_raw(TOKEN, "application/json", body).await;
        assert_tokens(case, response).await;
        assert!(
            app.is_healthy().await,
            "{case}: the proxy stopped answering"
        );
    }
    for form in app.upstream_forms().await {
        assert!(!form.contains_key("deep"));
        assert_eq!(form["code"], CODE);
    }
}

// ---------------------------------------------------------------------------------------------
// Content types: JSON or a form, UTF-8 only; anything else is 415.

#[tokio::test]
async fn token_and_refresh_return_415_for_an_unsupported_content_type() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let json_body = exchange_body().to_string();
    let form_body = to_form(&exchange_fields());
    let cases: Vec<(Option<&str>, &String)> = vec![
        (None, &json_body),
        (None, &form_body),
        (Some(""), &json_body),
        (Some("text/plain"), &json_body),
        (Some("text/json"), &json_body),
        (Some("application/xml"), &json_body),
        (Some("application/json-patch+json"), &json_body),
        (Some("application/jsonx"), &json_body),
        (Some("multipart/form-data; boundary=X"), &form_body),
        (Some("application/octet-stream"), &json_body),
        (Some("application/json; charset=latin1"), &json_body),
        (Some("application/json; charset=iso-8859-1"), &json_body),
        (Some("application/json; charset=utf-16"), &json_body),
        (
            Some("application/x-www-form-urlencoded; charset=latin1"),
            &form_body,
        ),
    ];
    for (content_type, body) in cases {
        let case = format!("Content-Type {content_type:?}");
        let mut request = app.http.post(app.url(TOKEN)).body(body.clone());
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        let response = request.send().await.expect("proxy answers");
        assert_refused(&app, &case, response, 415, "invalid_request").await;
    }
    let refresh = json!({"refresh_token": REFRESH_TOKEN}).to_string();
    let response = app.post_raw(REFRESH, "text/plain", refresh).await;
    assert_refused(
        &app,
        "refresh with text/plain",
        response,
        415,
        "invalid_request",
    )
    .await;
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_accepts_json_with_a_utf8_charset_or_in_upper_case() {
    let app = spawn_app().await;
    let content_types = [
        "application/json; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
        "APPLICATION/JSON",
        "Application/Json; Charset=UTF-8",
    ];
    app.upstream_succeeds_times(content_types.len() as u64)
        .await;
    for content_type in content_types {
        let response = app
            .post_raw(TOKEN, content_type, exchange_body().to_string())
            .await;
        assert_tokens(content_type, response).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Body size: over 16 KiB is 413, without reading the body to the end.

/// The request head for a chunked JSON `/token` request.
fn chunked_head() -> String {
    format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
}

/// What [`assert_refused`] checks, on a raw response.
async fn assert_raw_refused(app: &TestApp, case: &str, response: RawResponse, status: u16) {
    assert_eq!(response.status, status, "{case}: status");
    assert_token_headers(&response.headers);
    let body: Value = serde_json::from_slice(&response.body).expect("error body is JSON");
    assert_eq!(body["error"], "invalid_request", "{case}: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{case}: {body}"
    );
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "{case}: the provider was called");
}

#[tokio::test]
async fn token_and_refresh_return_413_when_content_length_is_over_16_kib() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let refresh = format!(
        r#"{{"refresh_token":"{REFRESH_TOKEN}","padding":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let cases = [
        ("token, one byte over", TOKEN, padded_exchange(LIMIT + 1)),
        ("token, 1 MiB", TOKEN, padded_exchange(1024 * 1024)),
        ("refresh, over", REFRESH, refresh),
    ];
    for (case, path, body) in cases {
        let response = app.post_raw(path, "application/json", body).await;
        assert_refused(&app, case, response, 413, "invalid_request").await;
    }
    let response = app
        .post_form(
            TOKEN,
            &format!(
                "{}&padding={}",
                to_form(&exchange_fields()),
                "x".repeat(LIMIT)
            ),
        )
        .await;
    assert_refused(&app, "token, form over", response, 413, "invalid_request").await;
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_413_before_reading_a_body_declared_too_large() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    // Declares 1 MB and sends 10 bytes: waiting for the rest would end in the 1 s body deadline.
    let request = format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000000\r\nConnection: close\r\n\r\n{{\"code\":\""
    );

    let response = raw_http::send(app.addr, request.as_bytes()).await;

    assert_raw_refused(&app, "declared 1 MB", response, 413).await;
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_413_for_a_chunked_body_over_16_kib() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let over = padded_exchange(LIMIT + 1);
    // No terminating chunk: the proxy must answer from what it has, not wait for the end.
    for (case, size) in [("one 16 KiB + 1 chunk", LIMIT + 1), ("1 KiB chunks", 1024)] {
        let mut request = chunked_head().into_bytes();
        request.extend(raw_http::chunked(over.as_bytes(), size, false));

        let response = raw_http::send(app.addr, &request).await;

        assert_raw_refused(&app, case, response, 413).await;
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_body_of_exactly_16_kib_is_not_refused_as_too_large() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(2).await;
    let body = padded_exchange(LIMIT);

    let response = app.post_raw(TOKEN, "application/json", body.clone()).await;
    assert_tokens("16 KiB with Content-Length", response).await;

    let mut request = chunked_head().into_bytes();
    request.extend(raw_http::chunked(body.as_bytes(), 1000, true));
    let response = raw_http::send(app.addr, &request).await;
    assert_eq!(response.status, 200, "16 KiB chunked");
    assert_token_headers(&response.headers);
    let tokens: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(tokens, kick_tokens());
}

// ---------------------------------------------------------------------------------------------
// Methods and paths.

/// The methods listed in an `Allow` header.
fn allowed_methods(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("allow")
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII").split(','))
        .map(|m| m.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn token_and_refresh_return_405_with_allow_post_for_other_methods() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    for path in [TOKEN, REFRESH] {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let case = format!("{method} {path}");
            let response = app
                .http
                .request(method.clone(), app.url(path))
                .header("content-type", "application/json")
                .body(exchange_body().to_string())
                .send()
                .await
                .expect("proxy answers");
            let allow = allowed_methods(&response);
            assert!(allow.iter().any(|m| m == "POST"), "{case}: Allow {allow:?}");
            assert!(
                !allow.iter().any(|m| *m == method.as_str()),
                "{case}: Allow {allow:?}"
            );
            assert_refused(&app, &case, response, 405, "invalid_request").await;
        }
    }
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn healthz_answers_get_and_refuses_post_with_405() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;

    let get = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(get.status(), 200);

    for path in ["/healthz", "/readyz"] {
        let response = app.http.post(app.url(path)).send().await.expect("answer");
        let allow = allowed_methods(&response);
        assert!(
            allow.iter().any(|m| m == "GET"),
            "POST {path}: Allow {allow:?}"
        );
        assert_refused(
            &app,
            &format!("POST {path}"),
            response,
            405,
            "invalid_request",
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_provider_or_path_returns_404_not_found() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let cases = [
        (Method::POST, "/api/v1/nope/token"),
        (Method::POST, "/api/v1/nope/refresh"),
        (Method::POST, "/api/v1/KICK/token"),
        (Method::POST, "/api/v1/kick%20/token"),
        (Method::POST, "/api/v1//token"),
        (Method::POST, "/api/v2/kick/token"),
        (Method::POST, "/api/v1/kick/token/"),
        (Method::POST, "/api/v1/kick/tokens"),
        (Method::POST, "/api/v1/kick"),
        (Method::POST, "/"),
        (Method::GET, "/"),
        (Method::GET, "/api/v1/kick"),
    ];
    for (method, path) in cases {
        let case = format!("{method} {path}");
        let response = app
            .http
            .request(method, app.url(path))
            .header("content-type", "application/json")
            .body(exchange_body().to_string())
            .send()
            .await
            .expect("proxy answers");
        assert_refused(&app, &case, response, 404, "not_found").await;
    }
    assert!(app.is_healthy().await);
}
