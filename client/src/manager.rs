//! Keeping a valid access token: refresh before expiry (RFC 6749 §6), once at a time, persisted,
//! published to subscribers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use crate::clock::{Clock, SystemClock};
use crate::proxy::TokenTypeHint;
use crate::{
    random, AccessToken, AuthorizationCode, Error, PendingLogin, ProxyClient, TemporaryKind,
    TokenSet, TokenStore,
};

/// Refresh when less than this is left (TeamBattles' Battles Record guide: "refresh when less than
/// 10 minutes remain").
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(10 * 60);

/// Builder for [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    proxy: ProxyClient,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    refresh_before: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

impl TokenManagerBuilder {
    /// The time source (default [`SystemClock`]; tests pass a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Refresh once less than this is left before `expires_at` (default [`DEFAULT_REFRESH_BEFORE`]).
    pub fn refresh_before(mut self, refresh_before: Duration) -> Self {
        self.refresh_before = refresh_before;
        self
    }

    /// Backoff between refresh attempts after a failure while the current token still works:
    /// `initial`, doubling up to `max`, jittered (defaults 5 s and 2 min). A `Retry-After` from the
    /// proxy takes precedence.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }

    /// Loads the stored set (if any) and builds the manager. No network call is made.
    pub async fn build(self) -> Result<TokenManager, Error> {
        let loaded = self.store.load().await?;
        let (current, _) = watch::channel(loaded);
        Ok(TokenManager {
            inner: Arc::new(Inner {
                proxy: self.proxy,
                store: self.store,
                clock: self.clock,
                refresh_before: self.refresh_before,
                retry_initial: self.retry_initial,
                retry_max: self.retry_max,
                current,
                generation: AtomicU64::new(0),
                refresh: Arc::new(Mutex::new(RefreshState::default())),
            }),
        })
    }
}

/// Holds the app's [`TokenSet`] and hands out valid access tokens.
///
/// - [`TokenManager::get_token`] returns the access token, refreshing through the proxy first when
///   less than `refresh_before` is left (RFC 6749 §6).
/// - Refreshes never overlap: callers that find a refresh under way wait for it and share its result.
/// - A refresh answer without `refresh_token` keeps the old one (RFC 6749 §6 lets the server omit it).
/// - Every new set is saved to the [`TokenStore`] and published to [`TokenManager::subscribe`]rs.
/// - `invalid_grant` (RFC 6749 §5.2) clears the store, publishes `None`, and yields
///   [`Error::LoginRequired`].
/// - Temporary failures while the token still works are logged, the current token is returned, and
///   the next attempt is delayed with exponential backoff.
/// - [`TokenManager::spawn_refresh_task`] refreshes ahead of expiry without waiting for a caller.
///
/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    proxy: ProxyClient,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    refresh_before: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    current: watch::Sender<Option<TokenSet>>,
    /// Bumped on every publish, so a forced refresh can tell that someone else already refreshed.
    generation: AtomicU64,
    /// Held for the whole of a refresh, login or logout: the single-flight guard.
    refresh: Arc<Mutex<RefreshState>>,
}

#[derive(Debug, Default)]
struct RefreshState {
    failures: u32,
    next_attempt_at: Option<SystemTime>,
    last_temporary: Option<TemporaryKind>,
}

impl RefreshState {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

impl TokenManager {
    /// Starts building a manager that refreshes through `proxy` and persists to `store`.
    pub fn builder(proxy: ProxyClient, store: Arc<dyn TokenStore>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            proxy,
            store,
            clock: Arc::new(SystemClock),
            refresh_before: DEFAULT_REFRESH_BEFORE,
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(120),
        }
    }

    /// Finishes a login: exchanges `code` with `pending`'s verifier and redirect URI through the proxy
    /// (RFC 6749 §4.1.3, RFC 7636 §4.5), then stores and publishes the tokens.
    pub async fn complete_login(
        &self,
        code: &AuthorizationCode,
        pending: &PendingLogin,
    ) -> Result<TokenSet, Error> {
        let response = self
            .inner
            .proxy
            .exchange(code, pending.verifier(), pending.redirect_uri())
            .await?;
        let tokens = TokenSet::from_response(response, self.inner.clock.now());
        self.set_tokens(tokens.clone()).await?;
        Ok(tokens)
    }

