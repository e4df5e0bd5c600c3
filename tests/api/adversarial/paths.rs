//! Path tricks: routes match exactly (no normalisation that could reach another endpoint), an
//! absolute-form target naming another host changes nothing, and query strings are not fields.

use crate::helpers::cases::*;
use crate::helpers::raw_http;
use crate::helpers::*;

#[tokio::test]
async fn path_tricks_route_exactly_and_query_strings_are_not_fields() {
    let body = |n| json_exchange(&code(n));
    let missing_code = format!("{{{}}}", json_rest());
    run_raw_table(vec![
        raw_case(
            "trailing slash, form body",
            raw_http::post(
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
            raw_http::post_json("//api/v1/kick/token", &body(100)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "dot segment back to the endpoint (not normalised)",
            raw_http::post_json("/api/v1/kick/../kick/token", &body(101)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "encoded `t` in the endpoint segment",
            raw_http::post_json("/api/v1/kick/%74oken", &body(102)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "path parameter after the endpoint",
            raw_http::post_json("/api/v1/kick/token;x=1", &body(103)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        raw_case(
            "encoded slash inside the provider segment",
            raw_http::post_json("/api/v1/kick%2Ftoken/token", &body(104)),
            vec![Answer::Error(404, "not_found")],
            false,
        ),
        // The provider segment is percent-decoded before lookup: `%6Bick` is `kick`, the same
        // URI by RFC 3986 §6.2.2.2 (percent-encoded unreserved characters are equivalent).
        raw_case(
            "encoded `k` in the provider segment",
            raw_http::post_json("/api/v1/%6Bick/token", &body(105)),
            vec![Answer::Tokens],
            false,
        ),
        // RFC 9112 §3.2.2: a server must accept the absolute form; the authority is unused.
        raw_case(
            "absolute-form request target naming another host",
            raw_http::post_json("http://evil.example/api/v1/kick/token", &body(106)),
            vec![Answer::Tokens],
            false,
        ),
        raw_case(
            "the required fields in the query, none in the body",
            raw_http::post_json(
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
            raw_http::post_json(&format!("{TOKEN}?code={CODE}"), &missing_code),
            vec![Answer::Error(400, "invalid_request")],
            false,
        ),
        // Query values are neither duplicates of body fields nor forwarded.
        raw_case(
            "a different code and redirect_uri in the query, a valid body",
            raw_http::post_json(
                &format!("{TOKEN}?code=evil&redirect_uri=http%3A%2F%2Fevil.example%2F"),
                &body(107),
            ),
            vec![Answer::Tokens],
            false,
        ),
    ])
    .await;
}
