//! Replay and single-flight across replicas, through the shared store (`[state]`): what
//! [`super::Exchange::redeem`] does after a local replay miss, inside its local flight (so only
//! one request per replica reaches the store for a given grant).
//!
//! 1. Claim the flight with a lease of the provider's deadline + two store operations (the claim's
//!    and the completion's round trips, each at most `op_timeout`) + [`LEASE_MARGIN`]: the
//!    holder's whole provider call (one deadline covers connect, send, body and the next-secret
//!    retry) and its completion end inside its lease by construction, however slow the store
//!    answers within its timeout, so a live holder never loses it and no renewal is needed
//!    (oauth2-proxy's 2 s unrenewed lock is the counter-example).
//! 2. Held: call the provider, then complete the flight with the sealed outcome (`D` for a 200,
//!    replayed for the window; `E` for an error, or for a 200 when replay is off, shared with the
//!    waiters of this call only).
//! 3. Another replica's `D`: open it with the request's own key and answer it (a record that does
//!    not open is discarded and counts as a miss, never as an answer).
//! 4. Another replica holds it: poll until its outcome appears. A waiter never calls the provider
//!    itself while the lease lives: when its own budget (the provider deadline) runs out, or the
//!    holder vanished without an outcome, it answers 503 with a `Retry-After` landing after the
//!    lease, and that retry claims the vacant flight (a takeover). The one exception is the
//!    store failing mid-wait (below).
//!
//! Any store failure falls back to the per-process path (fail open): a store outage is never a
//! login outage. Sealed values are bound to the index and their kind; nothing stored holds a
//! code, verifier, token or client IP.

use super::replay::ReplayKey;
use crate::reply::{ApiError, Reply};
use crate::state::{
    record_fallback, Claim, Completion, FlightIndex, Pending, Record, Sealed, SharedStore,
    StoreError,
};
use axum::http::StatusCode;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// How much longer a holder's lease is than the provider deadline and two store operations:
/// scheduling and clock differences.
pub const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// How long an `E` record (a failed call's reply) stays for the waiters of that call.
const ERROR_TTL: Duration = Duration::from_secs(5);
/// How long a 200 stays for the waiters of its call when replay is off (`window_secs = 0`).
const WAITERS_TTL: Duration = Duration::from_secs(2);
/// Waiters' polling intervals: quick at first (a holder that is nearly done), then steady.
const POLL: [u64; 5] = [10, 20, 40, 80, 160];
const POLL_STEADY: Duration = Duration::from_millis(200);
/// Claims tried when records do not open (tampered or foreign) before going on per process.
const ATTEMPTS: usize = 3;
/// Seal kinds (bound into the associated data).
const ANSWER: u8 = b'D';
const ERROR: u8 = b'E';

/// What the shared path decided.
pub(super) enum Step {
    /// Answer this.
    Reply(Reply),
    /// Another replica holds the flight past this request's budget, or went away without an
    /// outcome: answer this 503; the retry may take the flight over.
    GaveUp(Reply),
    /// This replica holds the flight: call the provider, then [`complete`].
    Hold(Pending),
    /// The store did not answer: go on per process.
    Fallback,
}

/// How a waiter's wait ended.
enum Waited {
    Reply(Reply),
    GaveUp(Reply),
    /// A record that did not open was discarded: claim again.
    Again,
    /// The store failed while waiting.
    Fallback,
}

/// Claims the flight for `key`, or answers from the store.
pub(super) async fn claim(
    store: &dyn SharedStore,
    key: &ReplayKey,
    deadline: Duration,
    started: Instant,
) -> Step {
    let index = FlightIndex::new(key.index());
    let lease = deadline + 2 * store.op_timeout() + LEASE_MARGIN;
    for _ in 0..ATTEMPTS {
        let Some(pending) = Pending::new(lease) else {
            return Step::Fallback;
        };
        match store.claim(&index, &pending).await {
            // A claim that timed out may still land (a slow store, one thawed after a freeze):
            // held as if it had, so `complete` (compare-and-set: ours or vacant) settles it,
            // instead of an orphaned lease that other replicas' retries would wait out.
            Err(StoreError::Timeout) => {
                record_fallback("claim");
                return Step::Hold(pending);
            }
            Err(_) => {
                record_fallback("claim");
                return Step::Fallback;
            }
            Ok(Claim::Held) => return Step::Hold(pending),
            Ok(Claim::Done(sealed)) => match key.open(ANSWER, sealed.as_bytes()) {
                Some(body) => return Step::Reply(Reply::replayed(Bytes::from(body))),
                None => discard(store, &index, &Record::Answer(sealed)).await,
            },
            Ok(Claim::Pending(holder)) => {
                match wait(store, key, &index, holder, started + deadline).await {
                    Waited::Reply(reply) => return Step::Reply(reply),
                    Waited::GaveUp(reply) => return Step::GaveUp(reply),
                    // Claiming again late in the budget must not give this request a second
                    // provider deadline: past it, answer like any waiter that ran out.
                    Waited::Again if Instant::now() >= started + deadline => {
                        return Step::GaveUp(gave_up(Duration::ZERO))
                    }
                    Waited::Again => {}
                    Waited::Fallback => return Step::Fallback,
                }
            }
        }
    }
    Step::Fallback
}

