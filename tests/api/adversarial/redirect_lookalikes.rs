//! Redirect look-alikes inside otherwise valid requests: the proxy never relays a code for a
//! redirect URI it does not allow, whatever valid material surrounds the look-alike.

use crate::helpers::cases::*;
use crate::helpers::*;

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
