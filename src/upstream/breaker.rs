//! A circuit breaker per provider: after `failures` consecutive failures (timeouts, connect
//! errors, resets, 5xx, HTML/WAF pages), requests fail fast with 503 for `cooldown` instead of each
//! holding a client for the whole deadline; then one probe goes through, and its outcome closes or
//! re-opens the breaker.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        consecutive: u32,
    },
    Open {
        until: Instant,
    },
    /// Cooldown over; one probe is in flight.
    Probing,
}

/// The breaker. Cheap: one mutex taken twice per provider call.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// How the breaker's provider is doing, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Calls go through.
    Ok,
    /// Failing: calls are refused for this much longer (zero while a probe is in flight).
    Failing {
        /// Until the next probe may go.
        retry_after: Duration,
    },
}

impl Breaker {
    /// Opens after `failures` consecutive failures (0 disables the breaker) for `cooldown`.
    pub fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures,
            cooldown,
            state: Mutex::new(State::Closed { consecutive: 0 }),
        }
    }

    /// May a call go now? `Err(retry_after)` when the breaker is open (or a probe is in flight).
    pub fn admit(&self) -> Result<(), Duration> {
        if self.failures == 0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::Probing;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            State::Probing => Err(Duration::from_secs(1)),
        }
    }

    /// Records an admitted call's outcome: `true` when the provider worked (a token, or an OAuth
    /// error about the grant, which also means it is up).
    pub fn record(&self, provider_worked: bool) {
        if self.failures == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = match (*state, provider_worked) {
            (_, true) => State::Closed { consecutive: 0 },
            (State::Closed { consecutive }, false) if consecutive + 1 < self.failures => {
                State::Closed {
                    consecutive: consecutive + 1,
                }
            }
            (_, false) => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
    }

    /// The provider's health as the breaker sees it.
    pub fn health(&self) -> Health {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed { .. } => Health::Ok,
            State::Open { until } => Health::Failing {
                retry_after: until.saturating_duration_since(Instant::now()),
            },
            State::Probing => Health::Failing {
                retry_after: Duration::ZERO,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(40));
        for _ in 0..2 {
            assert!(breaker.admit().is_ok());
            breaker.record(false);
        }
        assert_eq!(breaker.health(), Health::Ok);
        breaker.record(true);
        for _ in 0..3 {
            assert!(breaker.admit().is_ok());
            breaker.record(false);
        }
        assert!(breaker.admit().is_err(), "open after 3 in a row");
        std::thread::sleep(Duration::from_millis(50));
        assert!(breaker.admit().is_ok(), "one probe after the cooldown");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(false);
        assert!(breaker.admit().is_err(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(50));
        assert!(breaker.admit().is_ok());
        breaker.record(true);
        assert_eq!(breaker.health(), Health::Ok);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn zero_failures_disables_it() {
        let breaker = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            breaker.record(false);
        }
        assert!(breaker.admit().is_ok());
    }
}
