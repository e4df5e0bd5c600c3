//! Providers beyond Kick (issue 8): the `twitch` and `google` presets and a `generic` one with
//! `client_secret_basic`, each behind a fake upstream speaking that provider's real response and
//! error shapes, normalised to the one contract. Plus the loopback wildcard-port redirect rule.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const ACME_CLIENT_ID: &str = "acme-client";
/// Needs form-urlencoding before Basic (RFC 6749 §2.3.1).
const ACME_SECRET: &str = "acme secret/+=:x";
/// base64("acme-client:acme+secret%2F%2B%3D%3Ax").
const ACME_BASIC: &str = "Basic YWNtZS1jbGllbnQ6YWNtZStzZWNyZXQlMkYlMkIlM0QlM0F4";
const LOOPBACK_WILDCARD: &str = "http://127.0.0.1:*/callback";
const ID_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMTAxNjkifQ.c2lnbmF0dXJl";

/// The test config plus `twitch`, `youtube` (preset google, wildcard loopback) and `acme`
/// (preset generic, Basic auth), all pointing at the same wiremock under their own paths.
async fn spawn_providers() -> TestApp {
    spawn_app_with(|toml| {
        let upstream = toml
            .lines()
            .find_map(|l| l.strip_prefix("token_url = \""))
            .and_then(|l| l.strip_suffix("/oauth/token\""))
            .expect("base config has a token_url")
            .to_owned();
        format!(
            r#"{toml}
[providers.twitch]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{REDIRECT_URI}"]
token_url = "{upstream}/twitch/token"
revoke_url = "{upstream}/twitch/revoke"
timeout_secs = 2

[providers.youtube]
preset = "google"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{LOOPBACK_WILDCARD}", "{REDIRECT_URI}"]
token_url = "{upstream}/google/token"
revoke_url = "{upstream}/google/revoke"
timeout_secs = 2

[providers.acme]
preset = "generic"
client_auth = "client_secret_basic"
client_id = "{ACME_CLIENT_ID}"
client_secret = "{ACME_SECRET}"
allowed_redirect_uris = ["{REDIRECT_URI}"]
token_url = "{upstream}/acme/token"
revoke_url = "{upstream}/acme/revoke"
timeout_secs = 2
"#
        )
    })
    .await
}

async fn mount(app: &TestApp, at: &str, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(response)
        .expect(times)
        .mount(&app.upstream)
        .await;
}

/// Form fields and headers of the requests the fake provider got at `at`.
async fn received(app: &TestApp, at: &str) -> Vec<(HashMap<String, String>, Option<String>)> {
    app.upstream
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == at)
        .map(|r| {
            assert!(r.url.query().is_none(), "nothing in the query string");
            (
                form_of(r),
                r.headers
                    .get("authorization")
                    .map(|v| v.to_str().expect("ascii").to_owned()),
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Twitch's real success shape: `scope` an array, `token_type` lowercase.
fn twitch_tokens() -> Value {
    json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": 14124,
        "refresh_token": NEW_REFRESH_TOKEN,
        "scope": ["channel:read:subscriptions", "user:read:email"],
        "token_type": "bearer"
    })
}

fn twitch_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"status": status, "message": message}))
}

async fn exchange(app: &TestApp, provider: &str, redirect_uri: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/{provider}/token"),
        &json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": redirect_uri}),
    )
    .await
}

async fn refresh(app: &TestApp, provider: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/{provider}/refresh"),
        &json!({"refresh_token": REFRESH_TOKEN}),
    )
    .await
}

async fn revoke(app: &TestApp, provider: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/{provider}/revoke"),
        &json!({"token": REFRESH_TOKEN, "token_type_hint": "refresh_token"}),
    )
    .await
}

async fn assert_502_names(response: reqwest::Response, code: &str, display: &str) {
    let body = assert_error(response, 502, code).await;
    let text = format!("Failed to communicate with {display} OAuth server");
    assert_eq!(
        body,
        json!({"error": code, "error_description": text, "details": text})
    );
}

// --- Twitch -----------------------------------------------------------------------------------

#[tokio::test]
async fn twitch_exchange_posts_the_form_and_joins_the_scope_array() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/twitch/token",
        ResponseTemplate::new(200).set_body_json(twitch_tokens()),
        1,
    )
    .await;

    let response = exchange(&app, "twitch", REDIRECT_URI).await;

    assert_eq!(response.status(), 200);
    assert_token_headers(response.headers());
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 14124,
            "refresh_token": NEW_REFRESH_TOKEN,
            "scope": "channel:read:subscriptions user:read:email"
        })
    );
    let got = received(&app, "/twitch/token").await;
    assert_eq!(got, [(exchange_form(), None)]);
}

