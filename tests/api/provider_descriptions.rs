//! A provider's `error_description` reaches the caller only when it carries none of the request's
//! secrets (issue #12, item 3): the client secret (current and next), the code, the verifier or
//! the token are looked for in the whole text, wherever they stand, before it is cut to 512
//! characters. A description that carries one is dropped and the code's fixed text answers.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "/api/v1/kick/token";
const REFRESH: &str = "/api/v1/kick/refresh";
const REVOKE: &str = "/api/v1/kick/revoke";
const NEXT_SECRET: &str = "next-client-secret-CANARY";
/// What the proxy says for `invalid_grant` when it does not repeat the provider's text.
const INVALID_GRANT_TEXT: &str = "The authorization grant or refresh token is invalid, expired, \
                                  revoked or was issued to another client.";

/// Where a secret stands in a provider's description: after `at` characters of filler. 500 is
/// issue #12's body: the secret starts 12 characters before the 512-character cut.
const PLACES: [(&str, usize); 4] = [
    ("at the start", 0),
    ("in the middle", 200),
    ("straddling the cut", 500),
    ("after the cut", 600),
];

/// `at` characters of filler, `secret`, then a little more text.
fn description_with(secret: &str, at: usize) -> String {
    format!("{}{secret} was not accepted", "A".repeat(at))
}

fn provider_refuses_with(code: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .set_body_json(json!({"error": code, "error_description": description}))
}

/// Asserts that no 8 characters in a row of `secret` appear in `text`: so no prefix of 8 or more
/// characters, and no other piece of it either.
fn assert_no_piece_of(secret: &str, text: &str, case: &str) {
    for piece in secret.as_bytes().windows(8) {
        let piece = std::str::from_utf8(piece).expect("ASCII secret");
        assert!(
            !text.contains(piece),
            "{case}: `{piece}` of the secret reached the caller: {text}"
        );
    }
}

/// The caller's answer: `status`, `error`, the fixed `description`, and no piece of `secret`.
async fn assert_dropped(
    response: reqwest::Response,
    status: u16,
    code: &str,
    description: &str,
    secret: &str,
    case: &str,
) {
    let body = assert_error(response, status, code).await;
    assert_no_piece_of(secret, &body.to_string(), case);
    assert_eq!(
        body,
        json!({"error": code, "error_description": description}),
        "{case}: the provider's description is dropped for the fixed text"
    );
}

/// Mounts `response` for `POST /oauth/token`, expected once; what was mounted before is checked
/// and removed first.
async fn provider_answers_once(app: &TestApp, response: ResponseTemplate) {
    app.upstream.verify().await;
    app.upstream.reset().await;
    app.upstream_answers(response, 1).await;
}

#[tokio::test]
async fn a_code_exchange_never_shows_the_client_secret_code_or_verifier_a_provider_echoes() {
    let app = spawn_app().await;
    for (name, secret) in [
        ("client secret", CLIENT_SECRET),
        ("code", CODE),
        ("verifier", VERIFIER),
    ] {
        for (place, at) in PLACES {
            let case = format!("{name} {place}");
            provider_answers_once(
                &app,
                provider_refuses_with("invalid_grant", &description_with(secret, at)),
            )
            .await;

            let response = app.exchange().await;

            assert_dropped(
                response,
                400,
                "invalid_grant",
                INVALID_GRANT_TEXT,
                secret,
                &case,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_refresh_never_shows_the_refresh_token_or_client_secret_a_provider_echoes() {
    let app = spawn_app().await;
    for (name, secret) in [
        ("refresh token", REFRESH_TOKEN),
        ("client secret", CLIENT_SECRET),
    ] {
        for (place, at) in PLACES {
            let case = format!("{name} {place}");
            provider_answers_once(
                &app,
                provider_refuses_with("invalid_grant", &description_with(secret, at)),
            )
            .await;

            let response = app
                .post_form(REFRESH, &format!("refresh_token={REFRESH_TOKEN}"))
                .await;

            assert_dropped(
                response,
                400,
                "invalid_grant",
                INVALID_GRANT_TEXT,
                secret,
                &case,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn the_next_client_secret_is_never_shown_either() {
    let app = spawn_app_with(|toml| {
        toml.replace(
            &format!("client_secret = \"{CLIENT_SECRET}\""),
            &format!("client_secret = \"{CLIENT_SECRET}\"\nnext_client_secret = \"{NEXT_SECRET}\""),
        )
    })
    .await;
    for (place, at) in PLACES {
        let case = format!("next secret {place}, current secret in use");
        provider_answers_once(
            &app,
            provider_refuses_with("invalid_grant", &description_with(NEXT_SECRET, at)),
        )
        .await;

        let response = app.exchange().await;

        assert_dropped(
            response,
            400,
            "invalid_grant",
            INVALID_GRANT_TEXT,
            NEXT_SECRET,
            &case,
        )
        .await;
        assert_eq!(
            app.upstream_forms().await[0]["client_secret"],
            CLIENT_SECRET,
            "{case}"
        );
    }
}

#[tokio::test]
async fn during_a_rotation_the_refused_current_secret_is_never_shown() {
    let app = spawn_app_with(|toml| {
        toml.replace(
            &format!("client_secret = \"{CLIENT_SECRET}\""),
            &format!("client_secret = \"{CLIENT_SECRET}\"\nnext_client_secret = \"{NEXT_SECRET}\""),
        )
    })
    .await;
    // The current secret is refused; the next one is accepted, and the grant error that comes
    // with it quotes the old secret across the cut.
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!(
            "client_secret={CLIENT_SECRET}"
        )))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .expect(1)
        .mount(&app.upstream)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains(format!("client_secret={NEXT_SECRET}")))
        .respond_with(provider_refuses_with(
            "invalid_grant",
            &description_with(CLIENT_SECRET, 500),
        ))
        .expect(1)
        .mount(&app.upstream)
        .await;

    let response = app.exchange().await;

    assert_dropped(
        response,
        400,
        "invalid_grant",
        INVALID_GRANT_TEXT,
        CLIENT_SECRET,
        "old secret straddling the cut after a rotation",
    )
    .await;
}

#[tokio::test]
async fn a_revocation_error_never_shows_the_token_a_provider_echoes() {
    let app = spawn_app().await;
    Mock::given(path("/oauth/revoke"))
        .respond_with(provider_refuses_with(
            "unsupported_token_type",
            &description_with(ACCESS_TOKEN, 500),
        ))
        .expect(1)
        .mount(&app.upstream)
        .await;

    let response = app
        .post_form(REVOKE, &format!("token={ACCESS_TOKEN}"))
        .await;

    assert_dropped(
        response,
        400,
        "unsupported_token_type",
        "The provider rejected the request.",
        ACCESS_TOKEN,
        "token straddling the cut",
    )
    .await;
}

#[tokio::test]
async fn a_description_without_secrets_is_still_shown_cut_to_512_characters() {
    let app = spawn_app().await;
    let description = description_with("a-harmless-word", 500);
    app.upstream_answers(provider_refuses_with("invalid_grant", &description), 1)
        .await;

    let response = app.post_json(TOKEN, &exchange_body()).await;

    let body: Value = assert_error(response, 400, "invalid_grant").await;
    assert_eq!(body["error_description"], description[..512]);
}