    /// Replaces the held set (e.g. after a login done elsewhere), saves and publishes it. Waits for
    /// a refresh under way to finish first. The set is in use even if saving fails (the error says so).
    pub async fn set_tokens(&self, tokens: TokenSet) -> Result<(), Error> {
        let mut state = self.inner.refresh.lock().await;
        state.reset();
        self.inner.publish(Some(tokens.clone()));
        self.inner.store.save(&tokens).await
    }

    /// The held set, if logged in.
    pub fn current(&self) -> Option<TokenSet> {
        self.inner.current.borrow().clone()
    }

    /// A receiver that sees every new set; `None` means logged out or the grant died.
    pub fn subscribe(&self) -> watch::Receiver<Option<TokenSet>> {
        self.inner.current.subscribe()
    }

    /// A valid access token, refreshed first if less than `refresh_before` is left.
    ///
    /// Errors: [`Error::LoginRequired`] (nothing held, or the grant died: log in again);
    /// [`Error::Temporary`] only when the held token has expired and cannot be refreshed right now.
    pub async fn get_token(&self) -> Result<AccessToken, Error> {
        {
            let now = self.inner.clock.now();
            match &*self.inner.current.borrow() {
                None => return Err(Error::LoginRequired),
                Some(set) if !self.inner.needs_refresh(set, now) => {
                    return Ok(set.access_token.clone())
                }
                Some(_) => {}
            }
        }
        self.inner.run_refresh(false).await
    }

    /// Refreshes now, whatever the expiry says: for when the API answered `401` to the current token
    /// (RFC 6750 §3.1). If another refresh finished while waiting, its token is returned instead.
    pub async fn force_refresh(&self) -> Result<AccessToken, Error> {
        self.inner.run_refresh(true).await
    }

    /// Logs out: forgets the set, clears the store, publishes `None`, and asks the proxy to revoke the
    /// refresh and access tokens (RFC 7009 §2.1). Revocation is best effort (logged on failure); only
    /// a store error is returned.
    pub async fn logout(&self) -> Result<(), Error> {
        let mut state = self.inner.refresh.lock().await;
        state.reset();
        let old = self.inner.current.borrow().clone();
        self.inner.publish(None);
        let cleared = self.inner.store.clear().await;
        if let Some(old) = old {
            if let Some(refresh) = &old.refresh_token {
                if let Err(e) = self
                    .inner
                    .proxy
                    .revoke(refresh.secret(), Some(TokenTypeHint::RefreshToken))
                    .await
                {
                    tracing::warn!(error = %e, "could not revoke the refresh token");
                }
            }
            if let Err(e) = self
                .inner
                .proxy
                .revoke(old.access_token.secret(), Some(TokenTypeHint::AccessToken))
                .await
            {
                tracing::warn!(error = %e, "could not revoke the access token");
            }
        }
        cleared
    }

    /// Starts a task that refreshes `refresh_before` ahead of expiry (and retries with backoff after
    /// failures), so tokens are fresh before anyone asks. The task stops when the returned handle is
    /// dropped.
    #[must_use = "the refresh task stops when the handle is dropped"]
    pub fn spawn_refresh_task(&self) -> RefreshTask {
        RefreshTask {
            handle: tokio::spawn(background(Arc::clone(&self.inner))),
        }
    }
}