#[tokio::test]
async fn twitch_refresh_posts_the_refresh_grant_with_credentials_in_the_body() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/twitch/token",
        ResponseTemplate::new(200).set_body_json(twitch_tokens()),
        1,
    )
    .await;

    let response = refresh(&app, "twitch").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["refresh_token"], NEW_REFRESH_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        received(&app, "/twitch/token").await,
        [(
            map(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", REFRESH_TOKEN),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]),
            None
        )]
    );
}

#[tokio::test]
async fn twitch_revoke_sends_a_form_body_with_client_id_and_token() {
    let app = spawn_providers().await;
    mount(&app, "/twitch/revoke", ResponseTemplate::new(200), 1).await;

    let response = revoke(&app, "twitch").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
    assert_eq!(
        received(&app, "/twitch/revoke").await,
        [(
            map(&[
                ("client_id", CLIENT_ID),
                ("token", REFRESH_TOKEN),
                ("token_type_hint", "refresh_token"),
            ]),
            None
        )]
    );
}

#[tokio::test]
async fn twitch_revoke_of_an_unknown_token_is_a_success() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/twitch/revoke",
        twitch_error(400, "Invalid token"),
        1,
    )
    .await;

    let response = revoke(&app, "twitch").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
}

#[tokio::test]
async fn twitch_errors_are_normalised_to_oauth_codes() {
    let cases = [
        (twitch_error(400, "Invalid authorization code"), "token", 400, "invalid_grant"),
        (twitch_error(400, "Invalid refresh token"), "refresh", 400, "invalid_grant"),
        (twitch_error(400, "missing code verifier"), "token", 400, "invalid_request"),
        (
            ResponseTemplate::new(400).set_body_json(
                json!({"error": "Bad Request", "status": 400, "message": "Invalid authorization code"}),
            ),
            "token",
            400,
            "invalid_grant",
        ),
    ];
    for (response, endpoint, status, code) in cases {
        let app = spawn_providers().await;
        mount(&app, "/twitch/token", response, 1).await;
        let answer = if endpoint == "token" {
            exchange(&app, "twitch", REDIRECT_URI).await
        } else {
            refresh(&app, "twitch").await
        };
        let body = assert_error(answer, status, code).await;
        assert!(body.get("details").is_none(), "{body}");
    }
}

#[tokio::test]
async fn twitch_refusing_our_client_is_a_502_naming_twitch() {
    for response in [
        twitch_error(403, "invalid client secret"),
        twitch_error(401, "invalid client"),
        twitch_error(400, "invalid client"),
        ResponseTemplate::new(500),
    ] {
        let app = spawn_providers().await;
        mount(&app, "/twitch/token", response, 1).await;
        assert_502_names(
            exchange(&app, "twitch", REDIRECT_URI).await,
            "error_twitch_server_error",
            "Twitch",
        )
        .await;
    }
}

// --- Google (a `youtube` table with preset = "google") ----------------------------------------

fn google_tokens() -> Value {
    json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": 3599,
        "refresh_token": NEW_REFRESH_TOKEN,
        "scope": "https://www.googleapis.com/auth/youtube.readonly openid",
        "token_type": "Bearer",
        "id_token": ID_TOKEN
    })
}

#[tokio::test]
async fn google_exchange_passes_the_id_token_through() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(200).set_body_json(google_tokens()),
        1,
    )
    .await;

    let response = exchange(&app, "youtube", REDIRECT_URI).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        google_tokens()
    );
    let got = received(&app, "/google/token").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["client_secret"], CLIENT_SECRET);
    assert_eq!(got[0].0["grant_type"], "authorization_code");
    assert_eq!(got[0].1, None);
}

#[tokio::test]
async fn google_refresh_without_a_new_refresh_token_answers_none() {
    let app = spawn_providers().await;
    let answer = json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/youtube.readonly",
        "token_type": "Bearer",
        "id_token": ID_TOKEN
    });
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(200).set_body_json(&answer),
        1,
    )
    .await;

    let response = refresh(&app, "youtube").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, answer);
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn google_revoke_sends_only_the_token_in_a_form_body() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/revoke",
        ResponseTemplate::new(200).set_body_json(json!({})),
        1,
    )
    .await;

    let response = revoke(&app, "youtube").await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        received(&app, "/google/revoke").await,
        [(map(&[("token", REFRESH_TOKEN)]), None)]
    );
}

