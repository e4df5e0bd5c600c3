use std::time::Duration;

use kick_oauth_client::{Error, RefreshToken, TemporaryKind};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{hits, manager_with, stored, t0, token_body, token_set};

const REFRESH_PATH: &str = "/api/v1/kick/refresh";

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

async fn mount_refresh(
    server: &MockServer,
    old: &str,
    new_access: &str,
    new_refresh: Option<&str>,
) {
    Mock::given(method("POST"))
        .and(path(REFRESH_PATH))
        .and(body_json(json!({ "refresh_token": old })))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(
            new_access,
            new_refresh,
            7200,
        )))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn no_tokens_means_login_required_without_calling_the_proxy() {
    let server = MockServer::start().await;
    let s = manager_with(&server, None).await;
    assert!(matches!(
        s.manager.get_token().await,
        Err(Error::LoginRequired)
    ));
    assert_eq!(hits(&server, REFRESH_PATH).await, 0);
}

#[tokio::test]
async fn token_is_refreshed_only_once_less_than_ten_minutes_remain() {
    let server = MockServer::start().await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(11))),
    )
    .await;

    // 11 minutes left: the current token is handed out, no call.
    let token = s.manager.get_token().await.expect("valid token");
    assert_eq!(token.secret(), "acc-1");
    assert_eq!(hits(&server, REFRESH_PATH).await, 0);

    // 9 minutes left: refreshed first.
    s.clock.advance(minutes(2));
    let token = s.manager.get_token().await.expect("refreshed token");
    assert_eq!(token.secret(), "acc-2");
    let current = s.manager.current().expect("logged in");
    assert_eq!(
        current.expires_at,
        t0() + minutes(2) + Duration::from_secs(7200)
    );

    // And the fresh token is used without another call.
    assert_eq!(
        s.manager.get_token().await.expect("token").secret(),
        "acc-2"
    );
    assert_eq!(hits(&server, REFRESH_PATH).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_share_a_single_refresh() {
    let server = MockServer::start().await;
    Mock::given(path(REFRESH_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_body("acc-2", Some("ref-2"), 7200))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(1))),
    )
    .await;

    let callers: Vec<_> = (0..20)
        .map(|_| {
            let manager = s.manager.clone();
            tokio::spawn(async move { manager.get_token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.expect("no panic").expect("token");
        assert_eq!(token.secret(), "acc-2");
    }
    assert_eq!(hits(&server, REFRESH_PATH).await, 1);
}

#[tokio::test]
async fn dead_grant_clears_the_store_and_requires_a_new_login() {
    let server = MockServer::start().await;
    Mock::given(path(REFRESH_PATH))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_grant", "error_description": "token revoked"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(5))),
    )
    .await;
    let mut updates = s.manager.subscribe();

    let err = s.manager.get_token().await.expect_err("grant is dead");
    assert!(matches!(err, Error::LoginRequired));
    assert!(stored(&s.store).await.is_none(), "store cleared");
    assert!(s.manager.current().is_none());
    assert!(updates.has_changed().expect("sender alive"));
    assert!(
        updates.borrow_and_update().is_none(),
        "subscribers told: logged out"
    );

    // No more calls once the grant is known to be dead.
    assert!(matches!(
        s.manager.get_token().await,
        Err(Error::LoginRequired)
    ));
}

#[tokio::test]
async fn rotated_refresh_token_is_persisted_and_kept_when_the_answer_has_none() {
    let server = MockServer::start().await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    mount_refresh(&server, "ref-2", "acc-3", None).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(5))),
    )
    .await;

    assert_eq!(
        s.manager.get_token().await.expect("token").secret(),
        "acc-2"
    );
    let saved = stored(&s.store).await.expect("saved");
    assert_eq!(saved.access_token.secret(), "acc-2");
    assert_eq!(
        saved.refresh_token.as_ref().map(RefreshToken::secret),
        Some("ref-2")
    );

    // The next refresh uses the rotated token (body_json above), and keeps it when none comes back.
    s.clock.advance(Duration::from_secs(7200) - minutes(5));
    assert_eq!(
        s.manager.get_token().await.expect("token").secret(),
        "acc-3"
    );
    let saved = stored(&s.store).await.expect("saved");
    assert_eq!(saved.access_token.secret(), "acc-3");
    assert_eq!(
        saved.refresh_token.as_ref().map(RefreshToken::secret),
        Some("ref-2")
    );
}

#[tokio::test]
async fn subscribers_see_each_new_token_set() {
    let server = MockServer::start().await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(5))),
    )
    .await;
    let mut updates = s.manager.subscribe();
    assert!(!updates.has_changed().expect("sender alive"));

    s.manager.get_token().await.expect("token");
    tokio::time::timeout(Duration::from_secs(1), updates.changed())
        .await
        .expect("notified")
        .expect("sender alive");
    let seen = updates.borrow_and_update().clone().expect("logged in");
    assert_eq!(seen.access_token.secret(), "acc-2");
    assert_eq!(
        seen.refresh_token.as_ref().map(RefreshToken::secret),
        Some("ref-2")
    );
}

#[tokio::test]
async fn background_task_refreshes_ahead_of_expiry_without_any_caller() {
    let server = MockServer::start().await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(60))),
    )
    .await;
    let mut updates = s.manager.subscribe();
    let _task = s.manager.spawn_refresh_task();

    // 49 minutes later there are still 11 left: nothing happens.
    s.clock.advance(minutes(49));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits(&server, REFRESH_PATH).await, 0);

    // At 10 minutes left the task refreshes by itself.
    s.clock.advance(minutes(1));
    tokio::time::timeout(Duration::from_secs(5), updates.changed())
        .await
        .expect("refreshed in time")
        .expect("sender alive");
    let current = s.manager.current().expect("logged in");
    assert_eq!(current.access_token.secret(), "acc-2");
    assert_eq!(
        stored(&s.store).await.expect("saved").access_token.secret(),
        "acc-2"
    );
}

