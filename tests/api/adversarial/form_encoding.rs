//! Form bodies: bytes that are not valid URL-encoded UTF-8 are decoded as browsers do (WHATWG) and
//! never reach the provider wrong, and encoding tricks decode exactly once without splitting or
//! merging fields.

use crate::helpers::cases::*;
use crate::helpers::*;

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