/// Handle of [`TokenManager::spawn_refresh_task`]'s task; dropping it stops the task.
#[derive(Debug)]
pub struct RefreshTask {
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Inner {
    /// `<=` so that waking exactly at [`Inner::due`] does refresh.
    fn needs_refresh(&self, set: &TokenSet, now: SystemTime) -> bool {
        set.remaining(now) <= self.refresh_before
    }

    fn publish(&self, tokens: Option<TokenSet>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.current.send_replace(tokens);
    }

    /// Takes the single-flight lock and refreshes in a task of its own, so a caller that gives up
    /// (drops the future) cannot cut a refresh in half and lose a rotated refresh token.
    async fn run_refresh(self: &Arc<Self>, force: bool) -> Result<AccessToken, Error> {
        let seen = self.generation.load(Ordering::SeqCst);
        let guard = Arc::clone(&self.refresh).lock_owned().await;
        let inner = Arc::clone(self);
        let task = tokio::spawn(async move {
            let force = force && inner.generation.load(Ordering::SeqCst) == seen;
            inner.refresh_locked(guard, force).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Temporary {
                kind: TemporaryKind::Network,
                retry_after: None,
            }),
        }
    }

    async fn refresh_locked(
        &self,
        mut state: OwnedMutexGuard<RefreshState>,
        force: bool,
    ) -> Result<AccessToken, Error> {
        let now = self.clock.now();
        let Some(set) = self.current.borrow().clone() else {
            return Err(Error::LoginRequired);
        };
        if !force && !self.needs_refresh(&set, now) {
            // Someone else refreshed while we waited for the lock.
            return Ok(set.access_token);
        }
        let usable = !set.is_expired(now);

        if let Some(at) = state.next_attempt_at.filter(|at| now < *at) {
            if usable && !force {
                return Ok(set.access_token);
            }
            if let Some(kind) = state.last_temporary {
                return Err(Error::Temporary {
                    kind,
                    retry_after: at.duration_since(now).ok(),
                });
            }
        }

        let Some(refresh_token) = set.refresh_token.clone() else {
            if usable && !force {
                return Ok(set.access_token);
            }
            tracing::info!("access token expired and there is no refresh token; login required");
            self.drop_grant(&mut state).await;
            return Err(Error::LoginRequired);
        };

        tracing::debug!(
            remaining_s = set.remaining(now).as_secs(),
            force,
            "refreshing tokens through the OAuth proxy"
        );
        match self.proxy.refresh(&refresh_token).await {
            Ok(response) => {
                let mut fresh = TokenSet::from_response(response, self.clock.now());
                if fresh.refresh_token.is_none() {
                    // RFC 6749 §6: no new refresh token means the old one stays valid.
                    fresh.refresh_token = Some(refresh_token);
                }
                state.reset();
                self.publish(Some(fresh.clone()));
                if let Err(e) = self.store.save(&fresh).await {
                    // The tokens work; only the next start-up may need a login.
                    tracing::error!(error = %e, "could not save refreshed tokens");
                }
                tracing::info!(
                    expires_in_s = fresh.remaining(self.clock.now()).as_secs(),
                    "tokens refreshed"
                );
                Ok(fresh.access_token)
            }
            Err(Error::GrantInvalid { .. }) => {
                tracing::warn!("refresh token rejected (invalid_grant); login required");
                self.drop_grant(&mut state).await;
                Err(Error::LoginRequired)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let wait = e.retry_after().unwrap_or_else(|| {
                    random::backoff(state.failures, self.retry_initial, self.retry_max)
                });
                state.next_attempt_at = now.checked_add(wait);
                state.last_temporary = match &e {
                    Error::Temporary { kind, .. } => Some(*kind),
                    _ => None,
                };
                tracing::warn!(
                    error = %e,
                    failures = state.failures,
                    retry_in_s = wait.as_secs(),
                    still_valid = usable,
                    "token refresh failed"
                );
                if usable && !force {
                    Ok(set.access_token)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn drop_grant(&self, state: &mut RefreshState) {
        state.reset();
        self.publish(None);
        if let Err(e) = self.store.clear().await {
            tracing::error!(error = %e, "could not clear the token store");
        }
    }

    /// When the background task should next try: `refresh_before` ahead of expiry, or at expiry when
    /// there is nothing to refresh with (to notice the end of the login).
    fn due(&self, set: &TokenSet) -> SystemTime {
        if set.refresh_token.is_some() {
            set.expires_at
                .checked_sub(self.refresh_before)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            set.expires_at
        }
    }
}

async fn background(inner: Arc<Inner>) {
    let mut changes = inner.current.subscribe();
    let mut not_before: Option<SystemTime> = None;
    loop {
        let due = changes
            .borrow_and_update()
            .as_ref()
            .map(|set| inner.due(set));
        let Some(mut due) = due else {
            // Logged out: wait for a login.
            if changes.changed().await.is_err() {
                return;
            }
            not_before = None;
            continue;
        };
        if let Some(nb) = not_before {
            due = due.max(nb);
        }
        tokio::select! {
            () = inner.clock.sleep_until(due) => {
                let guard = Arc::clone(&inner.refresh).lock_owned().await;
                let result = inner.refresh_locked(guard, false).await;
                let state = inner.refresh.lock().await;
                not_before = state.next_attempt_at;
                drop(state);
                if let Err(e) = result {
                    if !e.is_login_required() && not_before.is_none() {
                        // A failure without a backoff slot (should not happen): avoid a hot loop.
                        not_before = inner.clock.now().checked_add(inner.retry_initial);
                    }
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                not_before = None;
            }
        }
    }
}
