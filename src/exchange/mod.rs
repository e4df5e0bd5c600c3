//! The exchange: what happens to a validated grant. [`Exchange::redeem`] reads in order:
//! replay (an identical request answered within the window) → single-flight (identical requests
//! in flight share one call) → one provider call under the upstream cap and the provider's breaker
//! → the [`Reply`], stored for replay when it is a success. [`Exchange::revoke`] is idempotent by
//! nature (RFC 7009) and skips the first two.
//!
//! This is the seam a shared store plugs into: replay and single-flight are reached only from here.
//!
//! - [`provider`]: one configured provider at run time, and its reload;
//! - [`replay`]: the encrypted replay cache;
//! - [`mod@flights`]: single-flight, one provider call for identical requests;
//! - [`mod@shared`]: the same two across replicas, through the shared store (`[state]`).

pub mod flights;
pub mod provider;
pub mod replay;
pub mod shared;

pub use provider::{ClientBuildError, Provider};

use crate::config::Settings;
use crate::error_chain::DisplayChain;
use crate::oauth::TokenResponse;
use crate::reply::{ApiError, Endpoint, Reply};
use crate::secret::{AnyToken, AuthorizationCode, CodeVerifier, RefreshToken};
use crate::state::SharedState;
use crate::upstream::{Answer, Grant, Upstream, UpstreamError};
use flights::Flights;
use replay::{IndexMap, ReplayCache, ReplayKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A validated grant to redeem, owned so the provider call can finish in a task of its own if its
/// caller goes away.
#[derive(Debug)]
pub enum Redeem {
    /// Authorization code with PKCE (RFC 6749 §4.1.3, RFC 7636 §4.5).
    Code {
        /// The code from the redirect.
        code: AuthorizationCode,
        /// The PKCE verifier.
        verifier: CodeVerifier,
        /// The redirect URI, already checked against the allowlist.
        redirect_uri: String,
    },
    /// Refresh token (RFC 6749 §6).
    Refresh(RefreshToken),
}

impl Redeem {
    /// What this grant is, for the log line, the metrics and the replay key.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Code { .. } => Endpoint::Token,
            Self::Refresh(_) => Endpoint::Refresh,
        }
    }

    /// The request's secret inputs: what the replay index and key are derived from.
    /// (Passed to `f` as a slice on the stack: no list is allocated per request.)
    fn with_secrets<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
        match self {
            Self::Code {
                code,
                verifier,
                redirect_uri,
            } => f(&[code.secret(), verifier.secret(), redirect_uri]),
            Self::Refresh(token) => f(&[token.secret()]),
        }
    }

    fn grant(&self) -> Grant<'_> {
        match self {
            Self::Code {
                code,
                verifier,
                redirect_uri,
            } => Grant::AuthorizationCode {
                code,
                verifier,
                redirect_uri,
            },
            Self::Refresh(token) => Grant::RefreshToken(token),
        }
    }
}

/// The providers and what every exchange shares. Cheap to clone.
#[derive(Clone)]
pub struct Exchange {
    inner: Arc<Inner>,
}

struct Inner {
    providers: HashMap<String, Arc<Provider>>,
    replay: ReplayCache,
    flights: Flights<Reply>,
    upstream_permits: Semaphore,
    /// The store replicas share; `None` for the memory backend (everything per process).
    shared: Option<SharedState>,
    /// Flights this replica's waiters gave up on, until their lease is long over: a later claim
    /// that holds one of them is a takeover (counted).
    abandoned: Mutex<IndexMap<Instant>>,
}

/// At most this many abandoned flights remembered (for the takeover count only).
const MAX_ABANDONED: usize = 1024;

