//! The desktop client's `TokenManager` against the real stack: the proxy in front of the Kick
//! emulator, both on loopback ports, with the tokens in a real `FileTokenStore`.
//!
//! The client crate's own tests use wiremock; these show that the same promises hold when the
//! provider keeps state the way Kick does (rotating refresh tokens, revocation, expiry). The
//! manager's time is a `ManualClock`, so "2 hours later" is an `advance`, not a sleep; the only
//! real waits are bounded (a few hundred milliseconds at most, or a `timeout` that fails the test).
//! Every test checks what an app would notice (the token it gets, the error, what subscribers
//! and the store file hold) and the emulator's `stats()`, which prove what reached the provider.

use kick_emulator::Fault;
use kick_oauth_client::{
    parse_callback_url, AuthorizeRequest, Clock as _, Error as ClientError, FileTokenStore,
    ManualClock, ProxyClient, RetryPolicy, Scope, TokenManager, TokenSet, TokenStore,
    TokenTypeHint,
};
use kick_oauth_proxy::cli::dev::{DevEnvironment, DEV_REDIRECT_URI};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Kick's (and the emulator's) access token lifetime.
const LIFETIME: Duration = Duration::from_secs(7200);
/// The manager refreshes once less than this is left (issue 4, the Battles Record guide).
const REFRESH_BEFORE: Duration = Duration::from_secs(10 * 60);
/// Longest real wait for something asynchronous (the background task) before the test fails.
const BOUNDED_WAIT: Duration = Duration::from_secs(5);

/// The proxy, the emulator, the manager's clock and a private directory for the token file.
struct Stack {
    env: DevEnvironment,
    clock: ManualClock,
    store_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Quick retries for `502 error_kick_server_error` (and the other retry-safe failures), so a
/// test that exercises them takes milliseconds.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(1),
    }
}

impl Stack {
    async fn start() -> Self {
        let env = DevEnvironment::start("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("emulator and proxy start");
        let dir = tempfile::tempdir().expect("temporary directory");
        // A directory the store has to create, as on an app's first run.
        let store_path = dir.path().join("battles-record").join("kick-tokens.json");
        Self {
            env,
            // A fixed, whole-second start: expires_at values are exact.
            clock: ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            store_path,
            _dir: dir,
        }
    }

    fn proxy(&self) -> ProxyClient {
        ProxyClient::builder(self.env.proxy_url(), "kick")
            .timeout(Duration::from_secs(5))
            .retry_policy(quick_retries())
            .build()
            .expect("proxy client")
    }

    /// A manager as an app builds it at start-up: file store, manual clock, default 10 minutes.
    async fn manager(&self) -> TokenManager {
        TokenManager::builder(
            self.proxy(),
            Arc::new(FileTokenStore::new(&self.store_path)),
        )
        .clock(Arc::new(self.clock.clone()))
        .build()
        .await
        .expect("manager builds")
    }

    /// The whole login: the browser step at the emulator, then `complete_login` through the proxy.
    async fn log_in(&self, manager: &TokenManager) -> TokenSet {
        let client_id = self.env.client.client_id.clone();
        let (url, pending) = AuthorizeRequest::new(client_id, DEV_REDIRECT_URI)
            .authorize_url(self.env.emulator.authorize_url())
            .scopes([Scope::UserRead, Scope::ChannelRead])
            .build()
            .expect("authorize URL");
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("HTTP client");
        let answer = browser.get(url).send().await.expect("emulator answers");
        assert_eq!(answer.status(), 302, "authorize redirects");
        let location = answer.headers()[reqwest::header::LOCATION]
            .to_str()
            .expect("ASCII Location")
            .to_owned();
        let code = parse_callback_url(&location, &pending).expect("the callback carries a code");
        let tokens = manager
            .complete_login(&code, &pending)
            .await
            .expect("login through the proxy");
        assert_eq!(self.env.emulator.stats().authorization_code_grants_ok, 1);
        assert_eq!(tokens.expires_at, self.clock.now() + LIFETIME);
        assert!(
            tokens.refresh_token.is_some(),
            "Kick issues a refresh token"
        );
        tokens
    }

    /// Moves both clocks (the app's and Kick's) forward: time passes for everybody.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.env.emulator.advance_clock(by);
    }

