use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kick_oauth_client::{
    AccessToken, ManualClock, MemoryTokenStore, ProxyClient, RefreshToken, RetryPolicy,
    TokenManager, TokenSet, TokenStore,
};
use serde_json::{json, Value};
use wiremock::MockServer;

/// A fixed "now" for manual clocks: 2023-11-14T22:13:20Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Fast retries so tests do not wait on production backoff.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn proxy_for(server: &MockServer) -> ProxyClient {
    ProxyClient::builder(server.uri(), "kick")
        .retry_policy(fast_retry())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid proxy settings")
}

pub fn token_body(access: &str, refresh: Option<&str>, expires_in: u64) -> Value {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "user:read channel:read",
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    body
}

pub fn token_set(access: &str, refresh: Option<&str>, expires_at: SystemTime) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access),
        refresh_token: refresh.map(RefreshToken::new),
        expires_at,
        scope: Some("user:read channel:read".into()),
        token_type: "Bearer".into(),
    }
}

pub struct Setup {
    pub manager: TokenManager,
    pub store: Arc<MemoryTokenStore>,
    pub clock: ManualClock,
}

/// A manager on a manual clock at [`t0`], holding `initial` (if any) in a memory store.
pub async fn manager_with(server: &MockServer, initial: Option<TokenSet>) -> Setup {
    let store = Arc::new(match initial {
        Some(set) => MemoryTokenStore::with_tokens(set),
        None => MemoryTokenStore::new(),
    });
    let clock = ManualClock::new(t0());
    let manager = TokenManager::builder(proxy_for(server), store.clone() as Arc<dyn TokenStore>)
        .clock(Arc::new(clock.clone()))
        .retry_backoff(Duration::from_secs(10), Duration::from_secs(60))
        .build()
        .await
        .expect("manager builds");
    Setup {
        manager,
        store,
        clock,
    }
}

pub async fn stored(store: &MemoryTokenStore) -> Option<TokenSet> {
    store.load().await.expect("memory store never fails")
}

/// Number of requests the fake proxy received on `path`.
pub async fn hits(server: &MockServer, path: &str) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|r| r.url.path() == path)
        .count()
}
