//! Shared state: what N replicas must agree on (replay, single-flight, rate limits), kept in
//! Redis or Valkey so that they behave as one (issue #14).
//!
//! # Two tiers
//! The per-process mechanisms (the replay cache and flights in `exchange`, `governor` buckets in
//! `front_door`) stay
//! the first tier and always run. A [`SharedStore`] is the second tier, consulted after them:
//! a replay miss asks the store, a flight is claimed in the store before the provider call, a
//! request the local bucket let through is checked against the shared bucket. With no store, or a
//! failing one, the first tier is the complete, current behaviour: **every failure here fails
//! open**, because everything the store holds is an accelerator or a courtesy limit, and a Redis
//! outage must never become a login outage.
//!
//! # What the store holds
//! Opaque bytes under derived keys, never a code, verifier, token, secret or client IP:
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `<prefix>f:{<index>}`: a flight; `<index>` is the base64url of the 32-byte HKDF index the caller derived from the request's secret inputs | a [`Record`]: `P` pending (owner, deadline), `D` done (the sealed 200 body), `E` done (the sealed error reply) | `P`: until its deadline; `D`/`E`: as the caller says |
//! | `<prefix>rl:<endpoint>:<hmac>`: a GCRA bucket, see [`keys::StateKeys::rate_key`] | theoretical arrival time, µs | until the bucket is full again |
//!
//! The caller seals `D` and `E` records (ChaCha20-Poly1305 under a key derived from the request,
//! the index as associated data) and opens them; this module only frames them ([`Record`]).
//! Bytes that do not frame as a record are treated as absent, and a record that does not open
//! should be [`SharedStore::discard`]ed by the caller and then treated as absent too, so a
//! tampered store can cause a provider call, never a wrong answer.
//!
//! # Protocol (one flight across replicas)
//! 1. [`SharedStore::claim`] with a fresh [`Pending`]: [`Claim::Held`] means this replica calls
//!    the provider; [`Claim::Done`] is another replica's answer to replay; [`Claim::Pending`] means
//!    another replica is calling: poll [`SharedStore::peek`] until its `D` or `E` appears, the key
//!    vanishes, or the caller's own budget runs out (then 503 with `Retry-After` =
//!    [`Pending::remaining`]).
//! 2. The holder calls the provider, then [`SharedStore::complete`]s with the sealed outcome: a
//!    compare-and-set on its own `P` (or a vacant key), so a holder whose lease ran out cannot
//!    overwrite a newer holder. A holder that gives up without an outcome
//!    [`SharedStore::discard`]s its `P` so nobody waits for it.
//! 3. An `E` record never blocks a new claim: a retry after an error calls the provider again, as
//!    within one process.
//!
//! The lease (a `P`'s deadline) must exceed the holder's whole provider call; the provider call
//! has one deadline (`timeout_secs`), so a lease of `timeout_secs + 2 s` cannot expire under a
//! live holder, and no renewal is needed. The lock is advisory: after a failover two holders can
//! exist, and correctness then rests on the provider's refresh grace, as without a store.
//!
//! # Failure behaviour ([`RedisStore`])
//! Every operation runs under `op_timeout` (100 ms by default) with no client-side retries, so a
//! dead store costs a refused connection (< 1 ms) and a hung one at most `op_timeout`. After 3
//! consecutive failures a small breaker stops asking for 2 s ([`StoreError::Unavailable`],
//! returned at once), then lets one probe through. [`SharedStore::health`] reports ok/degraded for
//! `/readyz` (which stays 200 either way), with one log line per change and the gauge
//! `kick_proxy_state_backend_up`. The connection is made on first use: start-up never blocks or
//! fails because the store is down.
//!
//! Scripts touch one key each (Redis Cluster safe) and run through `EVALSHA` with a `NOSCRIPT`
//! fallback. A Redis ACL user for the proxy needs `~<prefix>*` and
//! `+evalsha +eval +script|load +ping +get +set +del +time`.
//!
//! # Layout
//! - [`keys`]: key derivation from the state secret (replay salt, rate-limit key HMAC);
//! - [`RedisStore`]: Redis/Valkey, with timeouts, breaker, metrics;
//! - [`MemoryShared`]: the same protocol in one process, the Lua scripts re-done in Rust: a test
//!   double for the protocol tests (the `memory` backend itself uses no store at all, `shared = None`).