    /// Moves time to 9 minutes before `tokens` expire: inside the 10-minute refresh window.
    fn enter_refresh_window(&self, tokens: &TokenSet) {
        let target = tokens.expires_at - Duration::from_secs(9 * 60);
        let by = target
            .duration_since(self.clock.now())
            .expect("the window is ahead");
        self.advance(by);
    }

    /// What the token file holds, read by a store of its own (as the next app start would).
    async fn stored(&self) -> Option<TokenSet> {
        FileTokenStore::new(&self.store_path)
            .load()
            .await
            .expect("the token file is readable")
    }

    async fn shutdown(self) {
        self.env.shutdown().await;
    }
}

/// Same tokens, compared through their secrets (the secret types have no `PartialEq`).
fn assert_same_set(actual: &TokenSet, expected: &TokenSet, what: &str) {
    assert_eq!(
        actual.access_token.secret(),
        expected.access_token.secret(),
        "{what}: access token"
    );
    assert_eq!(
        actual.refresh_token.as_ref().map(|t| t.secret()),
        expected.refresh_token.as_ref().map(|t| t.secret()),
        "{what}: refresh token"
    );
    assert_eq!(actual.expires_at, expected.expires_at, "{what}: expires_at");
    assert_eq!(actual.scope, expected.scope, "{what}: scope");
    assert_eq!(actual.token_type, expected.token_type, "{what}: token type");
}

#[tokio::test]
async fn the_token_is_refreshed_once_less_than_ten_minutes_remain_and_not_before() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let first = stack.log_in(&manager).await;
    assert_same_set(
        &stack.stored().await.expect("saved at login"),
        &first,
        "store after login",
    );

    // Two hours left: the login's token, no call to the proxy.
    let token = manager.get_token().await.expect("a token");
    assert_eq!(token.secret(), first.access_token.secret());
    // 11 minutes left: still no refresh.
    stack.advance(LIFETIME - REFRESH_BEFORE - Duration::from_secs(60));
    let token = manager.get_token().await.expect("a token");
    assert_eq!(token.secret(), first.access_token.secret());
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 0, "no refresh with > 10 min left");
    assert_eq!(stats.token_requests, 1, "only the login's exchange");

    // 9 minutes left: refreshed before expiry.
    stack.advance(Duration::from_secs(2 * 60));
    assert!(first.remaining(stack.clock.now()) < REFRESH_BEFORE);
    assert!(!first.is_expired(stack.clock.now()));
    let token = manager.get_token().await.expect("a refreshed token");
    assert_ne!(token.secret(), first.access_token.secret(), "a new token");
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 1, "exactly one refresh");
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.token_errors, 0);

    let current = manager.current().expect("logged in");
    assert_eq!(current.access_token.secret(), token.secret());
    assert_eq!(current.expires_at, stack.clock.now() + LIFETIME);
    let new_refresh = current.refresh_token.as_ref().expect("a refresh token");
    assert_ne!(
        new_refresh.secret(),
        first.refresh_token.as_ref().expect("first").secret(),
        "Kick rotated the refresh token and the manager kept the new one"
    );
    assert_same_set(
        &stack.stored().await.expect("saved after refresh"),
        &current,
        "store after refresh",
    );

    // Fresh again: no second refresh.
    let again = manager.get_token().await.expect("a token");
    assert_eq!(again.secret(), token.secret());
    assert_eq!(stack.env.emulator.stats().refresh_grants_ok, 1);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_share_one_refresh() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let first = stack.log_in(&manager).await;
    stack.enter_refresh_window(&first);
    // The refresh takes 300 ms at Kick, so every caller arrives while it is in flight.
    stack
        .env
        .emulator
        .set_fault_times(Fault::Latency(Duration::from_millis(300)), 1);

    let start = Arc::new(tokio::sync::Barrier::new(20));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let manager = manager.clone();
        let start = Arc::clone(&start);
        callers.spawn(async move {
            start.wait().await;
            manager.get_token().await
        });
    }
    let mut tokens = Vec::new();
    while let Some(joined) = callers.join_next().await {
        let token = joined
            .expect("caller task")
            .expect("every caller gets a token");
        tokens.push(token.secret().to_owned());
    }

    assert_eq!(tokens.len(), 20);
    let new = manager.current().expect("logged in").access_token;
    assert_ne!(new.secret(), first.access_token.secret());
    assert!(
        tokens.iter().all(|t| t == new.secret()),
        "all 20 callers got the one new token"
    );
    let stats = stack.env.emulator.stats();
    assert_eq!(
        stats.refresh_grants_ok, 1,
        "exactly one refresh reached Kick"
    );
    assert_eq!(stats.token_requests, 2, "the exchange and one refresh");
    assert_eq!(stats.faults_injected, 1);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_on_a_dead_grant_cost_one_refused_refresh() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let _first = stack.log_in(&manager).await;
    stack.advance(Duration::from_secs(31 * 24 * 3600));
    stack
        .env
        .emulator
        .set_fault_times(Fault::Latency(Duration::from_millis(300)), 1);

    let start = Arc::new(tokio::sync::Barrier::new(20));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let manager = manager.clone();
        let start = Arc::clone(&start);
        callers.spawn(async move {
            start.wait().await;
            manager.get_token().await
        });
    }
    while let Some(joined) = callers.join_next().await {
        let error = joined.expect("caller task").expect_err("the grant is dead");
        assert!(
            error.is_login_required(),
            "every caller: log in again, got {error:?}"
        );
    }
    assert!(manager.current().is_none());
    assert!(!stack.store_path.exists());
    let stats = stack.env.emulator.stats();
    assert_eq!(
        stats.token_requests, 2,
        "the exchange and one refused refresh"
    );
    assert_eq!(stats.token_errors, 1);
    stack.shutdown().await;
}

