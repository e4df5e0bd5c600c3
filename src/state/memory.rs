//! [`MemoryShared`]: the [`SharedStore`] semantics in one process, over a map with expiries.
//!
//! It exists so the cross-replica protocol can be tested without a server (two application
//! instances in one test process sharing one `MemoryShared`), and the integration tests run the
//! same protocol against it and against Redis. Every rule is the scripts' rule
//! ([`super::scripts`]), in Rust; its clock is the wall clock, as Redis `TIME` is.

use super::keys::{bucket_key, flight_key, RateKey};
use super::record::{now_ms, now_us, pending_is_live, Pending, Record};
use super::redis::completion_record;
use super::{
    BoxFuture, Claim, Completion, Decision, FlightIndex, Health, RateQuota, SharedStore,
    StoreError, SYNTHETIC_MIN_TTL_MS, TAT_SLACK_US,
};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Operations between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 1024;

/// The shared store in one process. Never fails; always healthy.
#[derive(Default)]
pub struct MemoryShared {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    ops: u32,
}

struct Entry {
    value: Vec<u8>,
    expires: Instant,
}

impl Inner {
    /// The live value under `key`; an expired one is removed.
    fn get(&mut self, key: &str, now: Instant) -> Option<&[u8]> {
        self.ops = self.ops.wrapping_add(1);
        if self.ops.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, e| e.expires > now);
        }
        if self.entries.get(key).is_some_and(|e| e.expires <= now) {
            self.entries.remove(key);
        }
        self.entries.get(key).map(|e| e.value.as_slice())
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl: Duration, now: Instant) {
        let expires = now.checked_add(ttl).unwrap_or(now);
        self.entries.insert(key, Entry { value, expires });
    }
}

impl MemoryShared {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`SharedStore::gcra`] at a given time (µs since the Unix epoch), for tests that compare
    /// decisions with `governor` under a fake clock.
    pub fn gcra_at(&self, key: &RateKey, quota: RateQuota, now_us: u64) -> Decision {
        self.gcra_inner(key, quota, now_us, true)
    }

    fn gcra_inner(
        &self,
        key: &RateKey,
        quota: RateQuota,
        now_us: u64,
        synthetic: bool,
    ) -> Decision {
        let key = bucket_key("", key);
        let now = Instant::now();
        let mut inner = self.lock();
        let e = quota.emission_us();
        let stored = inner
            .get(&key, now)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        // A TAT this code cannot have written (too far ahead) restarts the bucket.
        let tat = match stored {
            Some(v) if v <= now_us.saturating_add(quota.span_us() + TAT_SLACK_US) => v.max(now_us),
            _ => now_us,
        };
        let allow_at = tat.saturating_sub(e * u64::from(quota.burst() - 1));
        if now_us < allow_at {
            return Decision::Deny {
                retry_after: Duration::from_micros(allow_at - now_us),
            };
        }
        let new_tat = tat + e;
        let mut ttl_ms = (new_tat - now_us).div_ceil(1000);
        if synthetic {
            ttl_ms = ttl_ms.max(SYNTHETIC_MIN_TTL_MS);
        }
        let ttl = Duration::from_millis(ttl_ms);
        inner.set(key, new_tat.to_string().into_bytes(), ttl, now);
        Decision::Allow
    }
}

impl SharedStore for MemoryShared {
    fn claim<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let key = flight_key("", index);
            let now = Instant::now();
            let mut inner = self.lock();
            match inner.get(&key, now).and_then(Record::decode) {
                Some(Record::Answer(sealed)) => return Ok(Claim::Done(sealed)),
                Some(Record::Pending(theirs)) if pending_is_live(&theirs, now_ms()) => {
                    return Ok(if theirs == *pending {
                        Claim::Held
                    } else {
                        Claim::Pending(theirs)
                    });
                }
                _ => {}
            }
            let ttl = pending.remaining().max(Duration::from_millis(1));
            inner.set(key, pending.encode(), ttl, now);
            Ok(Claim::Held)
        })
    }

    fn complete<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
        outcome: Completion,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = flight_key("", index);
            let now = Instant::now();
            let mut inner = self.lock();
            let ours = pending.encode();
            let stored = match inner.get(&key, now) {
                None => true,
                Some(current) => current == ours.as_slice(),
            };
            if stored {
                let record = completion_record(pending, outcome).encode();
                inner.set(key, record, ttl.max(Duration::from_millis(1)), now);
            }
            Ok(stored)
        })
    }

    fn discard<'a>(
        &'a self,
        index: &'a FlightIndex,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = flight_key("", index);
            let now = Instant::now();
            let mut inner = self.lock();
            let matches = inner.get(&key, now) == Some(record.encode().as_slice());
            if matches {
                inner.entries.remove(&key);
            }
            Ok(matches)
        })
    }

    fn peek<'a>(
        &'a self,
        index: &'a FlightIndex,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let key = flight_key("", index);
            let mut inner = self.lock();
            Ok(inner
                .get(&key, Instant::now())
                .and_then(Record::decode)
                .filter(
                    |record| !matches!(record, Record::Pending(p) if !pending_is_live(p, now_ms())),
                ))
        })
    }

    fn gcra<'a>(
        &'a self,
        key: &'a RateKey,
        quota: RateQuota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(async move { Ok(self.gcra_inner(key, quota, now_us(), false)) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn health(&self) -> Health {
        Health::Ok
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poke(store: &MemoryShared, index: &FlightIndex, value: &[u8]) {
        store.lock().set(
            flight_key("", index),
            value.to_vec(),
            Duration::from_secs(60),
            Instant::now(),
        );
    }

    #[tokio::test]
    async fn malformed_and_planted_values_are_vacant() {
        let store = MemoryShared::new();
        let index = FlightIndex::new([3; 32]);
        let owner = "0123456789abcdef";
        let year_ahead = now_ms() + 365 * 86_400_000;
        for planted in [
            b"garbage".to_vec(),
            b"Dshort".to_vec(),
            format!("P{owner}{year_ahead}").into_bytes(),
            format!("P{owner}1000").into_bytes(),
            format!("PXYZ{}", now_ms() + 5000).into_bytes(),
        ] {
            poke(&store, &index, &planted);
            assert_eq!(store.peek(&index).await, Ok(None));
            let pending = Pending::new(Duration::from_secs(5)).expect("randomness");
            assert_eq!(store.claim(&index, &pending).await, Ok(Claim::Held));
        }
    }

    #[tokio::test]
    async fn a_corrupt_tat_restarts_the_bucket() {
        let store = MemoryShared::new();
        let keys = crate::state::keys::StateKeys::derive(
            &crate::config::state::StateSecret::from_bytes(vec![9; 32]),
        );
        let key = keys.rate_key("token", "203.0.113.1".parse().expect("ip"));
        let quota = RateQuota::per_minute(
            std::num::NonZeroU32::new(1).expect("1"),
            std::num::NonZeroU32::new(2).expect("2"),
        );
        let now = now_us();
        let year = 365 * 86_400 * 1_000_000_u64;
        for planted in [format!("{}", now + year), "NaN".to_owned()] {
            store.lock().set(
                bucket_key("", &key),
                planted.into_bytes(),
                Duration::from_secs(60),
                Instant::now(),
            );
            assert_eq!(store.gcra_at(&key, quota, now), Decision::Allow);
        }
    }
}
