//! The store's own breaker: after `failures` consecutive failed operations, no operation is
//! attempted for `cooldown` (each returns at once), then one probe goes; its outcome closes or
//! re-opens the breaker. Like [`crate::upstream::breaker`], but it also reports when the store's
//! health changes, so the caller logs once per change and not once per request.

use super::Health;
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
    fn healthy(self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

/// A change of health caused by one operation's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// The breaker opened: the store is degraded.
    Down,
    /// A probe succeeded: the store is answering again.
    Up,
}

#[derive(Debug)]
pub(super) struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `failures` (at least 1) consecutive failures, for `cooldown`.
    pub(super) fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cooldown,
            state: Mutex::new(State::Closed { consecutive: 0 }),
        }
    }

    /// May an operation go now? `Err(retry_after)` while open or while a probe is out.
    pub(super) fn admit(&self) -> Result<Ticket<'_>, Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Ok(Ticket {
                breaker: self,
                probe: false,
            }),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::Probing;
                    Ok(Ticket {
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
        match (before.healthy(), after.healthy()) {
            (true, false) => Some(Transition::Down),
            (false, true) => Some(Transition::Up),
            _ => None,
        }
    }

    fn abandon_probe(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Probing) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    /// Ok while closed; degraded while open or probing.
    pub(super) fn health(&self) -> Health {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed { .. } => Health::Ok,
            State::Open { until } => Health::Degraded {
                retry_after: until.saturating_duration_since(Instant::now()),
            },
            State::Probing => Health::Degraded {
                retry_after: Duration::ZERO,
            },
        }
    }
}

/// Permission for one operation; report its outcome with [`Ticket::record`]. A probe's ticket
/// dropped unrecorded (the caller went away) gives the probe's turn back.
#[must_use = "record the operation's outcome"]
pub(super) struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Ticket<'_> {
    /// Reports whether the store answered; a change of health, if this caused one.
    pub(super) fn record(mut self, ok: bool) -> Option<Transition> {
        self.probe = false;
        self.breaker.record(ok)
    }
}

impl Drop for Ticket<'_> {
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
        assert_eq!(breaker.admit().expect("closed").record(true), None);
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(breaker.admit().expect("closed").record(false), None);
        assert_eq!(
            breaker.admit().expect("closed").record(false),
            Some(Transition::Down)
        );
        assert!(matches!(breaker.health(), Health::Degraded { .. }));
        assert!(breaker.admit().is_err(), "open");
        std::thread::sleep(Duration::from_millis(50));
        let probe = breaker.admit().expect("one probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        assert_eq!(probe.record(false), None, "still down: no new change");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            breaker.admit().expect("probe").record(true),
            Some(Transition::Up)
        );
        assert_eq!(breaker.health(), Health::Ok);
    }

    #[test]
    fn an_abandoned_probe_gives_its_turn_back() {
        let breaker = Breaker::new(1, Duration::from_millis(10));
        let _ = breaker.admit().expect("closed").record(false);
        std::thread::sleep(Duration::from_millis(20));
        drop(breaker.admit().expect("probe"));
        assert!(breaker.admit().is_ok(), "the next operation probes");
    }
}
