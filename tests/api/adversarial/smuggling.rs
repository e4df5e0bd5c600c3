//! Request smuggling: a second request hidden in the first must never be answered as one.

use crate::helpers::cases::*;

use crate::helpers::raw_http;

#[tokio::test]
async fn smuggled_requests_are_never_answered() {
    let ct = "Content-Type: application/json\r\n";
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: proxy.test\r\n\r\n";
    let smuggled_post = String::from_utf8(raw_http::post_json(TOKEN, &json_exchange(&code(99))))
        .expect("ASCII request");
    run_raw_table(vec![
        // CL.TE: a front end framing by Content-Length would forward the GET as body; the
        // proxy frames by chunked, refuses the empty body and closes, so the GET is never read.
        raw_case(
            "CL.TE: Content-Length and chunked, a GET after the last chunk",
            raw_http::post(
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
            raw_http::post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding: chunked, identity",
            raw_http::post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked, identity\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding twice: chunked, then identity",
            raw_http::post(
                TOKEN,
                &format!("{ct}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "a space before the colon of Transfer-Encoding",
            raw_http::post(
                TOKEN,
                &format!("{ct}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
            vec![Answer::Protocol(400)],
            true,
        ),
        raw_case(
            "Transfer-Encoding folded onto a continuation line",
            raw_http::post(
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
            raw_http::post(
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
            raw_http::post(
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
            raw_http::post(
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
