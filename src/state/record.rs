//! Framing of flight records: the bytes stored under a flight key.
//!
//! | record | bytes |
//! |---|---|
//! | pending | `P` ‖ owner (16 lowercase hex) ‖ deadline (ms since the Unix epoch, 1 to 15 digits) |
//! | done (200) | `D` ‖ sealed body |
//! | done (error) | `E` ‖ owner (16 lowercase hex) ‖ sealed reply |
//!
//! A sealed value is what the caller's AEAD produced (nonce ‖ ciphertext ‖ tag), at least
//! [`MIN_SEALED`] and at most [`MAX_SEALED`] bytes. Anything else decodes to `None` and is
//! treated as absent; the claim script applies the same rules (see [`super::scripts`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shortest sealed value: a 12-byte nonce and a 16-byte tag (ChaCha20-Poly1305, RFC 8439).
pub(super) const MIN_SEALED: usize = 28;
/// The longest sealed value accepted: an upstream body is capped at 64 KiB, so twice that.
pub(super) const MAX_SEALED: usize = 128 * 1024;
/// Hex digits of an owner id.
pub(super) const OWNER_HEX: usize = 16;
/// Most digits of a deadline (ms since 1970; 15 digits last until the year 33658).
pub(super) const MAX_DEADLINE_DIGITS: usize = 15;
/// The longest lease a pending record may announce; a stored deadline further ahead is corrupt.
pub(super) const MAX_LEASE: Duration = Duration::from_secs(300);
/// How long past its deadline a pending record still counts (clock differences between
/// replicas and the store); past that it is stale even if its key was left without expiry.
pub(super) const STALE_AFTER_MS: u64 = 2_000;

/// Who holds a flight: 8 random bytes per claim. Not secret; identifies a holder so a waiter can
/// tell its holder's `E` record from a later one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner([u8; 8]);

impl Owner {
    /// A fresh random owner; `None` when the OS has no randomness (then skip the store).
    pub fn random() -> Option<Self> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).ok()?;
        Some(Self(bytes))
    }

    fn hex(&self) -> [u8; OWNER_HEX] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; OWNER_HEX];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }

    fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != OWNER_HEX {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 8];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            bytes[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        write!(f, "Owner({})", String::from_utf8_lossy(&hex))
    }
}

/// A claim on a flight: its owner and the deadline (wall clock, ms since the Unix epoch) until
/// which the owner may hold it. The key expires at the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    owner: Owner,
    deadline_ms: u64,
}

impl Pending {
    /// A new claim by a fresh owner for `lease` (at most 5 minutes) from now; `None` without OS
    /// randomness.
    pub fn new(lease: Duration) -> Option<Self> {
        let lease_ms = u64::try_from(lease.min(MAX_LEASE).as_millis()).unwrap_or(u64::MAX);
        Some(Self {
            owner: Owner::random()?,
            deadline_ms: now_ms().saturating_add(lease_ms.max(1)),
        })
    }

    /// The holder.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Time left until the deadline (zero once past): the `Retry-After` for a waiter that gives
    /// up.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(now_ms()))
    }

    /// The deadline, ms since the Unix epoch.
    pub(super) fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(b'P');
        out.extend_from_slice(&self.owner.hex());
        out.extend_from_slice(self.deadline_ms.to_string().as_bytes());
    }

    /// The stored bytes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + OWNER_HEX + MAX_DEADLINE_DIGITS);
        self.encode_into(&mut out);
        out
    }

    fn decode(body: &[u8]) -> Option<Self> {
        let (owner, digits) = (body.get(..OWNER_HEX)?, body.get(OWNER_HEX..)?);
        if digits.is_empty()
            || digits.len() > MAX_DEADLINE_DIGITS
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let deadline_ms = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(Self {
            owner: Owner::from_hex(owner)?,
            deadline_ms,
        })
    }
}

/// Bytes the caller sealed (nonce ‖ ciphertext ‖ tag); opaque here. Prints only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps sealed bytes; `None` below 28 bytes (nonce and tag) or above 128 KiB.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (MIN_SEALED..=MAX_SEALED)
            .contains(&bytes.len())
            .then_some(Self(bytes))
    }

    /// The sealed bytes, to open.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A flight record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A holder is calling the provider.
    Pending(Pending),
    /// The sealed 200 body.
    Answer(Sealed),
    /// The sealed error reply of `owner`'s call.
    Error {
        /// Whose call produced it.
        owner: Owner,
        /// The sealed reply.
        sealed: Sealed,
    },
}

