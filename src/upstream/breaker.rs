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
    /// The admission must be [`Admission::record`]ed; one dropped unrecorded (the caller went away,
    /// a panic) gives a probe's turn back instead of leaving the breaker waiting for it forever.
    pub fn admit(&self) -> Result<Admission<'_>, Duration> {
        if self.failures == 0 {
            return Ok(Admission {
                breaker: self,
                probe: false,
            });
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Ok(Admission {
                breaker: self,
                probe: false,
            }),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::Probing;
                    Ok(Admission {
                        breaker: self,
                        probe: true,
                    })
                } else {
                    Err(until - now)
                }
            }
            State::Probing => Err(Duration::from_secs(1)),
        }
    }

    /// Records an admitted call's outcome: `true` when the provider worked (a token, or an OAuth
    /// error about the grant, which also means it is up).
    fn record(&self, provider_worked: bool) {
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
                until: Instant::now()
                    .checked_add(self.cooldown)
                    .unwrap_or_else(Instant::now),
            },
        };
    }

    /// A probe that ended without an outcome: the next request may probe.
    fn abandon_probe(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Probing) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
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

/// Permission for one provider call; report its outcome with [`Admission::record`].
#[must_use = "record the call's outcome"]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Admission<'_> {
    /// Reports the call's outcome (see [`Breaker::admit`]).
    pub fn record(mut self, provider_worked: bool) {
        self.breaker.record(provider_worked);
        self.probe = false;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.abandon_probe();
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
            breaker.admit().expect("closed").record(false);
        }
        assert_eq!(breaker.health(), Health::Ok);
        breaker.admit().expect("closed").record(true);
        for _ in 0..3 {
            breaker.admit().expect("closed").record(false);
        }
        assert!(breaker.admit().is_err(), "open after 3 in a row");
        std::thread::sleep(Duration::from_millis(50));
        let probe = breaker.admit().expect("one probe after the cooldown");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        probe.record(false);
        assert!(breaker.admit().is_err(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(50));
        breaker.admit().expect("probe").record(true);
        assert_eq!(breaker.health(), Health::Ok);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn zero_failures_disables_it() {
        let breaker = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            breaker.admit().expect("always admitted").record(false);
        }
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn an_abandoned_probe_gives_its_turn_back() {
        let breaker = Breaker::new(1, Duration::from_millis(10));
        breaker.admit().expect("closed").record(false);
        std::thread::sleep(Duration::from_millis(20));
        let probe = breaker.admit().expect("probe");
        drop(probe); // the caller went away mid-call
        breaker
            .admit()
            .expect("the next request probes")
            .record(true);
        assert_eq!(breaker.health(), Health::Ok);
    }
}
