//! The operating system's CSPRNG, the only source of randomness for secrets.

use rand::rngs::SysRng;
use rand::TryRng;

use crate::Error;

/// Fills `buf` from the OS CSPRNG (`getrandom`), reporting failure instead of panicking.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), Error> {
    SysRng.try_fill_bytes(buf).map_err(|_| Error::Random)
}

/// A random fraction in `[0, 1)` for backoff jitter. Jitter is not security-relevant, so a failed
/// RNG just means "no jitter" (0.5).
pub(crate) fn unit_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    match fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// Exponential backoff with jitter: `initial * 2^(attempt-1)`, capped at `max`, then scaled by a
/// random factor in `[0.5, 1.0)` ("equal jitter") so that many clients failing together spread out.
pub(crate) fn backoff(
    attempt: u32,
    initial: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.5 + unit_fraction() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..50 {
            let first = backoff(1, initial, max);
            assert!(first >= Duration::from_millis(50) && first < initial);
            let third = backoff(3, initial, max);
            assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(400));
            let late = backoff(30, initial, max);
            assert!(late >= Duration::from_millis(500) && late < max);
        }
    }
}