impl Record {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Pending(pending) => pending.encode(),
            Self::Answer(sealed) => [&b"D"[..], &sealed.0].concat(),
            Self::Error { owner, sealed } => [&b"E"[..], &owner.hex(), &sealed.0].concat(),
        }
    }

    /// Parses stored bytes; `None` for anything this code does not write (treated as absent).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&kind, body) = bytes.split_first()?;
        match kind {
            b'P' => Pending::decode(body).map(Self::Pending),
            b'D' => Sealed::new(body.to_vec()).map(Self::Answer),
            b'E' => {
                let owner = Owner::from_hex(body.get(..OWNER_HEX)?)?;
                let sealed = Sealed::new(body.get(OWNER_HEX..)?.to_vec())?;
                Some(Self::Error { owner, sealed })
            }
            _ => None,
        }
    }
}

/// Wall clock, ms since the Unix epoch (0 before 1970, which does not happen).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Wall clock, µs since the Unix epoch.
pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Whether a stored pending record still counts at `now_ms`: its deadline neither long past
/// (a key left without expiry) nor further ahead than any lease.
pub(super) fn pending_is_live(pending: &Pending, now_ms: u64) -> bool {
    let deadline = pending.deadline_ms();
    let max_lease_ms = u64::try_from(MAX_LEASE.as_millis()).unwrap_or(u64::MAX);
    deadline.saturating_add(STALE_AFTER_MS) >= now_ms
        && deadline <= now_ms.saturating_add(max_lease_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: usize) -> Sealed {
        Sealed::new(vec![7; n]).expect("in range")
    }

    #[test]
    fn every_record_round_trips() {
        let pending = Pending::new(Duration::from_secs(12)).expect("randomness");
        let records = [
            Record::Pending(pending),
            Record::Answer(sealed(MIN_SEALED)),
            Record::Answer(sealed(MAX_SEALED)),
            Record::Error {
                owner: pending.owner(),
                sealed: sealed(100),
            },
        ];
        for record in records {
            assert_eq!(Record::decode(&record.encode()), Some(record));
        }
        let encoded = Record::Pending(pending).encode();
        assert_eq!(encoded[0], b'P');
        assert!(encoded[1..=OWNER_HEX]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let remaining = pending.remaining();
        assert!(remaining > Duration::from_secs(11) && remaining <= Duration::from_secs(12));
    }

    #[test]
    fn malformed_bytes_are_absent() {
        let owner = "0123456789abcdef";
        let long_digits = "9".repeat(MAX_DEADLINE_DIGITS + 1);
        let bad: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"P".to_vec(),
            format!("P{owner}").into_bytes(),
            format!("P{owner}12x").into_bytes(),
            format!("P{owner}-12").into_bytes(),
            format!("P{owner}{long_digits}").into_bytes(),
            format!("P0123456789ABCDEF{}", 5).into_bytes(),
            format!("P0123456789abcde{}", 5).into_bytes(),
            [&b"D"[..], &[0; MIN_SEALED - 1]].concat(),
            [&b"D"[..], &vec![0; MAX_SEALED + 1]].concat(),
            [format!("E{owner}").as_bytes(), &[0; MIN_SEALED - 1]].concat(),
            [&b"E0123456789abcdeg"[..], &[0; MIN_SEALED]].concat(),
            [&b"X"[..], &[0; 64]].concat(),
            b"1712345678901234".to_vec(),
        ];
        for bytes in bad {
            assert_eq!(
                Record::decode(&bytes),
                None,
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn sealed_prints_only_its_length() {
        let s = Sealed::new(b"PLAINTEXT-IS-NOT-HERE-BUT-STILL-28".to_vec()).expect("len");
        assert_eq!(format!("{s:?}"), "Sealed(34 bytes)");
    }

    #[test]
    fn a_pending_record_is_live_only_around_its_lease() {
        let pending = Pending::new(Duration::from_secs(10)).expect("randomness");
        let now = now_ms();
        assert!(pending_is_live(&pending, now));
        assert!(pending_is_live(
            &pending,
            now + 10_000 + STALE_AFTER_MS - 10
        ));
        assert!(!pending_is_live(
            &pending,
            now + 10_000 + STALE_AFTER_MS + 10
        ));
        // A deadline a year ahead can only be planted.
        let planted = Pending {
            owner: pending.owner(),
            deadline_ms: now + 365 * 86_400_000,
        };
        assert!(!pending_is_live(&planted, now));
    }
}