#[tokio::test]
async fn temporary_failure_keeps_the_valid_token_and_retries_after_backoff() {
    let server = MockServer::start().await;
    Mock::given(path(REFRESH_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": "temporarily_unavailable", "error_description": "busy"}),
        ))
        // The proxy client tries 3 times per refresh; the manager makes one refresh here.
        .up_to_n_times(3)
        .mount(&server)
        .await;
    mount_refresh(&server, "ref-1", "acc-2", None).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(5))),
    )
    .await;

    // Proxy down, token still good for 5 minutes: the app keeps working.
    assert_eq!(
        s.manager.get_token().await.expect("still valid").secret(),
        "acc-1"
    );
    assert_eq!(hits(&server, REFRESH_PATH).await, 3);
    // Within the backoff window nobody hammers the proxy.
    assert_eq!(
        s.manager.get_token().await.expect("still valid").secret(),
        "acc-1"
    );
    assert_eq!(hits(&server, REFRESH_PATH).await, 3);

    // After the backoff (10 s initial, jittered below that), the next call refreshes.
    s.clock.advance(Duration::from_secs(11));
    assert_eq!(
        s.manager.get_token().await.expect("refreshed").secret(),
        "acc-2"
    );
    assert_eq!(hits(&server, REFRESH_PATH).await, 4);
    assert_eq!(
        stored(&s.store)
            .await
            .expect("saved")
            .refresh_token
            .as_ref()
            .map(RefreshToken::secret),
        Some("ref-1"),
        "old refresh token kept"
    );
}

#[tokio::test]
async fn background_task_retries_a_failed_refresh_while_the_token_is_valid() {
    let server = MockServer::start().await;
    Mock::given(path(REFRESH_PATH))
        .respond_with(ResponseTemplate::new(502).set_body_json(
            json!({"error": "error_kick_server_error", "error_description": "Failed to communicate with Kick OAuth server"}),
        ))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(9))),
    )
    .await;
    let mut updates = s.manager.subscribe();
    let _task = s.manager.spawn_refresh_task();

    // The task tries at once (9 < 10 minutes left) and fails.
    for _ in 0..100 {
        if hits(&server, REFRESH_PATH).await >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits(&server, REFRESH_PATH).await, 3);
    assert!(!updates.has_changed().expect("alive"));

    // After the backoff it tries again, by itself, and succeeds.
    s.clock.advance(Duration::from_secs(11));
    tokio::time::timeout(Duration::from_secs(5), updates.changed())
        .await
        .expect("retried in time")
        .expect("alive");
    assert_eq!(
        s.manager
            .current()
            .expect("logged in")
            .access_token
            .secret(),
        "acc-2"
    );
}

#[tokio::test]
async fn expired_token_with_the_proxy_down_is_a_temporary_error() {
    let server = MockServer::start().await;
    Mock::given(path(REFRESH_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "40")
                .set_body_json(
                    json!({"error": "slow_down", "error_description": "Too many requests"}),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() - minutes(1))),
    )
    .await;

    let err = s
        .manager
        .get_token()
        .await
        .expect_err("nothing valid to hand out");
    assert!(matches!(
        err,
        Error::Temporary {
            kind: TemporaryKind::RateLimited,
            ..
        }
    ));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(40)));
    // Asking again within Retry-After does not call the proxy again, and says how long to wait.
    let again = s.manager.get_token().await.expect_err("still waiting");
    assert!(again.is_temporary());
    assert!(again
        .retry_after()
        .is_some_and(|d| d <= Duration::from_secs(40)));
    // The grant is not thrown away for a temporary problem.
    assert!(stored(&s.store).await.is_some());
}

#[tokio::test]
async fn expired_token_without_refresh_token_requires_login() {
    let server = MockServer::start().await;
    let s = manager_with(&server, Some(token_set("acc-1", None, t0() + minutes(5)))).await;
    assert_eq!(
        s.manager
            .get_token()
            .await
            .expect("valid until expiry")
            .secret(),
        "acc-1"
    );
    s.clock.advance(minutes(5));
    assert!(matches!(
        s.manager.get_token().await,
        Err(Error::LoginRequired)
    ));
    assert!(stored(&s.store).await.is_none());
    assert_eq!(hits(&server, REFRESH_PATH).await, 0);
}

#[tokio::test]
async fn force_refresh_after_a_401_gets_a_new_token_even_if_not_near_expiry() {
    let server = MockServer::start().await;
    mount_refresh(&server, "ref-1", "acc-2", Some("ref-2")).await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(100))),
    )
    .await;
    assert_eq!(
        s.manager.force_refresh().await.expect("refreshed").secret(),
        "acc-2"
    );
}

#[tokio::test]
async fn logout_revokes_both_tokens_clears_the_store_and_tells_subscribers() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/kick/revoke"))
        .and(body_json(
            json!({"token": "ref-1", "token_type_hint": "refresh_token"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/kick/revoke"))
        .and(body_json(
            json!({"token": "acc-1", "token_type_hint": "access_token"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let s = manager_with(
        &server,
        Some(token_set("acc-1", Some("ref-1"), t0() + minutes(100))),
    )
    .await;
    let mut updates = s.manager.subscribe();
    s.manager.logout().await.expect("logged out");
    assert!(stored(&s.store).await.is_none());
    assert!(updates.borrow_and_update().is_none());
    assert!(matches!(
        s.manager.get_token().await,
        Err(Error::LoginRequired)
    ));
}
