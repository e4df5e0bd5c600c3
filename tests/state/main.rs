//! The shared-state store (`kick_oauth_proxy::state`) against a real `redis-server` and against
//! `MemoryShared`: the same protocol tests on both, then what only a real server can show
//! (tampering, what is readable at rest, outages, authentication, TLS).
//!
//! `redis-server` runs as a child process per test ([`server::RedisServer`]); without it these
//! tests skip loudly, except under `CI=true`, where they fail.

mod outage;
mod protocol;
mod replicas;
mod server;
mod stored;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use kick_oauth_proxy::config::state::{BackendKind, RedisSettings, StateSecret, StateSettings};
use kick_oauth_proxy::state::keys::{RateKey, StateKeys};
use kick_oauth_proxy::state::{
    Decision, FlightIndex, MemoryShared, RateQuota, RedisStore, Sealed, SharedStore,
};
use server::{Listen, RedisServer};
use sha2::Sha256;

/// The state secret every test replica shares.
pub const SECRET: &str = "CANARY-STATE-SECRET-0123456789abcdef0123456789";

/// Validated settings for a Redis store at `url`.
pub fn redis_settings(url: &str, op_timeout_ms: u64) -> StateSettings {
    StateSettings {
        backend: BackendKind::Redis,
        secret: Some(StateSecret::from_bytes(SECRET.into())),
        op_timeout_ms,
        redis: Some(RedisSettings {
            url: Some(url.to_owned()),
            ..RedisSettings::default()
        }),
        ..StateSettings::default()
    }
}

/// A store for `url`, built the way the application builds it (settings, validation).
pub fn redis_store(url: &str, op_timeout_ms: u64) -> RedisStore {
    store_from(&redis_settings(url, op_timeout_ms))
}

/// A store from settings that must validate.
pub fn store_from(settings: &StateSettings) -> RedisStore {
    let config = settings.validate().expect("valid settings");
    RedisStore::new(config.redis().expect("redis backend")).expect("store")
}

/// The keys every replica derives from [`SECRET`].
pub fn keys() -> StateKeys {
    StateKeys::derive(&StateSecret::from_bytes(SECRET.into()))
}

/// A fresh random flight index.
pub fn fresh_index() -> FlightIndex {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("randomness");
    FlightIndex::new(bytes)
}

/// Random sealed-looking bytes.
pub fn sealed(len: usize) -> Sealed {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("randomness");
    Sealed::new(bytes).expect("length in range")
}

/// A stand-in for the exchange's derivation, for the store-level tests: HKDF-SHA256 over secret
/// inputs, giving a flight index and a record key. The store only ever sees opaque bytes, so these
/// tests need records that open and records that do not, not the exchange's exact construction
/// (its index, key and associated data differ in detail); the production sealing is exercised end
/// to end through two replicas in `replicas.rs` (a retry replayed, a tampered record a miss).
pub fn derive(salt: &[u8; 32], parts: &[&str]) -> (FlightIndex, [u8; 32]) {
    let mut ikm = Vec::new();
    for part in parts {
        ikm.extend_from_slice(&(part.len() as u64).to_be_bytes());
        ikm.extend_from_slice(part.as_bytes());
    }
    let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut index, mut key) = ([0u8; 32], [0u8; 32]);
    hk.expand(b"kick-oauth-proxy replay index v1", &mut index)
        .expect("32 bytes");
    hk.expand(b"kick-oauth-proxy replay key v1", &mut key)
        .expect("32 bytes");
    (FlightIndex::new(index), key)
}

/// Seals `plaintext` as the stand-in record body: nonce ‖ ChaCha20-Poly1305 ciphertext, the index
/// as AAD (see [`derive`]).
pub fn seal(key: &[u8; 32], index: &FlightIndex, plaintext: &[u8]) -> Sealed {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("randomness");
    let ciphertext = ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: index.as_bytes(),
            },
        )
        .expect("seal");
    Sealed::new([&nonce[..], &ciphertext].concat()).expect("length in range")
}

