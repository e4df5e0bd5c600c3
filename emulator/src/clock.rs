//! The emulator's clock: wall time plus an offset that tests push forward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic emulator time, expressed as a duration since the Unix epoch so it can be reported
/// as `exp`. It starts at the wall clock and then advances with a monotonic clock plus whatever
/// [`Clock::advance`] added, so expiry never depends on the host clock jumping.
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    origin_unix: Duration,
    offset_nanos: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            origin_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Current emulator time since the Unix epoch.
    pub(crate) fn now(&self) -> Duration {
        let offset = Duration::from_nanos(self.offset_nanos.load(Ordering::Acquire));
        self.origin_unix
            .saturating_add(self.origin.elapsed())
            .saturating_add(offset)
    }

    /// Moves emulator time forward by `by` (saturating at about 584 years of offset).
    pub(crate) fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // The closure always returns Some, so fetch_update cannot fail.
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                Some(current.saturating_add(add))
            });
    }
}

/// Formats a Unix time the way Go prints a UTC `time.Time` rounded to the second
/// (`2006-01-02 15:04:05 +0000 UTC`), as fosite does in its expiry hints.
pub(crate) fn go_utc_string(unix: Duration) -> String {
    let secs = unix.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`,
/// restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + Duration::from_secs(3600));
    }

    #[test]
    fn go_format_matches_known_dates() {
        assert_eq!(
            go_utc_string(Duration::ZERO),
            "1970-01-01 00:00:00 +0000 UTC"
        );
        // 2025-11-25T12:34:56Z
        assert_eq!(
            go_utc_string(Duration::from_secs(1_764_074_096)),
            "2025-11-25 12:34:56 +0000 UTC"
        );
        // Leap day.
        assert_eq!(
            go_utc_string(Duration::from_secs(1_709_164_800)),
            "2024-02-29 00:00:00 +0000 UTC"
        );
    }
}