#[tokio::test]
async fn google_errors_keep_their_oauth_codes() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": "invalid_grant", "error_description": "Bad Request"})),
        1,
    )
    .await;
    let body = assert_error(refresh(&app, "youtube").await, 400, "invalid_grant").await;
    assert_eq!(body["error_description"], "Bad Request");

    // An expired token at revoke is already revoked (RFC 7009 §2.2).
    mount(
        &app,
        "/google/revoke",
        ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
        ),
        1,
    )
    .await;
    assert_eq!(revoke(&app, "youtube").await.status(), 200);
}

/// Decision: the code carries the table name (the path segment the client called), the text the
/// preset's name: the OAuth server that failed is Google's.
#[tokio::test]
async fn a_google_502_names_the_table_in_the_code_and_google_in_the_text() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
        1,
    )
    .await;
    assert_502_names(
        exchange(&app, "youtube", REDIRECT_URI).await,
        "error_youtube_server_error",
        "Google",
    )
    .await;
}

// --- Generic with client_secret_basic --------------------------------------------------------

#[tokio::test]
async fn generic_basic_auth_sends_credentials_in_the_header_only() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/acme/token",
        ResponseTemplate::new(200).set_body_json(kick_tokens()),
        2,
    )
    .await;

    assert_eq!(exchange(&app, "acme", REDIRECT_URI).await.status(), 200);
    assert_eq!(refresh(&app, "acme").await.status(), 200);

    let got = received(&app, "/acme/token").await;
    assert_eq!(
        got,
        [
            (
                map(&[
                    ("grant_type", "authorization_code"),
                    ("code", CODE),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", VERIFIER),
                ]),
                Some(ACME_BASIC.to_owned())
            ),
            (
                map(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", REFRESH_TOKEN)
                ]),
                Some(ACME_BASIC.to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn generic_revoke_is_rfc_7009_with_client_auth() {
    let app = spawn_providers().await;
    mount(&app, "/acme/revoke", ResponseTemplate::new(200), 1).await;

    assert_eq!(revoke(&app, "acme").await.status(), 200);
    assert_eq!(
        received(&app, "/acme/revoke").await,
        [(
            map(&[
                ("token", REFRESH_TOKEN),
                ("token_type_hint", "refresh_token")
            ]),
            Some(ACME_BASIC.to_owned())
        )]
    );
}

#[tokio::test]
async fn a_generic_502_names_the_capitalised_table() {
    let app = spawn_providers().await;
    mount(&app, "/acme/token", ResponseTemplate::new(503), 1).await;
    assert_502_names(
        exchange(&app, "acme", REDIRECT_URI).await,
        "error_acme_server_error",
        "Acme",
    )
    .await;
}

// --- Loopback redirect with any port (RFC 8252 §7.3) -----------------------------------------

#[tokio::test]
async fn the_wildcard_port_entry_accepts_any_valid_port() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(200).set_body_json(google_tokens()),
        3,
    )
    .await;
    for port in ["1", "8080", "65535"] {
        let uri = format!("http://127.0.0.1:{port}/callback");
        let response = exchange(&app, "youtube", &uri).await;
        assert_eq!(response.status(), 200, "{uri}");
    }
    let sent: Vec<String> = received(&app, "/google/token")
        .await
        .into_iter()
        .map(|(form, _)| form["redirect_uri"].clone())
        .collect();
    assert_eq!(
        sent,
        [
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:8080/callback",
            "http://127.0.0.1:65535/callback"
        ]
    );
}

#[tokio::test]
async fn the_wildcard_port_entry_rejects_everything_else() {
    let app = spawn_providers().await;
    mount(
        &app,
        "/google/token",
        ResponseTemplate::new(200).set_body_json(google_tokens()),
        0,
    )
    .await;
    for uri in [
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:01420/callback",
        "http://127.0.0.1:/callback",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:*/callback",
        "http://127.0.0.2:8080/callback",
        "http://localhost:8080/callback",
        "http://127.0.0.1:8080/other",
        "http://127.0.0.1:8080/callback?x=1",
        "http://127.0.0.1:8080/callback/",
        "https://127.0.0.1:8080/callback",
        "http://127.0.0.1:8080@evil.example/callback",
    ] {
        assert_error(exchange(&app, "youtube", uri).await, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn kick_has_no_wildcard_port_unless_configured() {
    let app = spawn_providers().await;
    app.upstream_must_not_be_called().await;
    for uri in [
        "http://127.0.0.1:8080/callback",
        "http://localhost:1421/auth/callback",
    ] {
        assert_error(exchange(&app, "kick", uri).await, 400, "invalid_request").await;
    }
}