/// Opens what [`seal`] made; `None` when it does not open (tampered, foreign).
pub fn open(key: &[u8; 32], index: &FlightIndex, sealed: &Sealed) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = sealed.as_bytes().split_at(12);
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: index.as_bytes(),
            },
        )
        .ok()
}

/// One backend under test, with what keeps it alive.
pub enum Backend {
    /// `MemoryShared`.
    Memory(MemoryShared),
    /// `RedisStore` on its own `redis-server` (TCP on loopback).
    Redis(Box<(RedisStore, RedisServer)>),
}

impl Backend {
    /// The in-process backend.
    pub fn memory() -> Self {
        Self::Memory(MemoryShared::new())
    }

    /// A Redis backend over TCP, or `None` when `redis-server` is missing locally. The timeout is
    /// generous: these tests are about semantics, not latency.
    pub fn redis() -> Option<Self> {
        let server = RedisServer::start(Listen::Tcp)?;
        let store = redis_store(&server.tcp_url(false), 2000);
        Some(Self::Redis(Box::new((store, server))))
    }

    /// The store, as the application sees it.
    pub fn store(&self) -> &dyn SharedStore {
        match self {
            Self::Memory(store) => store,
            Self::Redis(redis) => &redis.0,
        }
    }

    /// GCRA at a synthetic time (µs since the epoch).
    pub async fn gcra_at(&self, key: &RateKey, quota: RateQuota, now_us: u64) -> Decision {
        match self {
            Self::Memory(store) => store.gcra_at(key, quota, now_us),
            Self::Redis(redis) => redis
                .0
                .gcra_at(key, quota, now_us)
                .await
                .expect("redis answers"),
        }
    }
}

/// Protocol tests, once per backend: `memory::<test>` and `redis::<test>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::protocol::$name(&crate::Backend::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(backend) = crate::Backend::redis() else { return };
                    crate::protocol::$name(&backend).await;
                }
            )*
        }
    };
}

on_both_backends!(
    one_holder_claims_others_wait_and_then_replay_its_answer,
    a_non_holder_cannot_complete_over_the_holder,
    an_error_record_is_shared_with_waiters_but_never_blocks_a_claim,
    discard_removes_only_the_exact_record,
    pending_and_done_records_expire,
    a_record_that_does_not_open_is_discarded_and_claimed_again,
    gcra_decides_exactly_as_governor_on_random_arrivals,
    gcra_with_the_store_clock_allows_the_burst_then_waits_one_refill,
);

/// Two replicas, one store, end to end: the protocol items on both backends, the failure items on
/// Redis only (`replicas::*`). Multi-threaded: a test restarts `redis-server` synchronously while
/// its replicas keep serving.
macro_rules! replicas_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod replicas_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::replicas::$name(crate::replicas::Shared::memory()).await;
                }
            )*
        }
        mod replicas_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(shared) = crate::replicas::Shared::redis() else { return };
                    crate::replicas::$name(shared).await;
                }
            )*
        }
    };
}

replicas_on_both_backends!(
    a_retry_on_the_other_replica_gets_the_identical_answer,
    concurrent_refreshes_on_both_replicas_make_one_provider_call,
    a_client_alternating_between_replicas_gets_exactly_its_bucket,
    with_replay_off_an_identical_request_later_reaches_the_provider_again,
);

mod replicas_redis_only {

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_holder_blocks_no_one_past_its_lease() {
        crate::replicas::a_killed_holder_blocks_no_one_past_its_lease().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_killed_and_restarted_costs_no_5xx() {
        crate::replicas::a_store_killed_and_restarted_costs_no_5xx().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frozen_store_costs_only_the_first_few_requests_the_timeout() {
        crate::replicas::a_frozen_store_costs_only_the_first_few_requests_the_timeout().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_that_timed_out_but_landed_is_completed_for_a_retry_on_the_other_replica() {
        crate::replicas::a_claim_that_timed_out_but_landed_is_completed_for_a_retry_on_the_other_replica()
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_holds_no_canary_and_a_tampered_record_is_a_miss() {
        crate::replicas::the_store_holds_no_canary_and_a_tampered_record_is_a_miss().await;
    }
}
