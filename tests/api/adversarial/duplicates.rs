//! Duplicates in many spellings (RFC 6749 §3.2: "MUST NOT be included more than once"): refused
//! however they are spelt, while keys that differ in case are other keys.

use crate::helpers::cases::*;
use crate::helpers::*;

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
