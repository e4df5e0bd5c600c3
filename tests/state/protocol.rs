//! The flight protocol and the rate limiter's semantics, written once and run against both
//! backends (see `on_both_backends!`).

use crate::{derive, fresh_index, keys, open, seal, sealed, Backend};
use governor::clock::{Clock, FakeRelativeClock};
use governor::{Quota, RateLimiter};
use kick_oauth_proxy::state::{Claim, Completion, Decision, Pending, RateQuota, Record};
use std::num::NonZeroU32;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(12);
const WINDOW: Duration = Duration::from_secs(60);

fn pending() -> Pending {
    Pending::new(LEASE).expect("randomness")
}

/// Claim → wait → complete → replay, the path of two replicas receiving the same exchange.
pub async fn one_holder_claims_others_wait_and_then_replay_its_answer(backend: &Backend) {
    let store = backend.store();
    let index = fresh_index();
    let (a, b) = (pending(), pending());
    assert_eq!(store.claim(&index, &a).await, Ok(Claim::Held));
    assert_eq!(
        store.claim(&index, &a).await,
        Ok(Claim::Held),
        "the holder's own claim again (a retried call) still holds"
    );
    match store.claim(&index, &b).await {
        Ok(Claim::Pending(holder)) => {
            assert_eq!(holder, a, "the waiter sees the holder's owner and deadline");
            let left = holder.remaining();
            assert!(
                left > LEASE - Duration::from_secs(2) && left <= LEASE,
                "{left:?}"
            );
        }
        other => panic!("a second claimer must wait, got {other:?}"),
    }
    assert_eq!(store.peek(&index).await, Ok(Some(Record::Pending(a))));
    let answer = sealed(200);
    assert_eq!(
        store
            .complete(&index, &a, Completion::Answer(answer.clone()), WINDOW)
            .await,
        Ok(true)
    );
    assert_eq!(
        store.peek(&index).await,
        Ok(Some(Record::Answer(answer.clone()))),
        "the waiter's poll finds the answer"
    );
    assert_eq!(
        store.claim(&index, &pending()).await,
        Ok(Claim::Done(answer.clone())),
        "a later retry on any replica replays it"
    );
    assert_eq!(
        store.peek(&fresh_index()).await,
        Ok(None),
        "other flights are untouched"
    );
    println!("claim/wait/complete/replay: ok on {}", store.backend());
}

/// Compare-and-set: only the holder's exact `P` can be completed over.
pub async fn a_non_holder_cannot_complete_over_the_holder(backend: &Backend) {
    let store = backend.store();
    let index = fresh_index();
    let (a, b) = (pending(), pending());
    assert_eq!(store.claim(&index, &a).await, Ok(Claim::Held));
    assert_eq!(
        store
            .complete(&index, &b, Completion::Answer(sealed(64)), WINDOW)
            .await,
        Ok(false),
        "B does not hold the flight"
    );
    assert_eq!(store.peek(&index).await, Ok(Some(Record::Pending(a))));
    let answer = sealed(64);
    assert_eq!(
        store
            .complete(&index, &a, Completion::Answer(answer.clone()), WINDOW)
            .await,
        Ok(true)
    );
    assert_eq!(
        store
            .complete(&index, &a, Completion::Error(sealed(64)), WINDOW)
            .await,
        Ok(false),
        "once done, even the old holder cannot overwrite the answer"
    );
    assert_eq!(store.peek(&index).await, Ok(Some(Record::Answer(answer))));
    // A holder whose P vanished (lease over, nobody else came) still leaves its answer.
    let vacant = fresh_index();
    assert_eq!(
        store
            .complete(&vacant, &a, Completion::Answer(sealed(64)), WINDOW)
            .await,
        Ok(true)
    );
}

/// `E` records: waiters of that owner share the error; a new claim is never blocked by one.
pub async fn an_error_record_is_shared_with_waiters_but_never_blocks_a_claim(backend: &Backend) {
    let store = backend.store();
    let index = fresh_index();
    let (a, b) = (pending(), pending());
    assert_eq!(store.claim(&index, &a).await, Ok(Claim::Held));
    let reply = sealed(90);
    assert_eq!(
        store
            .complete(
                &index,
                &a,
                Completion::Error(reply.clone()),
                Duration::from_secs(5)
            )
            .await,
        Ok(true)
    );
    assert_eq!(
        store.peek(&index).await,
        Ok(Some(Record::Error {
            owner: a.owner(),
            sealed: reply
        })),
        "a waiter that saw A's P finds A's error"
    );
    assert_eq!(
        store.claim(&index, &b).await,
        Ok(Claim::Held),
        "a retry calls the provider again"
    );
    assert_eq!(store.peek(&index).await, Ok(Some(Record::Pending(b))));
}