impl Exchange {
    /// Builds every provider's client from validated settings; `shared` is the store replicas
    /// share, if any (its keys also salt the replay cache, so replicas derive the same indexes).
    pub fn new(settings: &Settings, shared: Option<SharedState>) -> Result<Self, ClientBuildError> {
        let providers = settings
            .providers
            .iter()
            .map(|(name, p)| Ok((name.clone(), Arc::new(Provider::new(settings, p)?))))
            .collect::<Result<_, ClientBuildError>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                providers,
                replay: ReplayCache::with_salt(
                    Duration::from_secs(settings.replay.window_secs),
                    settings.replay.max_entries,
                    settings.replay.max_bytes,
                    shared.as_ref().map(|s| s.keys().replay_salt()),
                ),
                flights: Flights::default(),
                upstream_permits: Semaphore::new(settings.limits.max_upstream_calls),
                shared,
                abandoned: Mutex::default(),
            }),
        })
    }

    /// Applies what can change without a restart from freshly loaded `settings`: each existing
    /// provider's client secrets and redirect allowlist. Requests in flight finish with what they
    /// started with. Returns the names of the keys that changed but need a restart.
    pub fn reload(&self, settings: &Settings) -> Vec<String> {
        let mut needs_restart = Vec::new();
        for (name, new) in &settings.providers {
            let Some(provider) = self.provider(name) else {
                needs_restart.push(format!("providers.{name} (new provider)"));
                continue;
            };
            needs_restart.extend(
                provider
                    .reload(new)
                    .into_iter()
                    .map(|key| format!("providers.{name}.{key}")),
            );
        }
        for name in self.inner.providers.keys() {
            if !settings.providers.contains_key(name) {
                needs_restart.push(format!("providers.{name} (removed)"));
            }
        }
        needs_restart
    }

    /// The provider serving `{provider}`, if configured.
    pub fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.inner.providers.get(name)
    }

    /// Every configured provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = (&String, &Arc<Provider>)> {
        self.inner.providers.iter()
    }

    /// The replay cache.
    pub fn replay(&self) -> &ReplayCache {
        &self.inner.replay
    }

    /// The store replicas share, if any.
    pub fn shared(&self) -> Option<&SharedState> {
        self.inner.shared.as_ref()
    }

    /// Exchange or refresh: the replay cache first, then one shared provider call per identical
    /// request. A caller that gives up does not cut the call in half: it moves to a task of its
    /// own ([`Flights::run`]) and its answer lands in the replay cache for the caller's retry.
    pub async fn redeem(&self, provider: &Arc<Provider>, input: Redeem) -> Reply {
        let endpoint = input.endpoint();
        let replay = self.replay();
        let key = input
            .with_secrets(|secrets| replay.key(&provider.label.name, endpoint.as_str(), secrets));
        if let Some(body) = replay.get(&key) {
            return Reply::replayed(body);
        }
        let index = key.index();
        let started = Instant::now();
        let work = {
            let exchange = self.clone();
            let provider = Arc::clone(provider);
            async move {
                // A flight that finished between our look-up and now left its answer here.
                if let Some(body) = exchange.replay().get(&key) {
                    return Reply::replayed(body);
                }
                exchange
                    .redeem_shared(&provider, endpoint, &input, &key, started)
                    .await
            }
        };
        match self.inner.flights.run(index, work).await {
            Some((mut reply, shared)) => {
                if shared && reply.outcome.served_from.is_none() {
                    reply.outcome.served_from = Some("shared");
                }
                reply
            }
            None => ApiError::Unavailable {
                retry_after: 1,
                reason: "overloaded",
            }
            .into(),
        }
    }

    /// The second tier, when there is a store: another replica's answer, or this replica holds
    /// the flight and calls the provider, or (store failing) the per-process path.
    async fn redeem_shared(
        &self,
        provider: &Arc<Provider>,
        endpoint: Endpoint,
        input: &Redeem,
        key: &ReplayKey,
        started: Instant,
    ) -> Reply {
        let Some(shared_state) = &self.inner.shared else {
            return self.call_and_keep(provider, endpoint, input, key).await;
        };
        let store = shared_state.store();
        match shared::claim(store, key, provider.upstream.timeout(), started).await {
            shared::Step::Reply(reply) => {
                if reply.status.is_success() {
                    self.replay().put(key, &reply.body);
                }
                reply
            }
            shared::Step::GaveUp(reply) => {
                self.remember_abandoned(key.index());
                reply
            }
            shared::Step::Hold(pending) => {
                if self.forget_abandoned(key.index()) {
                    crate::state::record_takeover();
                }
                let reply = self.call_and_keep(provider, endpoint, input, key).await;
                // Replay off (a zero window or no room) keeps nothing across replicas either.
                let window = if self.replay().enabled() {
                    self.replay().window()
                } else {
                    Duration::ZERO
                };
                shared::complete(store, key, &pending, &reply, window).await;
                reply
            }
            shared::Step::Fallback => self.call_and_keep(provider, endpoint, input, key).await,
        }
    }

    /// One provider call; a success is kept for replay.
    async fn call_and_keep(
        &self,
        provider: &Arc<Provider>,
        endpoint: Endpoint,
        input: &Redeem,
        key: &ReplayKey,
    ) -> Reply {
        let reply = self
            .call_provider(provider, endpoint, |upstream| upstream.token(input.grant()))
            .await;
        if reply.status.is_success() {
            self.replay().put(key, &reply.body);
        }
        reply
    }

    fn remember_abandoned(&self, index: [u8; 32]) {
        let mut abandoned = self
            .inner
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        abandoned.retain(|_, until| *until > now);
        if abandoned.len() < MAX_ABANDONED {
            abandoned.insert(index, now + Duration::from_secs(60));
        }
    }

    fn forget_abandoned(&self, index: [u8; 32]) -> bool {
        self.inner
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&index)
            .is_some()
    }

    /// Revocation: neither replayed nor coalesced. 404 when the provider has no revocation
    /// endpoint.
    pub async fn revoke(
        &self,
        provider: &Arc<Provider>,
        token: AnyToken,
        hint: Option<&'static str>,
    ) -> Reply {
        if !provider.upstream.can_revoke() {
            return ApiError::NotFound.into();
        }
        self.call_provider(provider, Endpoint::Revoke, |upstream| async move {
            upstream.revoke(&token, hint).await.map(|status| Answer {
                status,
                value: b"{}".to_vec(),
            })
        })
        .await
    }

    /// One provider call under the upstream cap and the provider's breaker, rendered.
    async fn call_provider<'a, F, Fut, T>(
        &'a self,
        provider: &'a Provider,
        endpoint: Endpoint,
        call: F,
    ) -> Reply
    where
        F: FnOnce(&'a Upstream) -> Fut,
        Fut: std::future::Future<Output = Result<Answer<T>, UpstreamError>>,
        T: IntoBody,
    {
        // The permit first: a breaker probe admitted without one would never be recorded.
        let Ok(_permit) = self.inner.upstream_permits.try_acquire() else {
            return ApiError::Unavailable {
                retry_after: 1,
                reason: "overloaded",
            }
            .into();
        };
        let admission = match provider.breaker.admit() {
            Ok(admission) => admission,
            Err(wait) => {
                return ApiError::Unavailable {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                    reason: "breaker_open",
                }
                .into()
            }
        };
        let started = std::time::Instant::now();
        let result = call(&provider.upstream).await;
        crate::metrics::record_upstream(
            &provider.label.name,
            endpoint.as_str(),
            result.as_ref().map_or_else(UpstreamError::kind, |_| "ok"),
            started.elapsed(),
        );
        admission.record(match &result {
            Ok(_) => true,
            Err(error) => !error.is_provider_failure(),
        });
        match result {
            Ok(answer) => Reply::ok(answer.value.into_body(), Some(answer.status.as_u16())),
            Err(source) => {
                log_failure(provider, endpoint, &source);
                ApiError::Upstream {
                    provider: provider.label.clone(),
                    source,
                }
                .into()
            }
        }
    }
}

/// What a successful provider answer becomes as a response body.
trait IntoBody {
    fn into_body(self) -> bytes::Bytes;
}

impl IntoBody for TokenResponse {
    fn into_body(self) -> bytes::Bytes {
        self.into_json().into()
    }
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> bytes::Bytes {
        self.into()
    }
}

/// Failures the operator must see get a line of their own with the cause (never a body or a
/// value); a refused grant is the caller's business and gets none.
fn log_failure(provider: &Provider, endpoint: Endpoint, error: &UpstreamError) {
    let class = error.class();
    if class.callers {
        return;
    }
    let name = provider.label.name.as_str();
    let endpoint = endpoint.as_str();
    if class.our_credentials {
        if let UpstreamError::Refused { code, status } = error {
            tracing::error!(
                provider = name,
                endpoint,
                code = code.as_str(),
                upstream_status = status.as_u16(),
                "the provider refused this server's client credentials: check client_id and client_secret"
            );
            return;
        }
    }
    tracing::warn!(
        provider = name,
        endpoint,
        kind = class.kind,
        error = %DisplayChain(error),
        "upstream call failed"
    );
}