/// What an app sees once the grant is dead: "log in again", no tokens anywhere, subscribers told.
async fn assert_logged_out(
    stack: &Stack,
    manager: &TokenManager,
    updates: &mut tokio::sync::watch::Receiver<Option<TokenSet>>,
) {
    let error = manager.get_token().await.expect_err("the grant is dead");
    assert!(error.is_login_required(), "log in again, got {error:?}");
    assert!(matches!(error, ClientError::LoginRequired), "{error:?}");
    assert!(!error.is_temporary(), "{error:?}");
    assert!(manager.current().is_none());
    assert!(updates.has_changed().expect("manager alive"));
    assert!(
        updates.borrow_and_update().is_none(),
        "subscribers see None"
    );
    assert!(!stack.store_path.exists(), "the token file is removed");
    assert!(stack.stored().await.is_none());
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 0);
    assert_eq!(
        stats.token_errors, 1,
        "one refresh reached Kick and was refused"
    );

    // Asking again does not hammer Kick with a dead refresh token.
    let again = manager.get_token().await.expect_err("still logged out");
    assert!(again.is_login_required(), "{again:?}");
    assert_eq!(
        stack.env.emulator.stats().token_requests,
        stats.token_requests
    );
}

#[tokio::test]
async fn a_revoked_grant_surfaces_as_log_in_again_and_clears_the_store() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let first = stack.log_in(&manager).await;
    let mut updates = manager.subscribe();
    updates.borrow_and_update();

    // The user revokes the app's access (here through the proxy's /revoke, as another device would).
    stack
        .proxy()
        .revoke(
            first
                .refresh_token
                .as_ref()
                .expect("refresh token")
                .secret(),
            Some(TokenTypeHint::RefreshToken),
        )
        .await
        .expect("revoked");
    assert_eq!(stack.env.emulator.stats().revocations_of_known_tokens, 1);

    stack.enter_refresh_window(&first);
    assert_logged_out(&stack, &manager, &mut updates).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn an_expired_refresh_token_surfaces_as_log_in_again() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let _first = stack.log_in(&manager).await;
    let mut updates = manager.subscribe();
    updates.borrow_and_update();

    // The app was not run for 31 days: Kick's 30-day refresh token is gone.
    stack.advance(Duration::from_secs(31 * 24 * 3600));
    assert_logged_out(&stack, &manager, &mut updates).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_502_from_the_proxy_is_retried_and_the_refresh_recovers() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let first = stack.log_in(&manager).await;
    stack.enter_refresh_window(&first);
    // Kick fails the next token request with a 500; the proxy answers 502 error_kick_server_error.
    stack
        .env
        .emulator
        .set_fault_times(Fault::ServerError(500), 1);

    let token = manager.get_token().await.expect("recovered after a retry");
    assert_ne!(token.secret(), first.access_token.secret(), "refreshed");
    let stats = stack.env.emulator.stats();
    assert_eq!(
        stats.faults_injected, 1,
        "the first refresh attempt was the 500"
    );
    assert_eq!(
        stats.token_requests, 3,
        "exchange, faulted refresh, retried refresh"
    );
    assert_eq!(stats.refresh_grants_ok, 1, "exactly one successful refresh");
    assert_eq!(stats.token_errors, 0);
    assert_same_set(
        &stack.stored().await.expect("saved"),
        &manager.current().expect("logged in"),
        "store after the recovered refresh",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn when_retries_run_out_the_old_token_is_used_and_the_refresh_recovers_after_backoff() {
    let stack = Stack::start().await;
    let manager = TokenManager::builder(
        stack.proxy(),
        Arc::new(FileTokenStore::new(&stack.store_path)),
    )
    .clock(Arc::new(stack.clock.clone()))
    .retry_backoff(Duration::from_secs(10), Duration::from_secs(20))
    .build()
    .await
    .expect("manager builds");
    let first = stack.log_in(&manager).await;
    stack.enter_refresh_window(&first);
    // More 500s than the client's 3 attempts.
    stack
        .env
        .emulator
        .set_fault_times(Fault::ServerError(500), 3);

    // The token still works for 9 minutes: the app keeps using it rather than failing.
    let token = manager.get_token().await.expect("the still-valid token");
    assert_eq!(token.secret(), first.access_token.secret());
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.faults_injected, 3, "three attempts, all 502");
    assert_eq!(stats.refresh_grants_ok, 0);

    // Within the manager's backoff: no new attempt.
    let token = manager.get_token().await.expect("the still-valid token");
    assert_eq!(token.secret(), first.access_token.secret());
    assert_eq!(
        stack.env.emulator.stats().token_requests,
        stats.token_requests
    );

    // After it (at most 10 s, jittered), Kick is back and the refresh goes through.
    stack.advance(Duration::from_secs(10));
    let token = manager.get_token().await.expect("refreshed");
    assert_ne!(token.secret(), first.access_token.secret());
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.faults_injected, 3);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_store_round_trips_into_a_new_manager_and_is_private() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let first = stack.log_in(&manager).await;

    // The next app start: a new manager on the same file.
    let restarted = stack.manager().await;
    let loaded = restarted.current().expect("logged in from the file");
    assert_same_set(&loaded, &first, "reloaded set");
    assert_same_set(
        &loaded,
        &manager.current().expect("first manager"),
        "both managers",
    );
    let token = restarted.get_token().await.expect("a token");
    assert_eq!(token.secret(), first.access_token.secret());
    assert_eq!(
        stack.env.emulator.stats().token_requests,
        1,
        "no network call"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &std::path::Path| {
            std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
        };
        assert_eq!(mode(&stack.store_path), 0o600, "token file after login");
        let dir = stack.store_path.parent().expect("a directory");
        assert_eq!(mode(dir) & 0o077, 0, "the created directory is private");

        // A refresh rewrites the file (atomically, through a new file): still 0600.
        stack.enter_refresh_window(&first);
        let refreshed = restarted.get_token().await.expect("refreshed");
        assert_ne!(refreshed.secret(), first.access_token.secret());
        assert_eq!(mode(&stack.store_path), 0o600, "token file after refresh");
        assert_same_set(
            &stack.stored().await.expect("saved"),
            &restarted.current().expect("logged in"),
            "store after refresh",
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_background_task_refreshes_ahead_of_expiry_without_a_caller() {
    let stack = Stack::start().await;
    let manager = stack.manager().await;
    let _refresher = manager.spawn_refresh_task();
    let first = stack.log_in(&manager).await;
    let mut updates = manager.subscribe();
    updates.borrow_and_update();

    let mut previous = first;
    for round in 1..=2u64 {
        stack.enter_refresh_window(&previous);
        tokio::time::timeout(BOUNDED_WAIT, updates.changed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no refresh within {BOUNDED_WAIT:?}"))
            .expect("manager alive");
        let fresh = updates
            .borrow_and_update()
            .clone()
            .expect("a new set, not a logout");
        assert_ne!(
            fresh.access_token.secret(),
            previous.access_token.secret(),
            "round {round}"
        );
        assert_eq!(fresh.expires_at, stack.clock.now() + LIFETIME);
        assert_eq!(
            stack.env.emulator.stats().refresh_grants_ok,
            round,
            "one refresh per window"
        );
        // The set is published, then saved: give the save a moment.
        let saved = tokio::time::timeout(BOUNDED_WAIT, async {
            loop {
                match stack.stored().await {
                    Some(saved) if saved.access_token.secret() == fresh.access_token.secret() => {
                        return saved
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: the new set never reached the file"));
        assert_same_set(&saved, &fresh, "store after background refresh");
        // A caller now gets it without another refresh.
        let token = manager.get_token().await.expect("a token");
        assert_eq!(token.secret(), fresh.access_token.secret());
        previous = fresh;
    }
    assert_eq!(stack.env.emulator.stats().refresh_grants_ok, 2);
    assert_eq!(stack.env.emulator.stats().token_errors, 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_background_task_retries_after_a_failed_refresh_and_recovers() {
    let stack = Stack::start().await;
    let manager = TokenManager::builder(
        stack.proxy(),
        Arc::new(FileTokenStore::new(&stack.store_path)),
    )
    .clock(Arc::new(stack.clock.clone()))
    .retry_backoff(Duration::from_secs(10), Duration::from_secs(20))
    .build()
    .await
    .expect("manager builds");
    let _refresher = manager.spawn_refresh_task();
    let first = stack.log_in(&manager).await;
    let mut updates = manager.subscribe();
    updates.borrow_and_update();
    // Kick is down for the background task's first attempt (all 3 of the client's tries).
    stack
        .env
        .emulator
        .set_fault_times(Fault::ServerError(500), 3);

    stack.enter_refresh_window(&first);
    let attempted = tokio::time::timeout(BOUNDED_WAIT, async {
        while stack.env.emulator.stats().faults_injected < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(attempted.is_ok(), "the background task tried to refresh");
    assert!(
        !updates.has_changed().expect("manager alive"),
        "nothing published yet"
    );
    let token = manager.get_token().await.expect("the still-valid token");
    assert_eq!(token.secret(), first.access_token.secret());

    // After the manager's backoff (at most 10 s of its clock), the task tries again and succeeds.
    stack.advance(Duration::from_secs(10));
    tokio::time::timeout(BOUNDED_WAIT, updates.changed())
        .await
        .expect("the retry within the bounded wait")
        .expect("manager alive");
    let fresh = updates.borrow_and_update().clone().expect("a new set");
    assert_ne!(fresh.access_token.secret(), first.access_token.secret());
    let stats = stack.env.emulator.stats();
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.faults_injected, 3);
    stack.shutdown().await;
}