/// `discard` is a compare-and-delete: a holder releases its own claim, nobody else's.
pub async fn discard_removes_only_the_exact_record(backend: &Backend) {
    let store = backend.store();
    let index = fresh_index();
    let (a, b) = (pending(), pending());
    assert_eq!(store.claim(&index, &a).await, Ok(Claim::Held));
    assert_eq!(store.discard(&index, &Record::Pending(b)).await, Ok(false));
    assert_eq!(store.peek(&index).await, Ok(Some(Record::Pending(a))));
    assert_eq!(store.discard(&index, &Record::Pending(a)).await, Ok(true));
    assert_eq!(store.peek(&index).await, Ok(None));
    assert_eq!(store.claim(&index, &b).await, Ok(Claim::Held));
    assert_eq!(
        store.discard(&fresh_index(), &Record::Pending(b)).await,
        Ok(false)
    );
}

/// A `P` lives until its deadline (a dead holder's claim frees itself); `D` for its TTL.
pub async fn pending_and_done_records_expire(backend: &Backend) {
    let store = backend.store();
    let index = fresh_index();
    let short = Pending::new(Duration::from_millis(300)).expect("randomness");
    assert_eq!(store.claim(&index, &short).await, Ok(Claim::Held));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(store.peek(&index).await, Ok(None), "the lease ran out");
    let b = pending();
    assert_eq!(
        store.claim(&index, &b).await,
        Ok(Claim::Held),
        "takeover after a dead holder"
    );
    assert_eq!(
        store
            .complete(
                &index,
                &b,
                Completion::Answer(sealed(64)),
                Duration::from_millis(300)
            )
            .await,
        Ok(true)
    );
    assert!(matches!(
        store.peek(&index).await,
        Ok(Some(Record::Answer(_)))
    ));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.peek(&index).await,
        Ok(None),
        "the replay window ended"
    );
}

