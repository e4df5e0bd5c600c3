//! Header and framing tricks over raw TCP: the `Content-Type` judged on its whole value,
//! `Content-Length` and `Transfer-Encoding` conflicts framed safely (RFC 9112 §6), HTTP/1.0.

use crate::helpers::cases::*;
use crate::helpers::raw_http;
use crate::helpers::*;
use std::time::Duration;

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
    let json_first = raw_http::post(
        TOKEN,
        &format!(
            "Content-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        ),
        &body,
    );
    let text_first = raw_http::post(
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
            raw_http::post(TOKEN, &format!("{ct}Content-Length: 10\r\n"), &body),
            vec![Answer::Error(400, "invalid_request"), Answer::Protocol(400)],
            true,
        ),
        // The application waits for the missing bytes until the body deadline (1 s here).
        raw_case(
            "Content-Length longer than the body",
            raw_http::post(
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
            raw_http::post(
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
            raw_http::post(
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
            raw_http::post(
                TOKEN,
                &format!("{ct}Content-Length: {len}\r\nContent-Length: {len}\r\n"),
                &json_exchange(&code(81)),
            ),
            vec![Answer::Tokens],
            false,
        ),
        raw_case(
            "Content-Length as a list `n, n`",
            raw_http::post(
                TOKEN,
                &format!("{ct}Content-Length: {len}, {len}\r\n"),
                &body,
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Content-Length with a sign",
            raw_http::post(TOKEN, &format!("{ct}Content-Length: +{len}\r\n"), &body),
            vec![Answer::Protocol(400)],
            true,
        ),
        // A malformed chunk size is met while the application reads the body: its JSON 400.
        raw_case(
            "a chunk size that is not hex",
            raw_http::post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked\r\n"),
                &format!("zz\r\n{body}\r\n0\r\n\r\n"),
            ),
            vec![Answer::Error(400, "invalid_request")],
            true,
        ),
        raw_case(
            "chunk extensions are allowed",
            raw_http::post(
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
    app.upstream_succeeds_times(1).await;
    let body = json_exchange(&code(90));
    let request = format!(
        "POST {TOKEN} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let outcome = raw_http::exchange(app.addr, request.as_bytes(), Duration::from_secs(4)).await;

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
    assert_eq!(app.provider_calls().await, 1);
    assert!(app.is_healthy().await);
}