pub mod keys;
mod memory;
mod metrics;
mod record;
mod redis;
mod scripts;

pub use self::memory::MemoryShared;
pub use self::record::{Owner, Pending, Record, Sealed};
pub use self::redis::RedisStore;

use crate::config::state::StateSecret;
use crate::config::StateConfig;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The shared store (second tier) for validated `[state]`, or `None` for the memory backend,
/// where the per-process mechanisms are all there is. Never connects: the first operation does,
/// so a store that is down at start-up cannot stop the process from serving.
pub fn build(config: &StateConfig) -> Result<Option<SharedState>, StoreError> {
    match (config.redis(), config.secret()) {
        (Some(redis), Some(secret)) => Ok(Some(SharedState::new(
            Arc::new(RedisStore::new(redis)?),
            secret,
        ))),
        // Validation requires a secret with a Redis backend.
        _ => Ok(None),
    }
}

/// A store and the keys every replica sharing it derives from the same secret: what the
/// exchange and the rate limits consult. Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    store: Arc<dyn SharedStore>,
    keys: Arc<keys::StateKeys>,
}

impl SharedState {
    /// `store` with the keys derived from `secret` (the same on every replica).
    pub fn new(store: Arc<dyn SharedStore>, secret: &StateSecret) -> Self {
        Self {
            store,
            keys: Arc::new(keys::StateKeys::derive(secret)),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn SharedStore {
        self.store.as_ref()
    }

    /// The derived keys.
    pub fn keys(&self) -> &keys::StateKeys {
        &self.keys
    }
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// A request went on per process because the store did not answer `op` (fail open).
pub fn record_fallback(op: &'static str) {
    metrics::record_fallback(op);
}

/// A stored record did not open with the request's key (tampered or foreign): a miss.
pub fn record_corrupt() {
    metrics::record_op("open", "corrupt", None);
}

/// A flight whose holder went away without an outcome was claimed by a retry.
pub fn record_takeover() {
    metrics::record_takeover();
}

/// Sets `kick_proxy_state_backend_up` from the store's health now: at start-up, once the metrics
/// recorder exists (later changes are recorded as they happen).
pub fn publish_health(store: &dyn SharedStore) {
    metrics::record_backend_up(matches!(store.health(), Health::Ok));
}

/// A boxed future borrowing the store: what every [`SharedStore`] operation returns, so the trait
/// stays object-safe (`Arc<dyn SharedStore>`). One allocation per call is noise next to a network
/// round trip.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The second tier: a store shared by every replica. Implementations never block the caller
/// longer than their own timeout, and report a store that cannot answer as an error the caller
/// falls back on (fail open).
pub trait SharedStore: Send + Sync + 'static {
    /// Claims the flight `index` with `pending` (its TTL is the pending's deadline): the caller
    /// holds it ([`Claim::Held`]), or learns what stands there. An `E` record, an expired or
    /// malformed value counts as vacant and is overwritten.
    fn claim<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Stores the holder's outcome for `ttl` if the key still holds the holder's exact `pending`
    /// (or nothing); `Ok(false)` when someone else's record stands there (compare-and-set
    /// refused).
    fn complete<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
        outcome: Completion,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes the flight only if it holds exactly `record`: a holder releasing its own `P`, or a
    /// caller removing a `D`/`E` that would not open. `Ok(false)` when something else stands.
    fn discard<'a>(
        &'a self,
        index: &'a FlightIndex,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The record under `index`, if any; bytes that do not frame as a record read as `None`.
    fn peek<'a>(
        &'a self,
        index: &'a FlightIndex,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;

    /// Takes one request from the GCRA bucket `key` (the store's clock, so replicas' clocks do
    /// not matter). Same decisions and waits as `governor` with the same quota. A stored state
    /// that cannot be legitimate (not a number, or further ahead than the bucket can reach) is
    /// reset, so a poisoned store cannot lock a client out.
    fn gcra<'a>(
        &'a self,
        key: &'a keys::RateKey,
        quota: RateQuota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>>;

    /// Asks the store to answer (`PING`), counted like any operation: for a start-up log line
    /// (the store connects lazily) and for tests.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether the store is answering, as the caller should report it (`/readyz`).
    fn health(&self) -> Health;

    /// `"redis"` or `"memory"`, for `/readyz` and logs.
    fn backend(&self) -> &'static str;

    /// The longest one operation may take before it fails (`state.op_timeout_ms`): a holder's
    /// lease covers its claim's and its completion's round trips too.
    fn op_timeout(&self) -> Duration {
        Duration::ZERO
    }
}

/// A flight's index: 32 bytes the caller derived (HKDF) from the request's secret inputs, the
/// same on every replica sharing the state secret. Prints without its value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlightIndex([u8; 32]);

impl FlightIndex {
    /// Wraps a derived index (`ReplayKey::index()`).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The index bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for FlightIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlightIndex(..)")
    }
}

/// What [`SharedStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the flight: call the provider, then [`SharedStore::complete`].
    Held,
    /// Another replica's successful answer, sealed: open it (a failure to open is a miss:
    /// [`SharedStore::discard`] it and claim again).
    Done(Sealed),
    /// Another replica is calling the provider until [`Pending::remaining`] runs out.
    Pending(Pending),
}

