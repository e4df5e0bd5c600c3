//! Per-client-IP token buckets, one set per endpoint (`token`, `refresh`, `revoke`).
//!
//! GCRA buckets from `governor`: `burst` requests at once, refilled at `per_minute`. The key is
//! the client address from [`super::client_ip()`]; an IPv6 client is keyed by its /64, because one
//! host usually holds a whole /64 and could otherwise rotate addresses for fresh buckets. Buckets
//! are per endpoint and shared by all providers (a client exchanging codes with two providers
//! spends one `token` bucket). Over the limit the request is answered 429 `slow_down` with
//! `Retry-After` before its body is read, so it never reaches the handler nor the provider.
//!
//! With a shared store (`[state]`), the local bucket stays the first, free check (a flood from
//! one address never reaches the store), and a request it lets through then takes one from the
//! client's bucket in the store (GCRA in one script, on the store's clock), so a client gets its
//! quota once across every replica, not once per replica. The store's bucket name is an HMAC of
//! the endpoint and address (no IP in the store). A store that does not answer leaves the local
//! decision standing (counted as a fallback).
//!
//! Memory: one small entry per active client address. A background task drops entries whose
//! bucket has refilled (indistinguishable from a new client) every [`SWEEP_INTERVAL`]; it holds
//! only a weak reference and stops once the router is dropped.

use super::client_ip::{request_client_ip, TrustedProxies};
use crate::config::Bucket;
use crate::reply::{ApiError, Endpoint, Reply};
use crate::state::{Decision, RateQuota, SharedState};
use axum::extract::Request;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// How often idle buckets are forgotten.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

type Limiter = DefaultKeyedRateLimiter<IpAddr>;

/// One endpoint's limit; as a [`Layer`], its middleware ([`Limited`]). Cheap to clone.
#[derive(Clone)]
pub struct RateLimit {
    inner: Option<Arc<Inner>>,
    trusted: Arc<TrustedProxies>,
}

struct Inner {
    limiter: Limiter,
    endpoint: Endpoint,
    /// The same quota in the shared store, when there is one.
    shared: Option<(SharedState, RateQuota)>,
}

impl Inner {
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&bucket_key(client))
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

impl RateLimit {
    /// The limit for `endpoint` from its `[rate_limit]` bucket; `per_minute = 0` turns it off and
    /// `burst = 0` counts as 1. Must be called inside a Tokio runtime for the sweeper to start
    /// (outside one, entries are never swept).
    #[cfg(test)]
    pub fn new(endpoint: Endpoint, bucket: Bucket, trusted: Arc<TrustedProxies>) -> Self {
        Self::with_shared(endpoint, bucket, trusted, None)
    }

    /// As [`RateLimit::new`], also checking the client's bucket in the shared store.
    pub fn with_shared(
        endpoint: Endpoint,
        bucket: Bucket,
        trusted: Arc<TrustedProxies>,
        shared: Option<SharedState>,
    ) -> Self {
        let inner = NonZeroU32::new(bucket.per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
            let inner = Arc::new(Inner {
                limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
                endpoint,
                shared: shared.map(|shared| (shared, RateQuota::per_minute(per_minute, burst))),
            });
            spawn_sweeper(Arc::downgrade(&inner));
            inner
        });
        Self { inner, trusted }
    }

    /// Takes one request from `client`'s bucket; `Err(retry_after)` when it is empty.
    #[cfg(test)]
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.inner
            .as_ref()
            .map_or(Ok(()), |inner| inner.check(client))
    }

    /// Active keys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.limiter.len())
    }

    /// True when no client is tracked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rate-limit key: an IPv4 address, or an IPv6 address's /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
    }
}

fn spawn_sweeper(weak: Weak<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let Some(inner) = weak.upgrade() else {
                return;
            };
            inner.limiter.retain_recent();
            inner.limiter.shrink_to_fit();
        }
    });
}

impl<S> Layer<S> for RateLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            limit: self.clone(),
            inner,
        }
    }
}

