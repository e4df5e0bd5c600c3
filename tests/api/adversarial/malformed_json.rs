//! Malformed and odd JSON bodies: one test per body. Bad JSON is `400 invalid_request` before any
//! field is read and the provider is never called; odd but valid JSON is served, forwarding only
//! the contract's fields.

use crate::helpers::cases::*;
use crate::helpers::*;

/// `body`, sent to `path` as `content_type`, is `400 invalid_request` and never reaches the
/// provider.
async fn refused_as_bad_input(
    name: &str,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) {
    run_case(case(name, path, content_type, body, refused())).await;
}

/// `body`, sent to `/token` as JSON, is served and the provider receives `code`.
async fn served_with(name: &str, body: String, code: &str) {
    run_case(case(name, TOKEN, JSON, body, served_with_code(code))).await;
}

/// A `redirect_uri` of `battles-record://oauth{bad}callback`.
fn with_bad_bytes_in_redirect_uri(bad: &[u8]) -> Vec<u8> {
    bytes(&[
        format!(
            r#"{{"code":"{CODE}","code_verifier":"{VERIFIER}","redirect_uri":"battles-record://oauth"#
        )
        .as_bytes(),
        bad,
        br#"callback"}"#,
    ])
}

#[tokio::test]
async fn a_json_body_truncated_inside_a_key_is_400() {
    let valid = json_exchange(&code(1));
    refused_as_bad_input(
        "truncated inside a key",
        TOKEN,
        JSON,
        &valid.as_bytes()[..20],
    )
    .await;
}

#[tokio::test]
async fn a_json_body_truncated_inside_a_unicode_escape_is_400() {
    refused_as_bad_input(
        "truncated inside a \\u escape",
        TOKEN,
        JSON,
        r#"{"code":"AB\u00"#,
    )
    .await;
}

/// RFC 8259 §8.1: a sender must not add a BOM; a parser may refuse one.
#[tokio::test]
async fn a_utf8_byte_order_mark_before_the_object_is_400() {
    let valid = json_exchange(&code(1));
    refused_as_bad_input(
        "UTF-8 byte-order mark before the object",
        TOKEN,
        JSON,
        bytes(&[b"\xef\xbb\xbf", valid.as_bytes()]),
    )
    .await;
}

#[tokio::test]
async fn utf16_text_with_its_byte_order_mark_is_400() {
    let valid = json_exchange(&code(1));
    refused_as_bad_input(
        "UTF-16 byte-order mark and UTF-16 text",
        TOKEN,
        JSON,
        bytes(&[
            b"\xff\xfe",
            &valid.bytes().flat_map(|b| [b, 0]).collect::<Vec<u8>>(),
        ]),
    )
    .await;
}

#[tokio::test]
async fn a_line_comment_before_the_object_is_400() {
    let valid = json_exchange(&code(1));
    refused_as_bad_input(
        "line comment",
        TOKEN,
        JSON,
        format!("// a comment\n{valid}"),
    )
    .await;
}

#[tokio::test]
async fn a_block_comment_inside_the_object_is_400() {
    refused_as_bad_input(
        "block comment inside the object",
        TOKEN,
        JSON,
        json_exchange_with("/* x */", &code(2)),
    )
    .await;
}

/// RFC 8259 §9 lets a parser limit the range of numbers: 1e400 overflows f64 and is refused as
/// bad JSON, before any field is looked at.
#[tokio::test]
async fn a_number_that_overflows_a_double_in_an_unknown_field_is_400() {
    refused_as_bad_input(
        "1e400 in an unknown field",
        TOKEN,
        JSON,
        json_exchange_with(r#""x":1e400,"#, &code(3)),
    )
    .await;
}

#[tokio::test]
async fn a_40_digit_integer_in_an_unknown_field_is_served() {
    served_with(
        "40-digit integer in an unknown field",
        json_exchange_with(r#""x":1234567890123456789012345678901234567890,"#, &code(4)),
        &code(4),
    )
    .await;
}

#[tokio::test]
async fn negative_zero_and_an_exponent_in_unknown_fields_are_served() {
    served_with(
        "-0 and 1E+2 in unknown fields",
        json_exchange_with(r#""x":-0,"y":1E+2,"#, &code(5)),
        &code(5),
    )
    .await;
}

#[tokio::test]
async fn a_40_digit_integer_as_the_code_is_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "40-digit integer as the code",
        TOKEN,
        JSON,
        format!(r#"{{"code":1234567890123456789012345678901234567890,{rest}}}"#),
    )
    .await;
}

#[tokio::test]
async fn the_required_fields_only_inside_an_unknown_object_are_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "the required fields only inside an unknown object",
        TOKEN,
        JSON,
        format!(r#"{{"x":{{"code":"{CODE}",{rest}}}}}"#),
    )
    .await;
}

#[tokio::test]
async fn a_nested_code_is_not_a_duplicate_and_is_served() {
    served_with(
        "a nested `code` is not a duplicate",
        json_exchange_with(
            r#""x":{"code":"other","y":[{"code":"another"}]},"#,
            &code(6),
        ),
        &code(6),
    )
    .await;
}

#[tokio::test]
async fn fifteen_hundred_balanced_levels_in_an_unknown_field_are_served() {
    served_with(
        "1,500 alternating `[{\"a\":` levels, balanced, in an unknown field",
        json_exchange_with(
            &format!(
                r#""deep":{}1{},"#,
                r#"[{"a":"#.repeat(1_500),
                "}]".repeat(1_500)
            ),
            &code(7),
        ),
        &code(7),
    )
    .await;
}

#[tokio::test]
async fn three_thousand_unclosed_objects_in_an_unknown_field_are_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "3,000 unclosed objects in an unknown field",
        TOKEN,
        JSON,
        format!(
            r#"{{{rest},"code":"{CODE}","deep":{}"#,
            r#"{"a":"#.repeat(3_000)
        ),
    )
    .await;
}

