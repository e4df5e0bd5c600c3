//! The front door: per-IP rate limits, `X-Forwarded-For` trust, load shedding, CORS.

use crate::helpers::{
    assert_error, exchange_body, kick_tokens, spawn_app_with, TestApp, REFRESH_TOKEN,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "/api/v1/kick/token";
const ORIGIN: &str = "https://app.example.com";

/// Replaces the test config's huge `[rate_limit]` buckets with `table` (its lines, without the
/// header).
fn with_rate_limit(toml: String, table: &str) -> String {
    let start = toml
        .find("[rate_limit]")
        .expect("test config has [rate_limit]");
    let end = start + toml[start..].find("\n\n").expect("[rate_limit] ends");
    format!("{}[rate_limit]\n{table}{}", &toml[..start], &toml[end..])
}

/// The default test buckets with `token` replaced.
fn token_bucket(per_minute: u32, burst: u32) -> String {
    format!(
        "token = {{ per_minute = {per_minute}, burst = {burst} }}\n\
         refresh = {{ per_minute = 1000000, burst = 1000000 }}\n\
         revoke = {{ per_minute = 1000000, burst = 1000000 }}\n"
    )
}

/// Adds `lines` to the `[server]` table.
fn with_server(toml: String, lines: &str) -> String {
    toml.replacen("[server]\n", &format!("[server]\n{lines}\n"), 1)
}

/// Kick answers every `/oauth/token` call with tokens; calls are counted, not limited.
async fn upstream_always_succeeds(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kick_tokens()))
        .mount(&app.upstream)
        .await;
}

async fn upstream_calls(app: &TestApp) -> usize {
    app.upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .len()
}

/// A valid exchange body with its own code, so the replay cache never answers in the provider's
/// place.
fn exchange_body_n(n: usize) -> Value {
    let mut body = exchange_body();
    body["code"] = json!(format!("RATE-LIMIT-TEST-CODE-{n}"));
    body
}

/// `/token` with a distinct code and, optionally, an `X-Forwarded-For`.
async fn exchange_from(app: &TestApp, n: usize, xff: Option<&str>) -> reqwest::Response {
    let mut request = app.http.post(app.url(TOKEN)).json(&exchange_body_n(n));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.expect("proxy answers")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After is present")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After is whole seconds")
}

