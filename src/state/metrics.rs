//! The store's metrics, through the `metrics` facade; skipped while no recorder is installed
//! (as everywhere in [`crate::metrics`]). Labels are fixed words: never a key or a value.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `kick_proxy_state_ops_total` | counter | op (`claim`, `complete`, `discard`, `peek`, `gcra`, `ping`), outcome (`ok`, `error`, `timeout`, `unavailable`, `corrupt`) |
//! | `kick_proxy_state_op_duration_seconds` | histogram | op (operations attempted, not those the breaker refused) |
//! | `kick_proxy_state_backend_up` | gauge | 1 while the store's breaker is closed, 0 while it is open |
//! | `kick_proxy_state_fallback_total` | counter | op: a request went on per process because the store did not answer |
//! | `kick_proxy_flight_takeovers_total` | counter | a flight whose holder went away was claimed by a retry |

use std::time::Duration;

/// One operation and how it ended; `elapsed` when it was attempted.
pub(super) fn record_op(op: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
    if !crate::metrics::enabled() {
        return;
    }
    metrics::counter!("kick_proxy_state_ops_total", "op" => op, "outcome" => outcome).increment(1);
    if let Some(elapsed) = elapsed {
        metrics::histogram!("kick_proxy_state_op_duration_seconds", "op" => op)
            .record(elapsed.as_secs_f64());
    }
}

/// Whether the store is answering.
pub(super) fn record_backend_up(up: bool) {
    if crate::metrics::enabled() {
        metrics::gauge!("kick_proxy_state_backend_up").set(if up { 1.0 } else { 0.0 });
    }
}

/// A request went on per process because `op` failed.
pub(super) fn record_fallback(op: &'static str) {
    if crate::metrics::enabled() {
        metrics::counter!("kick_proxy_state_fallback_total", "op" => op).increment(1);
    }
}

/// A flight taken over from a holder that went away.
pub(super) fn record_takeover() {
    if crate::metrics::enabled() {
        metrics::counter!("kick_proxy_flight_takeovers_total").increment(1);
    }
}