/// A holder's outcome for [`SharedStore::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The sealed 200 body: becomes a `D` record, replayed to identical requests.
    Answer(Sealed),
    /// The sealed error reply: becomes an `E` record carrying the holder's owner id; waiters on
    /// that owner share it, and it never blocks a new claim.
    Error(Sealed),
}

/// A GCRA quota: one request per `emission`, up to `burst` at once (`governor`'s
/// `Quota::with_period(emission).allow_burst(burst)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    emission_us: u64,
    burst: u32,
}

impl RateQuota {
    /// `per_minute` requests a minute sustained, `burst` at once (the `[rate_limit]` buckets).
    pub fn per_minute(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_period(Duration::from_secs(60) / per_minute.get(), burst)
    }

    /// One request per `emission` (whole microseconds, at least 1, at most a day), `burst` at
    /// once.
    pub fn with_period(emission: Duration, burst: NonZeroU32) -> Self {
        let emission_us = u64::try_from(emission.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_EMISSION_US);
        // The script keeps a TAT as a double: the furthest one (now + burst × emission) must stay
        // exact, far below 2^53 µs.
        let max_burst = u32::try_from(MAX_SPAN_US / emission_us).unwrap_or(u32::MAX);
        Self {
            emission_us,
            burst: burst.get().min(max_burst),
        }
    }

    /// Microseconds per request.
    pub fn emission_us(&self) -> u64 {
        self.emission_us
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How far ahead of now a legitimate TAT can be: `burst × emission`.
    fn span_us(&self) -> u64 {
        self.emission_us * u64::from(self.burst)
    }
}

/// The longest emission interval kept: one request a day.
const MAX_EMISSION_US: u64 = 86_400_000_000;
/// The longest bucket span kept (about 31 years): with today's clock (about 1.8e15 µs since 1970)
/// every TAT stays an exact integer in a double.
const MAX_SPAN_US: u64 = 1_000_000_000_000_000;
/// Slack beyond a bucket's span before a stored TAT counts as corrupt.
const TAT_SLACK_US: u64 = 1_000_000;
/// The shortest bucket TTL on a synthetic clock (`gcra_at`), where real time does not follow the
/// clock and an expiry in real time would forget a bucket that is not full.
const SYNTHETIC_MIN_TTL_MS: u64 = 60_000;

/// A rate-limit decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within the quota.
    Allow,
    /// Over it; the earliest a request could be allowed.
    Deny {
        /// Time until then (`Retry-After`, rounded up to whole seconds by the caller).
        retry_after: Duration,
    },
}

/// The store's health as callers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Answering.
    Ok,
    /// Failing: operations are refused at once for this much longer (zero while a probe is out);
    /// every mechanism runs per process meanwhile.
    Degraded {
        /// Until the next probe.
        retry_after: Duration,
    },
}

/// Why an operation did not happen. Never holds a key, a value or a server message; callers fall
/// back to per-process behaviour on every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The breaker is open after consecutive failures; nothing was sent.
    #[error("shared state store unavailable (breaker open, retry in {retry_after:?})")]
    Unavailable {
        /// Until the next probe.
        retry_after: Duration,
    },
    /// No answer within `op_timeout`.
    #[error("shared state store timed out")]
    Timeout,
    /// The store answered with an error, or the connection failed; the category only.
    #[error("shared state store failed: {0}")]
    Failed(&'static str),
    /// The store answered something this code never writes.
    #[error("shared state store returned a malformed value")]
    Corrupt,
}
