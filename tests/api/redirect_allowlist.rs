//! `redirect_uri` must be byte-for-byte one of the provider's `allowed_redirect_uris` (contract
//! "Input rules"; RFC 9700 §4.1.3). No parsing, no normalisation: every look-alike a URL parser
//! would turn into the real thing is refused before the provider is called.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

const TOKEN: &str = "/api/v1/kick/token";

/// Strings that are not, byte for byte, an allowlist entry, though a parser or a human might
/// take them for one.
fn look_alikes() -> Vec<(&'static str, String)> {
    let web = REDIRECT_URI; // http://localhost:1420/auth/callback
    let app = APP_REDIRECT_URI; // battles-record://oauth/callback
    let cases: Vec<(&'static str, String)> = vec![
        // Case.
        (
            "scheme upper-cased",
            "HTTP://localhost:1420/auth/callback".into(),
        ),
        (
            "host upper-cased",
            "http://LOCALHOST:1420/auth/callback".into(),
        ),
        (
            "path case changed",
            "http://localhost:1420/Auth/Callback".into(),
        ),
        (
            "app scheme upper-cased",
            "BATTLES-RECORD://oauth/callback".into(),
        ),
        (
            "app host upper-cased",
            "battles-record://OAUTH/callback".into(),
        ),
        // Trailing additions.
        ("trailing slash", format!("{web}/")),
        ("app trailing slash", format!("{app}/")),
        ("empty query", format!("{web}?")),
        ("query", format!("{web}?x=1")),
        ("app query", format!("{app}?x=1")),
        ("empty fragment", format!("{web}#")),
        ("fragment", format!("{web}#x")),
        ("app fragment", format!("{app}#x")),
        ("path parameter", format!("{web};x")),
        ("longer path", format!("{web}x")),
        ("prefix only", web[..web.len() - 1].to_owned()),
        ("origin only", "http://localhost:1420".into()),
        ("both entries joined", format!("{app} {web}")),
        // Userinfo.
        (
            "allowed authority as userinfo",
            "http://localhost:1420@evil.com/auth/callback".into(),
        ),
        (
            "userinfo before the host",
            "http://evil@localhost:1420/auth/callback".into(),
        ),
        (
            "empty userinfo",
            "http://@localhost:1420/auth/callback".into(),
        ),
        (
            "app userinfo",
            "battles-record://evil@oauth/callback".into(),
        ),
        // Port.
        ("other port", "http://localhost:1421/auth/callback".into()),
        ("no port", "http://localhost/auth/callback".into()),
        ("empty port", "http://localhost:/auth/callback".into()),
        (
            "port with a leading zero",
            "http://localhost:01420/auth/callback".into(),
        ),
        // Percent-encoding.
        (
            "encoded slash",
            "http://localhost:1420/auth%2Fcallback".into(),
        ),
        (
            "encoded slash, lower case",
            "http://localhost:1420/auth%2fcallback".into(),
        ),
        (
            "encoded letter",
            "http://localhost:1420/%61uth/callback".into(),
        ),
        (
            "encoded scheme slashes",
            "http:%2F%2Flocalhost:1420/auth/callback".into(),
        ),
        (
            "encoded host letter",
            "http://%6Cocalhost:1420/auth/callback".into(),
        ),
        (
            "encoded dot segment",
            "http://localhost:1420/auth/%2e%2e/auth/callback".into(),
        ),
        (
            "app encoded slash",
            "battles-record://oauth%2Fcallback".into(),
        ),
        // Whitespace and control characters.
        ("leading space", format!(" {web}")),
        ("trailing space", format!("{web} ")),
        ("leading tab", format!("\t{web}")),
        ("trailing tab", format!("{web}\t")),
        ("tab inside", "http://localhost:1420/auth/\tcallback".into()),
        ("trailing LF", format!("{web}\n")),
        ("CR LF and a header", format!("{web}\r\nX-Injected: 1")),
        ("app CR LF and a header", format!("{app}\r\nX-Injected: 1")),
        ("trailing NUL", format!("{web}\0")),
        ("NUL inside", "http://localhost:1420/auth\0/callback".into()),
        // Unicode look-alikes.
        (
            "Cyrillic о in localhost",
            "http://l\u{43e}calhost:1420/auth/callback".into(),
        ),
        (
            "Cyrillic о in oauth",
            "battles-record://\u{43e}auth/callback".into(),
        ),
        (
            "fullwidth slash",
            "http://localhost:1420/auth\u{ff0f}callback".into(),
        ),
        ("trailing zero-width space", format!("{web}\u{200b}")),
        (
            "zero-width space in the host",
            "http://local\u{200b}host:1420/auth/callback".into(),
        ),
        ("leading byte-order mark", format!("\u{feff}{web}")),
        ("non-breaking space", format!("{web}\u{a0}")),
        // Other hosts and schemes.
        (
            "127.0.0.1 for localhost",
            "http://127.0.0.1:1420/auth/callback".into(),
        ),
        (
            "[::1] for localhost",
            "http://[::1]:1420/auth/callback".into(),
        ),
        (
            "host with a trailing dot",
            "http://localhost.:1420/auth/callback".into(),
        ),
        (
            "https for http",
            "https://localhost:1420/auth/callback".into(),
        ),
        (
            "app scheme with one slash",
            "battles-record:/oauth/callback".into(),
        ),
        (
            "app scheme with no slash",
            "battles-record:oauth/callback".into(),
        ),
        (
            "app scheme with three slashes",
            "battles-record:///oauth/callback".into(),
        ),
        // Path traversal and double slashes.
        ("app trailing dot-dot", format!("{app}/..")),
        ("app dot-dot back to itself", format!("{app}/../callback")),
        ("dot-dot back to itself", format!("{web}/../callback")),
        (
            "dot-dot in the middle",
            "http://localhost:1420/auth/../auth/callback".into(),
        ),
        (
            "dot segment",
            "http://localhost:1420/./auth/callback".into(),
        ),
        (
            "double slash before the path",
            "http://localhost:1420//auth/callback".into(),
        ),
        (
            "double slash in the path",
            "http://localhost:1420/auth//callback".into(),
        ),
        (
            "app double slash",
            "battles-record://oauth//callback".into(),
        ),
        // Backslashes (WHATWG parsers read them as slashes in http URLs).
        (
            "backslashes in the path",
            "http://localhost:1420\\auth\\callback".into(),
        ),
        (
            "backslashes everywhere",
            "http:\\\\localhost:1420\\auth\\callback".into(),
        ),
    ];
    // A test that cannot fail is a defect: every case really differs from both entries.
    for (name, value) in &cases {
        assert!(value != web && value != app, "{name} is an allowed value");
    }
    cases
}