#[tokio::test]
async fn token_returns_429_slow_down_with_retry_after_once_the_burst_is_spent() {
    let app = spawn_app_with(|toml| with_rate_limit(toml, &token_bucket(1, 2))).await;
    upstream_always_succeeds(&app).await;

    for n in 0..2 {
        assert_eq!(exchange_from(&app, n, None).await.status(), 200);
    }
    let refused = exchange_from(&app, 2, None).await;
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(wait > 1, "one a minute: Retry-After {wait}");
    let body = assert_error(refused, 429, "slow_down").await;
    assert_eq!(
        body["error_description"],
        format!("Too many requests; retry after {wait} seconds.")
    );
    assert_eq!(
        upstream_calls(&app).await,
        2,
        "the refused call never reached Kick"
    );

    // `/refresh` has its own bucket, and probes are never limited.
    let refreshed = app
        .post_json(
            "/api/v1/kick/refresh",
            &json!({"refresh_token": REFRESH_TOKEN}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    for _ in 0..5 {
        assert!(app.is_healthy().await);
    }
    assert_eq!(exchange_from(&app, 3, None).await.status(), 429);
}

#[tokio::test]
async fn a_refresh_sent_to_token_spends_the_token_bucket_not_the_refresh_one() {
    // The bucket is picked by path, before the body (and its grant_type) is read.
    let app = spawn_app_with(|toml| with_rate_limit(toml, &token_bucket(1, 2))).await;
    upstream_always_succeeds(&app).await;
    let refresh = json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN});
    let refresh_at_token = || app.post_json(TOKEN, &refresh);

    assert_eq!(exchange_from(&app, 0, None).await.status(), 200);
    assert_eq!(refresh_at_token().await.status(), 200);
    let refused = refresh_at_token().await;
    assert!(retry_after(&refused) >= 1);
    assert_error(refused, 429, "slow_down").await;
    assert_eq!(exchange_from(&app, 1, None).await.status(), 429);
    assert_eq!(
        upstream_calls(&app).await,
        2,
        "the refused refresh never reached Kick"
    );

    // `/refresh` keeps its own bucket.
    let refreshed = app
        .post_json(
            "/api/v1/kick/refresh",
            &json!({"refresh_token": REFRESH_TOKEN}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
}

#[tokio::test]
async fn a_one_second_wait_is_worded_in_the_singular() {
    // 60 a minute: the bucket refills within a second, so Retry-After is 1.
    let app = spawn_app_with(|toml| with_rate_limit(toml, &token_bucket(60, 1))).await;
    upstream_always_succeeds(&app).await;

    assert_eq!(exchange_from(&app, 0, None).await.status(), 200);
    let refused = exchange_from(&app, 1, None).await;
    assert_eq!(retry_after(&refused), 1);
    let body = assert_error(refused, 429, "slow_down").await;
    assert_eq!(
        body["error_description"],
        "Too many requests; retry after 1 second."
    );
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_gives_each_client_its_own_bucket() {
    let app = spawn_app_with(|toml| {
        with_rate_limit(
            toml,
            &format!(
                "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
                token_bucket(1, 1)
            ),
        )
    })
    .await;
    upstream_always_succeeds(&app).await;

    assert_eq!(
        exchange_from(&app, 0, Some("203.0.113.1")).await.status(),
        200
    );
    let refused = exchange_from(&app, 1, Some("203.0.113.1")).await;
    assert_error(refused, 429, "slow_down").await;
    // Another client behind the same proxy is not affected.
    assert_eq!(
        exchange_from(&app, 2, Some("203.0.113.2")).await.status(),
        200
    );
    // The rightmost untrusted hop is the client: a spent address forged on the left changes
    // nothing, and the hop the proxy appended gets its own (fresh) bucket...
    let chained = exchange_from(&app, 3, Some("203.0.113.1, 198.51.100.7")).await;
    assert_eq!(chained.status(), 200);
    // ...which is the one that address now has spent.
    let again = exchange_from(&app, 4, Some("198.51.100.7")).await;
    assert_error(again, 429, "slow_down").await;
    // A spent address written left of a fresh one is not the client either.
    let forged = exchange_from(&app, 5, Some("198.51.100.7, 192.0.2.44")).await;
    assert_eq!(forged.status(), 200);
    assert_eq!(upstream_calls(&app).await, 4);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|toml| {
        with_rate_limit(
            toml,
            &format!("trusted_proxies = []\n{}", token_bucket(1, 1)),
        )
    })
    .await;
    upstream_always_succeeds(&app).await;

    assert_eq!(
        exchange_from(&app, 0, Some("203.0.113.1")).await.status(),
        200
    );
    // A different spoofed address per request still spends the socket address's bucket.
    for (n, spoofed) in ["203.0.113.2", "198.51.100.7", "203.0.113.3, 192.0.2.1"]
        .into_iter()
        .enumerate()
    {
        let refused = exchange_from(&app, n + 1, Some(spoofed)).await;
        assert_error(refused, 429, "slow_down").await;
    }
    assert_eq!(upstream_calls(&app).await, 1);
}

#[tokio::test]
async fn excess_requests_are_shed_with_503_at_once_while_health_answers() {
    let app = spawn_app_with(|toml| {
        format!("{toml}\n[limits]\nmax_concurrent_requests = 4\nbreaker_failures = 0\n")
    })
    .await;
    // Four requests find Kick hanging past the 2 s deadline; later ones find it fast again.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(kick_tokens())
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(4)
        .mount(&app.upstream)
        .await;
    upstream_always_succeeds(&app).await;

    let app = std::sync::Arc::new(app);
    let wave: Vec<_> = (0..20)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let response = exchange_from(&app, n, None).await;
                (response, started.elapsed())
            })
        })
        .collect();

    // While the admitted requests hang, the process still answers its probes, quickly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(app.is_healthy().await, "/healthz answers under overload");
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));

    let mut shed = 0;
    for handle in wave {
        let (response, took) = handle.await.expect("request task");
        if response.status() == 503 {
            assert!(took < Duration::from_secs(1), "a 503 took {took:?}");
            assert_eq!(retry_after(&response), 1);
            assert_error(response, 503, "temporarily_unavailable").await;
            shed += 1;
        } else {
            assert!(
                took >= Duration::from_millis(1500),
                "admitted ones hung: {took:?}"
            );
        }
    }
    assert!(shed >= 16, "only {shed} of 20 were shed with a cap of 4");

    // The slots are free again.
    assert_eq!(exchange_from(&app, 100, None).await.status(), 200);
}

