//! The RFC 7636 §4.1 `code_verifier` rule: `code-verifier = 43*128unreserved`, with
//! `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
//!
//! The proxy checks callers' verifiers with it, the client generates and parses its own with it,
//! and the emulator applies it as Kick's server does: one rule, so a verifier the client makes is
//! one the proxy accepts.

use std::fmt;

/// Shortest verifier RFC 7636 §4.1 allows.
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier RFC 7636 §4.1 allows.
pub const MAX_VERIFIER_LEN: usize = 128;

/// The 66 characters RFC 7636 §4.1 allows in a `code_verifier` (`unreserved`, RFC 3986 §2.3):
/// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`. Generators draw from it.
pub const VERIFIER_ALPHABET: &[u8; 66] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// True for a byte of [`VERIFIER_ALPHABET`].
pub fn is_verifier_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Why a verifier breaks RFC 7636 §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierError {
    /// Fewer than [`MIN_VERIFIER_LEN`] or more than [`MAX_VERIFIER_LEN`] characters; the length.
    Length(usize),
    /// A character outside [`VERIFIER_ALPHABET`].
    Characters,
}

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(len) => write!(
                f,
                "a PKCE verifier must be {MIN_VERIFIER_LEN} to {MAX_VERIFIER_LEN} characters (RFC 7636 §4.1), not {len}"
            ),
            Self::Characters => f.write_str(
                "a PKCE verifier may only contain A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)",
            ),
        }
    }
}

impl std::error::Error for VerifierError {}

/// Checks a verifier's length alone (for a generator, before it draws `len` characters).
pub fn check_verifier_len(len: usize) -> Result<(), VerifierError> {
    if (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&len) {
        Ok(())
    } else {
        Err(VerifierError::Length(len))
    }
}

/// Checks a verifier against RFC 7636 §4.1: length first, then characters.
pub fn check_verifier(verifier: &str) -> Result<(), VerifierError> {
    check_verifier_len(verifier.len())?;
    if verifier.bytes().all(is_verifier_char) {
        Ok(())
    } else {
        Err(VerifierError::Characters)
    }
}

/// True when `verifier` follows RFC 7636 §4.1 (43 to 128 unreserved characters).
pub fn is_valid_verifier(verifier: &str) -> bool {
    check_verifier(verifier).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_is_exactly_the_allowed_characters() {
        let allowed: Vec<u8> = (0..=u8::MAX).filter(|b| is_verifier_char(*b)).collect();
        let mut alphabet = VERIFIER_ALPHABET.to_vec();
        alphabet.sort_unstable();
        assert_eq!(allowed, alphabet);
    }

    #[test]
    fn lengths_43_to_128_pass_and_others_fail() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"~".repeat(128)));
        assert_eq!(
            check_verifier(&"a".repeat(42)),
            Err(VerifierError::Length(42))
        );
        assert_eq!(
            check_verifier(&"a".repeat(129)),
            Err(VerifierError::Length(129))
        );
        assert_eq!(check_verifier(""), Err(VerifierError::Length(0)));
    }

    #[test]
    fn characters_outside_unreserved_fail() {
        for bad in ["+", "/", "=", " ", "é", "%"] {
            let verifier = format!("{}{bad}", "a".repeat(43));
            assert_eq!(
                check_verifier(&verifier),
                Err(VerifierError::Characters),
                "{bad:?}"
            );
        }
        // RFC 7636 Appendix B's verifier.
        assert!(is_valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
    }
}