/// A `D` that will not open under the request's key (tampered, or sealed under other inputs)
/// is a miss: the caller discards it and claims the flight itself, never answering with it.
pub async fn a_record_that_does_not_open_is_discarded_and_claimed_again(backend: &Backend) {
    let store = backend.store();
    let salt = keys().replay_salt();
    let (index, key) = derive(&salt, &["kick", "refresh", "refresh-token-1"]);
    let (_, other_key) = derive(&salt, &["kick", "refresh", "refresh-token-2"]);
    let holder = pending();
    assert_eq!(store.claim(&index, &holder).await, Ok(Claim::Held));
    // Sealed under a key the next request does not hold.
    let foreign = seal(&other_key, &index, br#"{"access_token":"not-yours"}"#);
    assert_eq!(
        store
            .complete(&index, &holder, Completion::Answer(foreign), WINDOW)
            .await,
        Ok(true)
    );
    let retry = pending();
    let Ok(Claim::Done(found)) = store.claim(&index, &retry).await else {
        panic!("the D record stands");
    };
    assert_eq!(open(&key, &index, &found), None, "it does not open");
    assert_eq!(
        store.discard(&index, &Record::Answer(found)).await,
        Ok(true)
    );
    assert_eq!(store.claim(&index, &retry).await, Ok(Claim::Held));
    let good = seal(&key, &index, br#"{"access_token":"yours"}"#);
    assert_eq!(
        store
            .complete(&index, &retry, Completion::Answer(good), WINDOW)
            .await,
        Ok(true)
    );
    let Ok(Claim::Done(found)) = store.claim(&index, &pending()).await else {
        panic!("the new D record stands");
    };
    assert_eq!(
        open(&key, &index, &found).as_deref(),
        Some(&br#"{"access_token":"yours"}"#[..])
    );
}

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The note's T9: the GCRA script and `governor` (what the per-process limiter runs) make the
/// same decision, with the same wait, at every arrival of random sequences on a synthetic clock.
pub async fn gcra_decides_exactly_as_governor_on_random_arrivals(backend: &Backend) {
    let keys = keys();
    // (emission µs, burst): the shipped token/refresh quotas, a per-minute rate that does not
    // divide evenly (7/min), bursts of 1.
    let quotas: [(u64, u32); 6] = [
        (2_000_000, 10),
        (1_000_000, 20),
        (8_571_428, 10),
        (250_000, 1),
        (60_000_000, 2),
        (3_333, 5),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start_us: u64 = 1_800_000_000_000_000;
    for (q, &(emission_us, burst)) in quotas.iter().enumerate() {
        let burst_nz = NonZeroU32::new(burst).expect("non-zero");
        let period = Duration::from_micros(emission_us);
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(
            Quota::with_period(period)
                .expect("non-zero period")
                .allow_burst(burst_nz),
            clock.clone(),
        );
        let quota = RateQuota::with_period(period, burst_nz);
        let key = keys.rate_key(&format!("t9-{q}"), "192.0.2.1".parse().expect("ip"));
        let (mut offset, mut allowed, mut denied) = (0u64, 0, 0);
        for step in 0..300 {
            // Bursts (no gap), gaps shorter than one emission, and now and then a pause long
            // enough to refill part or all of the bucket.
            let gap = match rng.next() % 16 {
                0..=5 => 0,
                6..=9 => rng.next() % (emission_us / 4 + 1),
                10..=14 => rng.next() % emission_us,
                _ => rng.next() % (emission_us * u64::from(burst) + 1),
            };
            offset += gap;
            clock.advance(Duration::from_micros(gap));
            let expected = match limiter.check() {
                Ok(()) => Decision::Allow,
                Err(not_until) => Decision::Deny {
                    retry_after: not_until.wait_time_from(clock.now()),
                },
            };
            let got = backend.gcra_at(&key, quota, start_us + offset).await;
            assert_eq!(
                got, expected,
                "quota {q} ({emission_us} µs, burst {burst}), step {step}, t = +{offset} µs"
            );
            match got {
                Decision::Allow => allowed += 1,
                Decision::Deny { .. } => denied += 1,
            }
        }
        assert!(
            allowed > 0 && denied > 0,
            "quota {q}: {allowed} allowed, {denied} denied"
        );
        println!("T9 quota {q}: {allowed} allowed, {denied} denied, all as governor decided");
    }
}

/// With the store's own clock: burst 2 at 1/min allows two, then asks for about a minute
/// (the per-process limiter's test `burst_then_refused_with_a_wait_of_about_one_refill`).
pub async fn gcra_with_the_store_clock_allows_the_burst_then_waits_one_refill(backend: &Backend) {
    let store = backend.store();
    let keys = keys();
    let quota = RateQuota::per_minute(
        NonZeroU32::new(1).expect("1"),
        NonZeroU32::new(2).expect("2"),
    );
    let client = keys.rate_key("token", "203.0.113.1".parse().expect("ip"));
    assert_eq!(store.gcra(&client, quota).await, Ok(Decision::Allow));
    assert_eq!(store.gcra(&client, quota).await, Ok(Decision::Allow));
    match store.gcra(&client, quota).await {
        Ok(Decision::Deny { retry_after }) => assert!(
            retry_after > Duration::from_secs(55) && retry_after <= Duration::from_secs(60),
            "{retry_after:?}"
        ),
        other => panic!("the third is over the burst: {other:?}"),
    }
    let other = keys.rate_key("token", "203.0.113.2".parse().expect("ip"));
    assert_eq!(store.gcra(&other, quota).await, Ok(Decision::Allow));
    let same_64 = keys.rate_key("token", "2001:db8:7:7::1".parse().expect("ip"));
    let neighbour = keys.rate_key("token", "2001:db8:7:7:ffff::2".parse().expect("ip"));
    let one = RateQuota::per_minute(NonZeroU32::new(1).expect("1"), NonZeroU32::MIN);
    assert_eq!(store.gcra(&same_64, one).await, Ok(Decision::Allow));
    assert!(
        matches!(store.gcra(&neighbour, one).await, Ok(Decision::Deny { .. })),
        "an IPv6 /64 is one client"
    );
}
