//! Injectable time, so that refresh-before-expiry can be tested without waiting for hours.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// A boxed, sendable future, as returned by [`Clock`] and [`crate::TokenStore`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of wall-clock time, and a way to wait for a wall-clock instant.
///
/// Token expiry (RFC 6749 §5.1 `expires_in`) is a wall-clock matter: a laptop that slept through the
/// refresh deadline must notice on waking, which a monotonic timer alone would not.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Completes once [`Clock::now`] is at or after `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;

    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self
            .now()
            .checked_add(duration)
            .unwrap_or_else(|| self.now());
        self.sleep_until(deadline)
    }
}

/// The real clock: [`SystemTime::now`], sleeping with tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Longest single timer the system clock arms before looking at the wall clock again: after a
/// suspend or a clock change the deadline is noticed within this long.
const SYSTEM_CLOCK_RECHECK: Duration = Duration::from_secs(30);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let left = match deadline.duration_since(SystemTime::now()) {
                    Ok(left) if !left.is_zero() => left,
                    _ => return,
                };
                tokio::time::sleep(left.min(SYSTEM_CLOCK_RECHECK)).await;
            }
        })
    }
}

/// A clock that only moves when told to ([`ManualClock::advance`], [`ManualClock::set`]). Sleepers
/// wake as soon as the clock reaches their deadline. Clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<SystemTime>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.borrow())
            .finish()
    }
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock forward by `by`, waking sleepers whose deadline passed.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| {
            if let Some(next) = now.checked_add(by) {
                *now = next;
            }
        });
    }

    /// Sets the clock to `to` (may go backwards, like a real wall clock).
    pub fn set(&self, to: SystemTime) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first; the sender lives as long as a clone of the
            // clock does. If every clone is gone, time can never reach the deadline: never wake.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_sleepers_wake_only_when_time_reaches_their_deadline() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(60)));
        clock.advance(Duration::from_secs(59));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
        assert_eq!(clock.now(), start + Duration::from_secs(60));
    }

    #[tokio::test]
    async fn system_clock_past_deadline_returns_at_once() {
        let past = SystemTime::now() - Duration::from_secs(5);
        tokio::time::timeout(Duration::from_millis(100), SystemClock.sleep_until(past))
            .await
            .expect("no wait for a past deadline");
    }
}
