//! The one circuit breaker, used for each provider ([`crate::upstream`]) and for the shared state
//! store ([`crate::state`]): after `failures` consecutive failures nothing is attempted for
//! `cooldown` (each attempt is refused at once), then one probe goes; its outcome closes or
//! re-opens the breaker. A recorded outcome reports whether it changed the breaker's health, so a
//! caller can log once per change rather than once per request.

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

impl State {
    fn closed(self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

/// The breaker. Cheap: one mutex taken twice per attempt.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// What the breaker lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Attempts go through.
    Ok,
    /// Failing: attempts are refused for this much longer (zero while a probe is in flight).
    Failing {
        /// Until the next probe may go.
        retry_after: Duration,
    },
}

/// A change of health caused by one recorded outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened.
    Opened,
    /// A probe succeeded: the breaker closed again.
    Closed,
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

    /// May an attempt go now? `Err(retry_after)` while open, zero while a probe is out. The
    /// admission must be [`Admission::record`]ed; one dropped unrecorded (the caller went away, a
    /// panic) gives a probe's turn back instead of leaving the breaker waiting for it forever.
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
            State::Probing => Err(Duration::ZERO),
        }
    }

    fn record(&self, ok: bool) -> Option<Transition> {
        if self.failures == 0 {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *state;
        let after = match (before, ok) {
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
        *state = after;
        match (before.closed(), after.closed()) {
            (true, false) => Some(Transition::Opened),
            (false, true) => Some(Transition::Closed),
            _ => None,
        }
    }

    /// A probe that ended without an outcome: the next attempt may probe.
    fn abandon_probe(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Probing) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    /// Ok while closed; failing while open or probing.
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

/// Permission for one attempt; report its outcome with [`Admission::record`].
#[must_use = "record the attempt's outcome"]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Admission<'_> {
    /// Reports whether the attempt worked; the change of health it caused, if any.
    pub fn record(mut self, ok: bool) -> Option<Transition> {
        self.probe = false;
        self.breaker.record(ok)
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
    fn opens_after_consecutive_failures_reports_each_change_once_and_probes() {
        let breaker = Breaker::new(3, Duration::from_millis(40));
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(breaker.health(), Health::Ok);
        assert_eq!(breaker.admit().expect("closed").record(true), None);
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(
            breaker.admit().expect("closed").record(false),
            Some(Transition::Opened),
            "open after 3 in a row"
        );
        assert!(matches!(breaker.health(), Health::Failing { .. }));
        assert!(breaker.admit().is_err(), "open");
        std::thread::sleep(Duration::from_millis(50));
        let probe = breaker.admit().expect("one probe after the cooldown");
        assert_eq!(
            breaker.admit().err(),
            Some(Duration::ZERO),
            "one probe at a time"
        );
        assert_eq!(
            probe.record(false),
            None,
            "a failed probe re-opens: no new change"
        );
        assert!(breaker.admit().is_err(), "re-opened");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            breaker.admit().expect("probe").record(true),
            Some(Transition::Closed)
        );
        assert_eq!(breaker.health(), Health::Ok);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn zero_failures_disables_it() {
        let breaker = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            assert_eq!(
                breaker.admit().expect("always admitted").record(false),
                None
            );
        }
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.health(), Health::Ok);
    }

    #[test]
    fn an_abandoned_probe_gives_its_turn_back() {
        let breaker = Breaker::new(1, Duration::from_millis(10));
        let _ = breaker.admit().expect("closed").record(false);
        std::thread::sleep(Duration::from_millis(20));
        drop(breaker.admit().expect("probe")); // the caller went away mid-call
        assert_eq!(
            breaker
                .admit()
                .expect("the next attempt probes")
                .record(true),
            Some(Transition::Closed)
        );
        assert_eq!(breaker.health(), Health::Ok);
    }
}
