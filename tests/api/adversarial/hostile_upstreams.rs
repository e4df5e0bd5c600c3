//! Upstream faults mixed with bad input: bad input is answered at once, the provider untouched,
//! whether the provider hangs or fails.

use crate::helpers::cases::*;
use crate::helpers::*;
use std::time::{Duration, Instant};
use wiremock::ResponseTemplate;

/// A request the proxy must refuse without calling the provider.
struct Bad {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn bad(
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        name,
        path,
        content_type,
        body: body.into(),
        status,
        code,
    }
}

/// Bad requests of every kind, each answered without the provider.
fn bad_requests() -> Vec<Bad> {
    let c = CODE;
    let r = REDIRECT_URI;
    vec![
        bad(
            "short verifier",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"short","redirect_uri":"{r}"}}"#),
            400,
            "invalid_request",
        ),
        bad(
            "look-alike redirect",
            TOKEN,
            JSON,
            format!(r#"{{"code":"{c}","code_verifier":"{VERIFIER}","redirect_uri":"{r}/"}}"#),
            400,
            "invalid_request",
        ),
        bad(
            "duplicate code",
            TOKEN,
            FORM,
            format!("code={c}&code={c}&{}", form_rest()),
            400,
            "invalid_request",
        ),
        bad(
            "truncated JSON",
            TOKEN,
            JSON,
            "{\"code\":",
            400,
            "invalid_request",
        ),
        bad(
            "unsupported media type",
            TOKEN,
            "text/plain",
            json_exchange(c),
            415,
            "invalid_request",
        ),
        bad(
            "over 16 KiB",
            TOKEN,
            JSON,
            json_exchange_with(&format!(r#""pad":"{}","#, "x".repeat(17 * 1024)), c),
            413,
            "invalid_request",
        ),
        bad(
            "unknown provider",
            "/api/v1/nope/token",
            JSON,
            json_exchange(c),
            404,
            "not_found",
        ),
        bad(
            "refresh token with a space",
            REFRESH,
            JSON,
            r#"{"refresh_token":"a b"}"#,
            400,
            "invalid_request",
        ),
        bad(
            "revoke with a bad hint",
            REVOKE,
            FORM,
            "token=abc&token_type_hint=id_token",
            400,
            "invalid_request",
        ),
    ]
}

/// Sends `bad`, asserts its refusal arrived within a second with no new provider call.
async fn assert_refused_at_once(app: &TestApp, bad: Bad, calls_before: usize) {
    let started = Instant::now();
    let response = app.post_raw(bad.path, bad.content_type, bad.body).await;
    let elapsed = started.elapsed();
    let expect = Expect::Refused(bad.status, bad.code);
    check(app, bad.name, response, &expect, calls_before).await;
    // The provider would hang for 30 s (the upstream deadline is 2 s here).
    assert!(
        elapsed < Duration::from_secs(1),
        "{}: {elapsed:?}",
        bad.name
    );
    assert!(
        app.is_healthy().await,
        "{}: the service stopped answering",
        bad.name
    );
}

/// A provider that takes every `POST /oauth/token` and answers only after 30 s (the proxy gives up
/// at 2 s here), mounted to be called exactly once: by the probe that shows it hangs.
async fn mount_hanging_provider(app: &TestApp) {
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_secs(30)),
        1,
    )
    .await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let probe = impatient
        .post(format!("{}/oauth/token", app.upstream.uri()))
        .body("grant_type=authorization_code")
        .send()
        .await;
    let error = probe.expect_err("the provider answered; it should hang");
    assert!(error.is_timeout(), "the provider should hang: {error}");
    assert_eq!(
        app.provider_calls().await,
        1,
        "the probe reached the provider"
    );
}

#[tokio::test]
async fn a_hanging_provider_does_not_delay_the_refusal_of_bad_input() {
    let app = spawn_app().await;
    mount_hanging_provider(&app).await;
    // Each refusal arrives at once, and the provider still has only the probe's request: the
    // proxy never waited on it (a call would have cost the 2 s deadline and ended in a 502).
    for bad in bad_requests() {
        assert_refused_at_once(&app, bad, 1).await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_at_once_while_a_valid_request_hangs_on_the_provider() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(200)
            .set_body_json(kick_tokens())
            .set_delay(Duration::from_secs(30)),
        1,
    )
    .await;
    let hanging = {
        let request = app
            .http
            .post(app.url(TOKEN))
            .header("content-type", JSON)
            .body(json_exchange(&code(150)));
        tokio::spawn(async move { request.send().await.expect("proxy answers") })
    };
    // Wait until the valid request is with the provider.
    let waited = Instant::now();
    while app.provider_calls().await == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(2),
            "never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for bad in bad_requests() {
        let name = bad.name;
        assert_refused_at_once(&app, bad, 1).await;
        assert!(
            !hanging.is_finished(),
            "{name}: the valid request should still hang"
        );
    }

    // The valid request ends at the 2 s upstream deadline, as a 502.
    let response = hanging.await.expect("task");
    assert_kick_502(response).await;
    assert_eq!(app.provider_calls().await, 1);
    assert!(app.is_healthy().await);
}

#[tokio::test]
async fn a_failing_provider_never_turns_bad_input_into_a_502() {
    let app = spawn_app().await;
    app.upstream_answers(
        ResponseTemplate::new(500).set_body_string("<html>down</html>"),
        0,
    )
    .await;
    for bad in bad_requests() {
        let response = app.post_raw(bad.path, bad.content_type, bad.body).await;
        let expect = Expect::Refused(bad.status, bad.code);
        check(&app, bad.name, response, &expect, 0).await;
        assert!(
            app.is_healthy().await,
            "{}: the service stopped answering",
            bad.name
        );
    }
}
