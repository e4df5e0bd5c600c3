//! Injected faults, observed the way a client observes them.

use std::time::{Duration, Instant};

use kick_emulator::{Emulator, EmulatorConfig, Fault};

use crate::helpers::*;

#[tokio::test]
async fn latency_delays_the_answer_and_then_answers_normally() {
    let t = spawn().await;
    let code = t.code().await;
    t.kick.set_fault(Fault::Latency(Duration::from_millis(400)));
    let started = Instant::now();
    let response = t.exchange(&code, VERIFIER, DEV_REDIRECT).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(response.status(), 200);
    assert_eq!(t.kick.stats().authorization_code_grants_ok, 1);
}

#[tokio::test]
async fn server_error_answers_the_status_with_a_small_body_and_issues_nothing() {
    let t = spawn().await;
    let code = t.code().await;
    for status in [500u16, 503] {
        t.kick.set_fault(Fault::ServerError(status));
        let response = t.exchange(&code, VERIFIER, DEV_REDIRECT).await;
        assert_eq!(response.status().as_u16(), status);
        let body = response.text().await.expect("body");
        assert!(!body.is_empty() && body.len() < 100, "{body}");
    }
    t.kick.clear_fault();
    // The code was never looked at.
    assert_eq!(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await.status(),
        200
    );
    let stats = t.kick.stats();
    assert_eq!(stats.token_requests, 3);
    assert_eq!(stats.faults_injected, 2);
}

#[tokio::test]
async fn a_counted_fault_hits_the_next_requests_only_then_clears_itself() {
    let t = spawn().await;
    let tokens = t.login().await;
    t.kick.set_fault_times(Fault::ServerError(500), 2);
    // The authorization endpoint is not faultable: it does not use up the count.
    assert_eq!(t.authorize_with(&[]).await.status(), 302);
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 500);
    // Every faultable endpoint counts, not only the token endpoint.
    assert_eq!(t.revoke("X", "access_token").await.status(), 500);
    let before = t.kick.stats();
    assert_eq!(before.faults_injected, 2);
    assert_eq!(
        before.refresh_grants_ok, 0,
        "the faulted refresh was never processed"
    );

    // Spent: the same refresh token now works, and keeps working.
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 200);
    assert_eq!(t.revoke("X", "access_token").await.status(), 200);
    let after = t.kick.stats();
    assert_eq!(after.faults_injected, 2);
    assert_eq!(after.refresh_grants_ok, 1);
}

#[tokio::test]
async fn a_counted_fault_is_replaced_by_set_fault_and_cleared_by_clear_fault() {
    let t = spawn().await;
    t.kick.set_fault_times(Fault::ServerError(500), 5);
    t.kick.clear_fault();
    assert_eq!(t.refresh("X").await.status(), 400, "cleared: invalid_grant");

    t.kick.set_fault_times(Fault::ServerError(500), 1);
    t.kick.set_fault(Fault::Waf403);
    for _ in 0..3 {
        assert_eq!(
            t.refresh("X").await.status(),
            403,
            "set_fault is not counted"
        );
    }
    t.kick.set_fault_times(Fault::ServerError(503), 0);
    assert_eq!(t.refresh("X").await.status(), 400, "zero times clears");
    assert_eq!(t.kick.stats().faults_injected, 3);
}

#[tokio::test]
async fn html_challenge_is_a_403_cloudflare_page() {
    let t = spawn().await;
    t.kick.set_fault(Fault::HtmlChallenge);
    let response = t.refresh("X").await;
    assert_eq!(response.status(), 403);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .starts_with("text/html"));
    assert_eq!(response.headers()["cf-mitigated"], "challenge");
    let body = response.text().await.expect("body");
    assert!(body.contains("<title>Just a moment...</title>"));
}

#[tokio::test]
async fn waf_403_is_json_with_an_error_that_is_not_oauth() {
    let t = spawn().await;
    t.kick.set_fault(Fault::Waf403);
    let response = t.refresh("X").await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "Request blocked by security policy.");
    assert!(!body["reference"].as_str().expect("a reference").is_empty());
    assert!(body.get("error_description").is_none());
}

