//! Prometheus metrics on the admin listener: the right series with the right labels appear after
//! requests, and no label carries a token, a code or an address.

use crate::helpers::*;
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// The sum of the samples of `name` whose labels include every `(key, value)`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            let sample: f64 = line.rsplit(' ').next()?.parse().ok()?;
            found = Some(found.unwrap_or(0.0) + sample);
        }
    }
    found
}

/// The recorder is process-wide and every test app records into it once it is installed: each
/// metrics test serves its provider under a name of its own (on the kick preset), so requests of
/// tests running alongside never land in the series it counts.
fn own_provider(toml: String, name: &str) -> String {
    toml.replace("[server]\n", "[server]\nadmin_listen = \"127.0.0.1:0\"\n")
        .replace(
            "[providers.kick]\n",
            &format!("[providers.{name}]\npreset = \"kick\"\n"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_upstream_outcomes_and_latencies_appear_with_their_labels() {
    let app = spawn_app_with(|toml| own_provider(toml, "metrics-a")).await;
    let body = exchange_body();
    let exchange = || app.post_json("/api/v1/metrics-a/token", &body);
    for response in [
        ResponseTemplate::new(200).set_body_json(kick_tokens()),
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        ResponseTemplate::new(503),
    ] {
        Mock::given(path("/oauth/token"))
            .respond_with(response)
            .up_to_n_times(1)
            .mount(&app.upstream)
            .await;
    }
    let scrape = || app.scrape_metrics();
    let before = scrape().await;
    let count = |text: &str, labels: &[(&str, &str)]| {
        value(text, "kick_proxy_requests_total", labels).unwrap_or(0.0)
    };

    assert_eq!(exchange().await.status(), 200);
    assert_eq!(exchange().await.status(), 400);
    assert_eq!(exchange().await.status(), 502);
    assert_eq!(
        app.post_json("/api/v1/metrics-a/token", &json!({"code": CODE}))
            .await
            .status(),
        400
    );

    let after = scrape().await;
    let token = [("provider", "metrics-a"), ("endpoint", "token")];
    for (status, error, n) in [
        ("200", "none", 1.0),
        ("400", "invalid_grant", 1.0),
        ("502", "server_error", 1.0),
        ("400", "invalid_request", 1.0),
    ] {
        let labels = [token[0], token[1], ("status", status), ("error", error)];
        assert_eq!(
            count(&after, &labels) - count(&before, &labels),
            n,
            "{status} {error}\n{after}"
        );
    }
    for outcome in ["ok", "oauth_error", "5xx"] {
        let labels = [token[0], token[1], ("outcome", outcome)];
        assert!(
            value(&after, "kick_proxy_upstream_requests_total", &labels).unwrap_or(0.0) >= 1.0,
            "upstream outcome {outcome}\n{after}"
        );
    }
    assert!(
        value(
            &after,
            "kick_proxy_request_duration_seconds_bucket",
            &[token[0], token[1], ("le", "10")]
        )
        .is_some(),
        "{after}"
    );
    assert!(value(&after, "kick_proxy_upstream_duration_seconds_count", &token).is_some());
    assert!(value(
        &after,
        "kick_proxy_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))]
    )
    .is_some());
    for secret in [CODE, VERIFIER, ACCESS_TOKEN, CLIENT_SECRET, "127.0.0.1"] {
        assert!(!after.contains(secret), "{secret} in the metrics");
    }

    // Not on the public port.
    let public = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("answer");
    assert_eq!(public.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_hits_single_flight_and_rate_limits_are_counted() {
    let app = spawn_app_with(|toml| {
        own_provider(toml, "metrics-b")
            .replace("[replay]\nwindow_secs = 0", "[replay]\nwindow_secs = 60")
            .replace(
                "revoke = { per_minute = 1000000, burst = 1000000 }",
                "revoke = { per_minute = 1, burst = 1 }",
            )
    })
    .await;
    app.upstream_succeeds().await;
    Mock::given(path("/oauth/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .mount(&app.upstream)
        .await;
    let scrape = || app.scrape_metrics();
    let before = scrape().await;

    let body = exchange_body();
    let exchange = || app.post_json("/api/v1/metrics-b/token", &body);
    assert_eq!(exchange().await.status(), 200);
    assert_eq!(exchange().await.status(), 200); // replayed
    let revoke = json!({"token": ACCESS_TOKEN});
    assert_eq!(
        app.post_json("/api/v1/metrics-b/revoke", &revoke)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json("/api/v1/metrics-b/revoke", &revoke)
            .await
            .status(),
        429
    );

    let after = scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels).unwrap_or(0.0) - value(&before, name, labels).unwrap_or(0.0)
    };
    assert_eq!(
        delta(
            "kick_proxy_replay_hits_total",
            &[("provider", "metrics-b"), ("endpoint", "token")]
        ),
        1.0
    );
    assert!(
        delta("kick_proxy_rate_limited_total", &[]) >= 1.0,
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_sent_to_token_is_counted_as_a_refresh() {
    let app = spawn_app_with(|toml| own_provider(toml, "metrics-c")).await;
    app.upstream_succeeds().await;
    let scrape = || app.scrape_metrics();
    let before = scrape().await;

    let refreshed = app
        .post_json(
            "/api/v1/metrics-c/token",
            &json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let refused = app
        .post_json(
            "/api/v1/metrics-c/token",
            &json!({"grant_type": "password", "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(refused.status(), 400);

    let after = scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels).unwrap_or(0.0) - value(&before, name, labels).unwrap_or(0.0)
    };
    let provider = ("provider", "metrics-c");
    for (endpoint, status, error, n) in [
        ("refresh", "200", "none", 1.0),
        ("token", "200", "none", 0.0),
        ("token", "400", "unsupported_grant_type", 1.0),
    ] {
        let labels = [
            provider,
            ("endpoint", endpoint),
            ("status", status),
            ("error", error),
        ];
        assert_eq!(
            delta("kick_proxy_requests_total", &labels),
            n,
            "{endpoint} {status} {error}\n{after}"
        );
    }
    assert_eq!(
        delta(
            "kick_proxy_upstream_requests_total",
            &[provider, ("endpoint", "refresh"), ("outcome", "ok")]
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(
            "kick_proxy_upstream_requests_total",
            &[provider, ("endpoint", "token")]
        ),
        0.0,
        "{after}"
    );
}