#[tokio::test]
async fn cors_allows_a_listed_origin_and_preflights_skip_the_limits() {
    let app = spawn_app_with(|toml| {
        let toml = with_server(toml, &format!("cors_allowed_origins = [\"{ORIGIN}\"]"));
        with_rate_limit(toml, &token_bucket(1, 1))
    })
    .await;
    upstream_always_succeeds(&app).await;

    for _ in 0..3 {
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(TOKEN))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-request-id",
            )
            .send()
            .await
            .expect("preflight");
        assert!(preflight.status().is_success(), "{}", preflight.status());
        let h = preflight.headers();
        assert_eq!(h["access-control-allow-origin"], ORIGIN);
        assert!(h["access-control-allow-methods"]
            .to_str()
            .is_ok_and(|m| m.contains("POST")));
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .expect("ASCII")
            .to_ascii_lowercase();
        assert!(allowed.contains("content-type") && allowed.contains("x-request-id"));
        assert!(h.contains_key("access-control-max-age"));
    }

    // The preflights spent nothing: the one request the bucket allows still goes through.
    let post = app
        .http
        .post(app.url(TOKEN))
        .header("origin", ORIGIN)
        .json(&exchange_body_n(0))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 200);
    assert_eq!(post.headers()["access-control-allow-origin"], ORIGIN);
    assert!(post.headers()["access-control-expose-headers"]
        .to_str()
        .is_ok_and(|h| h.to_ascii_lowercase().contains("x-request-id")));

    // A 429 is readable by the webview too.
    let limited = app
        .http
        .post(app.url(TOKEN))
        .header("origin", ORIGIN)
        .json(&exchange_body_n(1))
        .send()
        .await
        .expect("post");
    assert_eq!(limited.headers()["access-control-allow-origin"], ORIGIN);
    assert_error(limited, 429, "slow_down").await;
}

#[tokio::test]
async fn cors_refuses_an_origin_not_listed() {
    let app =
        spawn_app_with(|toml| with_server(toml, &format!("cors_allowed_origins = [\"{ORIGIN}\"]")))
            .await;
    upstream_always_succeeds(&app).await;
    // Neither a look-alike nor the same host on another scheme.
    for evil in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com.evil.net",
    ] {
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(TOKEN))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        assert!(
            !preflight
                .headers()
                .contains_key("access-control-allow-origin"),
            "preflight from {evil}"
        );
        let post = app
            .http
            .post(app.url(TOKEN))
            .header("origin", evil)
            .json(&exchange_body_n(0))
            .send()
            .await
            .expect("post");
        assert!(
            !post.headers().contains_key("access-control-allow-origin"),
            "POST from {evil}"
        );
    }
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app_with(|toml| toml).await;
    upstream_always_succeeds(&app).await;
    let post = app
        .http
        .post(app.url(TOKEN))
        .header("origin", ORIGIN)
        .json(&exchange_body_n(0))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 200);
    assert!(!post
        .headers()
        .keys()
        .any(|k| k.as_str().starts_with("access-control-")));
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(TOKEN))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(!preflight
        .headers()
        .keys()
        .any(|k| k.as_str().starts_with("access-control-")));
    assert_error(preflight, 405, "invalid_request").await;
}