#[tokio::test]
async fn empty_body_400_has_no_body() {
    let t = spawn().await;
    t.kick.set_fault(Fault::EmptyBody400);
    let response = t.refresh("X").await;
    assert_eq!(response.status(), 400);
    assert!(response.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn outage_is_404_html_on_every_api_path_and_unknown_paths() {
    let t = spawn().await;
    t.kick.set_fault(Fault::Outage);
    let token = t.refresh("X").await;
    assert_eq!(token.status(), 404);
    assert!(token.text().await.expect("body").contains("404 Not Found"));
    assert_eq!(t.revoke("X", "access_token").await.status(), 404);
    let introspect = t
        .http
        .post(t.kick.introspect_url())
        .bearer_auth("X")
        .send()
        .await
        .expect("answer");
    assert_eq!(introspect.status(), 404);
    let elsewhere = t
        .http
        .get(format!("{}/api/v1/anything", t.kick.base_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(elsewhere.status(), 404);
}

#[tokio::test]
async fn faults_do_not_apply_to_the_authorization_endpoint() {
    let t = spawn().await;
    t.kick.set_fault(Fault::Outage);
    assert_eq!(t.authorize_with(&[]).await.status(), 302);
}

#[tokio::test]
async fn connection_reset_is_a_transport_error_even_on_a_pooled_connection() {
    let t = spawn().await;
    let tokens = t.login().await;
    // The client now holds a keep-alive connection from the exchange above.
    assert_eq!(t.kick.stats().connections_accepted, 1);
    t.kick.set_fault(Fault::ConnectionReset);
    let error = t
        .http
        .post(t.kick.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .expect_err("no HTTP response");
    assert!(is_connection_reset(&error), "{error:?}");
    assert!(error.status().is_none(), "{error:?}");
    // It really was the pooled connection.
    assert_eq!(t.kick.stats().connections_accepted, 1);
    // A fresh client (new connection) fails the same way.
    let error = client()
        .post(t.kick.token_url())
        .send()
        .await
        .expect_err("no HTTP response");
    assert!(is_connection_reset(&error), "{error:?}");

    t.kick.clear_fault();
    // Nothing was processed: the refresh token was never used.
    let stats = t.kick.stats();
    assert_eq!(stats.refresh_grants_ok, 0);
    assert_eq!(stats.faults_injected, 2);
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn connection_reset_after_processing_consumes_the_code_without_answering() {
    let t = spawn().await;
    let code = t.code().await;
    t.kick.set_fault(Fault::ConnectionResetAfterProcessing);
    let error = t
        .http
        .post(t.kick.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", DEV_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect_err("no HTTP response");
    assert!(is_connection_reset(&error), "{error:?}");
    assert_eq!(t.kick.stats().authorization_code_grants_ok, 1);
    t.kick.clear_fault();
    // A retry is a replay.
    let body = expect_error(
        t.exchange(&code, VERIFIER, DEV_REDIRECT).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(body.error_description.contains("already been used"));
}

#[tokio::test]
async fn hang_never_answers_within_the_client_timeout() {
    let t = spawn().await;
    t.kick.set_fault(Fault::Hang);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let started = Instant::now();
    let error = impatient
        .post(t.kick.token_url())
        .send()
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(t.kick.stats().token_requests, 1);
}

#[tokio::test]
async fn a_fault_set_after_a_connection_opened_applies_to_it_and_clearing_restores_it() {
    let t = spawn().await;
    let tokens = t.login().await;
    t.kick.set_fault(Fault::ServerError(502));
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 502);
    t.kick.clear_fault();
    assert_eq!(t.refresh(&tokens.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let t = spawn().await;
    let url = t.kick.token_url();
    t.kick.clone().shutdown().await;
    let error = client()
        .post(&url)
        .send()
        .await
        .expect_err("nobody listens");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let kick = Emulator::start(EmulatorConfig::default())
        .await
        .expect("starts");
    let url = kick.token_url();
    let clone = kick.clone();
    drop(kick);
    assert_eq!(
        client().post(&url).send().await.expect("still up").status(),
        400
    );
    drop(clone);
    // Aborting the server task is asynchronous; give it a moment.
    let mut stopped = false;
    for _ in 0..50 {
        if client().post(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped, "the port still answers");
}

#[tokio::test]
async fn shutdown_ends_a_hanging_request() {
    let t = spawn().await;
    t.kick.set_fault(Fault::Hang);
    let request = tokio::spawn(client().post(t.kick.token_url()).send());
    // Let the request reach the emulator.
    while t.kick.stats().token_requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), t.kick.clone().shutdown())
        .await
        .expect("shutdown does not wait for the hung request");
    let outcome = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the client learns the connection is gone")
        .expect("task");
    assert!(outcome.is_err());
}

#[tokio::test]
async fn start_on_serves_on_the_given_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let kick = Emulator::start_on(listener, EmulatorConfig::default())
        .await
        .expect("starts");
    assert_eq!(kick.base_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(
        kick.introspect_url(),
        format!("http://127.0.0.1:{port}/oauth/token/introspect")
    );
    let response = client()
        .post(kick.revoke_url())
        .query(&[("token", "X")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    kick.shutdown().await;
}

#[tokio::test]
async fn http2_clients_are_served_and_see_a_reset_as_an_error() {
    let t = spawn().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let response = h2
        .post(t.kick.revoke_url())
        .query(&[("token", "X")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    t.kick.set_fault(Fault::ConnectionReset);
    let error = h2
        .post(t.kick.revoke_url())
        .query(&[("token", "X")])
        .send()
        .await
        .expect_err("no HTTP response");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
}