/// Polls another replica's flight until its outcome, or until `until` / its lease runs out.
async fn wait(
    store: &dyn SharedStore,
    key: &ReplayKey,
    index: &FlightIndex,
    mut holder: Pending,
    until: Instant,
) -> Waited {
    let mut polls = POLL.iter().map(|ms| Duration::from_millis(*ms));
    loop {
        let pause = polls.next().unwrap_or(POLL_STEADY);
        let now = Instant::now();
        if now + pause > until {
            return Waited::GaveUp(gave_up(holder.remaining()));
        }
        tokio::time::sleep(pause).await;
        match store.peek(index).await {
            // The store stopped answering mid-wait: fail open, like every store failure (a store
            // outage is never a login outage). The cost, said in the README: this request may
            // reach the provider while the other replica's identical call is in flight.
            Err(_) => {
                record_fallback("peek");
                return Waited::Fallback;
            }
            // The holder went away without an outcome (its lease ran out, or it gave up).
            Ok(None) => return Waited::GaveUp(gave_up(Duration::ZERO)),
            Ok(Some(Record::Pending(current))) => holder = current,
            Ok(Some(Record::Answer(sealed))) => {
                return match key.open(ANSWER, sealed.as_bytes()) {
                    Some(body) => {
                        let mut reply = Reply::replayed(Bytes::from(body));
                        reply.outcome.served_from = Some("shared");
                        Waited::Reply(reply)
                    }
                    None => {
                        discard(store, index, &Record::Answer(sealed)).await;
                        Waited::Again
                    }
                }
            }
            Ok(Some(Record::Error { owner, sealed })) => {
                if owner != holder.owner() {
                    // A later call's error: ours ended without one we can share.
                    return Waited::GaveUp(gave_up(Duration::ZERO));
                }
                return match key.open(ERROR, sealed.as_bytes()).and_then(decode_error) {
                    Some(mut reply) => {
                        reply.outcome.served_from = Some("shared");
                        Waited::Reply(reply)
                    }
                    None => {
                        discard(store, index, &Record::Error { owner, sealed }).await;
                        Waited::GaveUp(gave_up(Duration::ZERO))
                    }
                };
            }
        }
    }
}

/// 503 with a `Retry-After` that lands after the holder's lease (at least 1 s).
fn gave_up(lease_left: Duration) -> Reply {
    let secs = lease_left.as_secs() + u64::from(lease_left.subsec_nanos() > 0);
    ApiError::Unavailable {
        retry_after: secs.max(1),
        reason: "flight_pending",
    }
    .into()
}

/// Stores the holder's outcome; `window` is the replay window.
pub(super) async fn complete(
    store: &dyn SharedStore,
    key: &ReplayKey,
    pending: &Pending,
    reply: &Reply,
    window: Duration,
) {
    let index = FlightIndex::new(key.index());
    // With replay off, a success is for this call's waiters only (like an error): a later
    // identical request, on any replica, must reach the provider.
    let outcome = if reply.status.is_success() && !window.is_zero() {
        key.seal(ANSWER, &reply.body)
            .and_then(Sealed::new)
            .map(|sealed| (Completion::Answer(sealed), window))
    } else {
        let ttl = if reply.status.is_success() {
            WAITERS_TTL
        } else {
            ERROR_TTL
        };
        key.seal(ERROR, &encode_error(reply))
            .and_then(Sealed::new)
            .map(|sealed| (Completion::Error(sealed), ttl))
    };
    let result = match outcome {
        Some((completion, ttl)) => store.complete(&index, pending, completion, ttl).await,
        // Nothing storable (an answer over the size cap): release the flight.
        None => store
            .discard(&index, &Record::Pending(*pending))
            .await
            .map(|_| true),
    };
    match result {
        Ok(true) => {}
        Ok(false) => tracing::debug!("flight completed after another replica took it over"),
        Err(_) => record_fallback("complete"),
    }
}

async fn discard(store: &dyn SharedStore, index: &FlightIndex, record: &Record) {
    tracing::warn!("a shared flight record did not open (tampered or foreign); treated as absent");
    crate::state::record_corrupt();
    if store.discard(index, record).await.is_err() {
        record_fallback("discard");
    }
}

/// An error reply as sealed in an `E` record: status (2 bytes), `Retry-After` (8 bytes,
/// `u64::MAX` for none), the error code (1-byte length, then the code), the JSON body.
fn encode_error(reply: &Reply) -> Vec<u8> {
    let code = reply.outcome.error.as_deref().unwrap_or("").as_bytes();
    let code = &code[..code.len().min(255)];
    let mut out = Vec::with_capacity(11 + code.len() + reply.body.len());
    out.extend_from_slice(&reply.status.as_u16().to_be_bytes());
    out.extend_from_slice(&reply.retry_after.unwrap_or(u64::MAX).to_be_bytes());
    out.push(code.len() as u8);
    out.extend_from_slice(code);
    out.extend_from_slice(&reply.body);
    out
}

fn decode_error(bytes: Vec<u8>) -> Option<Reply> {
    let status = StatusCode::from_u16(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?)).ok()?;
    let retry_after = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
    let code_len = usize::from(*bytes.get(10)?);
    let code = std::str::from_utf8(bytes.get(11..11 + code_len)?).ok()?;
    let body = bytes.get(11 + code_len..)?;
    let mut reply = Reply::ok(Bytes::copy_from_slice(body), None);
    reply.status = status;
    reply.outcome.upstream = None;
    reply.outcome.error = (!code.is_empty()).then(|| code.to_owned());
    reply.retry_after = (retry_after != u64::MAX).then_some(retry_after);
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_survives_sealing() {
        let reply: Reply = ApiError::RateLimited { retry_after: 7 }.into();
        let back = decode_error(encode_error(&reply)).expect("decodes");
        assert_eq!(back.status, reply.status);
        assert_eq!(back.body, reply.body);
        assert_eq!(back.retry_after, Some(7));
        assert_eq!(back.outcome.error, reply.outcome.error);
        assert!(decode_error(vec![1, 2, 3]).is_none());
    }
}