#[tokio::test]
async fn a_raw_nul_byte_between_members_is_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "raw NUL byte between members",
        TOKEN,
        JSON,
        format!("{{\"code\":\"{CODE}\",\0{rest}}}"),
    )
    .await;
}

#[tokio::test]
async fn a_raw_nul_byte_inside_the_code_string_is_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "raw NUL byte inside the code string",
        TOKEN,
        JSON,
        format!("{{\"code\":\"AB\0CD\",{rest}}}"),
    )
    .await;
}

#[tokio::test]
async fn an_escaped_nul_in_an_unknown_field_is_valid_json_and_served() {
    served_with(
        "escaped NUL in an unknown field is valid JSON",
        json_exchange_with(r#""x":"\u0000","#, &code(8)),
        &code(8),
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_an_unknown_top_level_string_is_400() {
    let valid = json_exchange(&code(1));
    refused_as_bad_input(
        "invalid UTF-8 in an unknown top-level string",
        TOKEN,
        JSON,
        bytes(&[br#"{"x":"A"#, b"\xff", br#"","#, &valid.as_bytes()[1..]]),
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_the_redirect_uri_is_400() {
    refused_as_bad_input(
        "invalid UTF-8 in the redirect_uri",
        TOKEN,
        JSON,
        with_bad_bytes_in_redirect_uri(b"\xfe"),
    )
    .await;
}

#[tokio::test]
async fn an_overlong_utf8_slash_in_the_redirect_uri_is_400() {
    refused_as_bad_input(
        "overlong UTF-8 `/` (C0 AF) in the redirect_uri",
        TOKEN,
        JSON,
        with_bad_bytes_in_redirect_uri(b"\xc0\xaf"),
    )
    .await;
}

#[tokio::test]
async fn an_overlong_utf8_nul_in_the_verifier_is_400() {
    refused_as_bad_input(
        "overlong UTF-8 NUL (E0 80 80) in the verifier",
        TOKEN,
        JSON,
        bytes(&[
            format!(
                r#"{{"code":"{CODE}","redirect_uri":"{REDIRECT_URI}","code_verifier":"{}"#,
                &VERIFIER[..42]
            )
            .as_bytes(),
            b"\xe0\x80\x80",
            br#""}"#,
        ]),
    )
    .await;
}

#[tokio::test]
async fn a_utf8_encoded_surrogate_in_the_code_is_400() {
    let rest = json_rest();
    refused_as_bad_input(
        "UTF-8-encoded surrogate (ED A0 80) in the code",
        TOKEN,
        JSON,
        bytes(&[
            br#"{"code":"AB"#,
            b"\xed\xa0\x80",
            format!(r#"",{rest}}}"#).as_bytes(),
        ]),
    )
    .await;
}

#[tokio::test]
async fn an_empty_json_key_is_just_an_unknown_field_and_served() {
    served_with(
        "empty key in JSON is just an unknown field",
        json_exchange_with(r#""":"x","#, &code(9)),
        &code(9),
    )
    .await;
}

#[tokio::test]
async fn a_form_body_sent_as_json_is_400() {
    refused_as_bad_input(
        "JSON content type, form body",
        TOKEN,
        JSON,
        form_exchange(&code(10)),
    )
    .await;
}

/// The whole JSON text becomes one form key; no `code` field exists.
#[tokio::test]
async fn a_json_body_sent_as_a_form_is_400() {
    refused_as_bad_input(
        "form content type, JSON body",
        TOKEN,
        FORM,
        json_exchange(&code(11)),
    )
    .await;
}

#[tokio::test]
async fn a_refresh_body_truncated_after_the_value_is_400() {
    refused_as_bad_input(
        "refresh: truncated after the value",
        REFRESH,
        JSON,
        format!(r#"{{"refresh_token":"{REFRESH_TOKEN}""#),
    )
    .await;
}

#[tokio::test]
async fn a_revoke_body_with_a_byte_order_mark_is_400() {
    refused_as_bad_input(
        "revoke: BOM before the object",
        REVOKE,
        JSON,
        bytes(&[b"\xef\xbb\xbf", br#"{"token":"abc"}"#]),
    )
    .await;
}

/// serde_json alone would skip ignored values without validating their UTF-8; the proxy checks the
/// whole body first (RFC 8259 §8.1), so the same bytes are 400 one level down too.
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