/// Middleware: one request from the client's bucket, or 429 `slow_down` with `Retry-After`
/// (RFC 6585 §4, RFC 9110 §10.2.3). A plain tower service: with the limit off, or with local
/// buckets only, nothing is boxed per request; only the shared store's round trip is.
#[derive(Clone)]
pub struct Limited<S> {
    limit: RateLimit,
    inner: S,
}

impl<S> Service<Request> for Limited<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(inner) = &self.limit.inner else {
            return RateFuture::Admitted {
                inner: self.inner.call(request),
            };
        };
        let client = request_client_ip(&request, &self.limit.trusted);
        if let Err(wait) = inner.check(client) {
            return RateFuture::Refused {
                response: Some(too_many_requests(inner.endpoint, wait)),
            };
        }
        let Some((shared, quota)) = &inner.shared else {
            return RateFuture::Admitted {
                inner: self.inner.call(request),
            };
        };
        let (shared, quota, endpoint) = (shared.clone(), *quota, inner.endpoint);
        // The service that was made ready goes with the request; this one keeps a fresh clone.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        RateFuture::Shared {
            future: Box::pin(async move {
                let key = shared
                    .keys()
                    .rate_key(endpoint.as_str(), bucket_key(client));
                match shared.store().gcra(&key, quota).await {
                    Ok(Decision::Allow) => {}
                    Ok(Decision::Deny { retry_after }) => {
                        return Ok(too_many_requests(endpoint, retry_after))
                    }
                    // The local decision stands.
                    Err(_) => crate::state::record_fallback("gcra"),
                }
                let mut service = service;
                service.call(request).await
            }),
        }
    }
}

pin_project! {
    /// The response future of [`Limited`].
    #[project = RateProjection]
    pub enum RateFuture<F> {
        /// Let through: the inner service's answer.
        Admitted {
            #[pin]
            inner: F,
        },
        /// 429, at once.
        Refused { response: Option<Response> },
        /// Let through locally; the shared store decides, then the inner service answers.
        Shared {
            future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        },
    }
}

impl<F> Future for RateFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RateProjection::Admitted { inner } => inner.poll(cx),
            RateProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            RateProjection::Shared { future } => future.as_mut().poll(cx),
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn too_many_requests(endpoint: Endpoint, wait: Duration) -> Response {
    let mut reply = Reply::from(ApiError::RateLimited {
        retry_after: retry_after_secs(wait),
    });
    reply.outcome.endpoint = Some(endpoint.as_str());
    reply.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit::new(
            Endpoint::Token,
            Bucket { per_minute, burst },
            Arc::new(TrustedProxies::default()),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn burst_then_refused_with_a_wait_of_about_one_refill() {
        let l = limit(1, 2);
        assert!(l.check(ip("203.0.113.1")).is_ok());
        assert!(l.check(ip("203.0.113.1")).is_ok());
        let wait = l
            .check(ip("203.0.113.1"))
            .expect_err("third is over the burst");
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        assert_eq!(retry_after_secs(wait), 60);
        // Another client has its own bucket.
        assert!(l.check(ip("203.0.113.2")).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = limit(1, 1);
        assert!(l.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.check(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(l.check(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            bucket_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(bucket_key(ip("198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn zero_per_minute_is_off_and_zero_burst_is_one() {
        let off = limit(0, 0);
        for _ in 0..100 {
            assert!(off.check(ip("203.0.113.1")).is_ok());
        }
        assert!(off.is_empty());
        let one = limit(10, 0);
        assert!(one.check(ip("203.0.113.1")).is_ok());
        assert!(one.check(ip("203.0.113.1")).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn the_429_text_says_1_second_and_n_seconds() {
        let description = |secs| {
            let reply = Reply::from(ApiError::RateLimited { retry_after: secs });
            let body: serde_json::Value =
                serde_json::from_slice(&reply.body).expect("the body is JSON");
            assert_eq!(body["error"], "slow_down");
            assert_eq!(reply.retry_after, Some(secs));
            body["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(description(1), "Too many requests; retry after 1 second.");
        assert_eq!(description(2), "Too many requests; retry after 2 seconds.");
        assert_eq!(
            description(60),
            "Too many requests; retry after 60 seconds."
        );
    }
}