/// Asserts a 400 `invalid_request` for `case` and that nothing reached the provider yet.
async fn assert_refused(app: &TestApp, case: &str, response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 400, "{case}: status");
    let body = assert_error(response, 400, "invalid_request").await;
    let calls = app.upstream.received_requests().await.unwrap_or_default();
    assert!(calls.is_empty(), "{case}: the provider was called");
    body
}

/// A `/token` form body whose `redirect_uri` decodes to exactly `redirect_uri`.
fn form_with(redirect_uri: &str) -> String {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", CODE)
        .append_pair("code_verifier", VERIFIER)
        .append_pair("redirect_uri", redirect_uri)
        .finish();
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        decoded[2].1, redirect_uri,
        "the form encodes the value faithfully"
    );
    form
}

fn json_with(redirect_uri: &str) -> Value {
    json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": redirect_uri})
}

#[tokio::test]
async fn token_accepts_each_allowlisted_redirect_uri_exactly_and_forwards_it_unchanged() {
    let app = spawn_app().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 4)
        .await;
    let mut sent = Vec::new();

    for uri in [APP_REDIRECT_URI, REDIRECT_URI] {
        let response = app.post_json(TOKEN, &json_with(uri)).await;
        assert_eq!(response.status(), 200, "{uri}, JSON");
        assert_token_headers(response.headers());
        let response = app.post_form(TOKEN, &form_with(uri)).await;
        assert_eq!(response.status(), 200, "{uri}, form");
        assert_token_headers(response.headers());
        sent.extend([uri, uri]);
    }

    let forwarded: Vec<String> = app
        .upstream_forms()
        .await
        .iter()
        .map(|form| form["redirect_uri"].clone())
        .collect();
    assert_eq!(forwarded, sent);
}

/// JSON escapes and form percent-encoding are transport, not normalisation: they decode to the
/// exact entry, which is what gets compared.
#[tokio::test]
async fn token_accepts_an_allowlisted_redirect_uri_spelled_with_transport_escapes() {
    let app = spawn_app().await;
    app.upstream_answers(ResponseTemplate::new(200).set_body_json(kick_tokens()), 2)
        .await;

    let escaped_json = format!(
        r#"{{"code":"{CODE}","code_verifier":"{VERIFIER}","redirect_uri":"\u0068ttp:\/\/localhost:1420\/auth\/callback"}}"#
    );
    let response = app.post_raw(TOKEN, "application/json", escaped_json).await;
    assert_eq!(response.status(), 200, "JSON escapes");
    let once_encoded = format!(
        "code={CODE}&code_verifier={VERIFIER}&redirect_uri=http%3A%2F%2Flocalhost%3A1420%2Fauth%2Fcallback"
    );
    let response = app.post_form(TOKEN, &once_encoded).await;
    assert_eq!(response.status(), 200, "form percent-encoding");

    for form in app.upstream_forms().await {
        assert_eq!(form["redirect_uri"], REDIRECT_URI);
    }
}

#[tokio::test]
async fn token_returns_400_for_every_redirect_uri_look_alike_in_json() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;
    let mut descriptions = Vec::new();

    for (case, uri) in look_alikes() {
        let response = app.post_json(TOKEN, &json_with(&uri)).await;
        let body = assert_refused(&app, &format!("{case}: {uri:?}"), response).await;
        descriptions.push(body["error_description"].clone());
    }

    // A fixed text: the refused value is never echoed back.
    descriptions.dedup();
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn token_returns_400_for_every_redirect_uri_look_alike_in_a_form() {
    let app = spawn_app().await;
    app.upstream_must_not_be_called().await;

    for (case, uri) in look_alikes() {
        let response = app.post_form(TOKEN, &form_with(&uri)).await;
        assert_refused(&app, &format!("{case}: {uri:?}"), response).await;
    }

    assert!(app.is_healthy().await);
}
