//! Randomness and PKCE: opaque Kick-looking credentials and the RFC 7636 S256 check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oauth_types::pkce::{check_verifier, VerifierError, MIN_VERIFIER_LEN};
use sha2::{Digest, Sha256};

/// Length of every code and token the emulator issues. Kick's are 48 characters of `[A-Z0-9]`
/// (for example `NZQ1YTM3ZWQTZJU4MS0ZYZKXLWI3NTMTZMIZNDFJNTNHMWUX`).
pub(crate) const TOKEN_LEN: usize = 48;

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The operating system's CSPRNG failed; the request gets a `server_error`.
#[derive(Debug)]
pub(crate) struct RandomnessUnavailable;

/// A fresh opaque credential: 48 characters of `[A-Z0-9]` from the OS CSPRNG (about 248 bits).
pub(crate) fn random_token() -> Result<String, RandomnessUnavailable> {
    random_from(ALPHABET, TOKEN_LEN)
}

/// `len` lowercase hex digits, for references and ray ids in fault pages.
pub(crate) fn random_hex(len: usize) -> String {
    // Fault pages only decorate; a fixed id is fine if randomness is unavailable.
    random_from(b"0123456789abcdef", len).unwrap_or_else(|_| "0".repeat(len))
}

fn random_from(alphabet: &[u8], len: usize) -> Result<String, RandomnessUnavailable> {
    // Rejection sampling keeps the distribution uniform: only bytes below the largest multiple
    // of the alphabet size are used.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|_| RandomnessUnavailable)?;
        for &byte in &buf {
            if usize::from(byte) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

/// Why a `code_verifier` was refused; each maps to fosite's hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifierProblem {
    TooShort,
    TooLong,
    BadCharacters,
    Mismatch,
}

impl VerifierProblem {
    /// fosite's hint for this problem (its PKCE handler, `invalid_grant`).
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Self::TooShort => "The PKCE code verifier must be at least 43 characters.",
            Self::TooLong => "The PKCE code verifier can not be longer than 128 characters.",
            Self::BadCharacters => {
                "The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'."
            }
            Self::Mismatch => "The PKCE code challenge did not match the code verifier.",
        }
    }
}

/// RFC 7636 §4.6 with `S256`: `BASE64URL(SHA256(verifier)) == challenge`, after the §4.1 shape
/// checks fosite makes (43..=128 characters of `[A-Za-z0-9-._~]`).
pub(crate) fn check_s256(verifier: &str, challenge: &str) -> Result<(), VerifierProblem> {
    match check_verifier(verifier) {
        Ok(()) => {}
        Err(VerifierError::Length(len)) if len < MIN_VERIFIER_LEN => {
            return Err(VerifierProblem::TooShort)
        }
        Err(VerifierError::Length(_)) => return Err(VerifierProblem::TooLong),
        Err(VerifierError::Characters) => return Err(VerifierProblem::BadCharacters),
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
        Ok(())
    } else {
        Err(VerifierProblem::Mismatch)
    }
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_kicks() {
        let a = random_token().expect("randomness");
        let b = random_token().expect("randomness");
        assert_eq!(a.len(), 48);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[test]
    fn rfc7636_appendix_b_vector_passes() {
        assert_eq!(
            check_s256(
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            ),
            Ok(())
        );
    }

    #[test]
    fn verifier_shape_problems_are_reported_before_the_hash() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(
            check_s256("short", challenge),
            Err(VerifierProblem::TooShort)
        );
        assert_eq!(
            check_s256(&"a".repeat(129), challenge),
            Err(VerifierProblem::TooLong)
        );
        assert_eq!(
            check_s256(&format!("{}+", "a".repeat(43)), challenge),
            Err(VerifierProblem::BadCharacters)
        );
        assert_eq!(
            check_s256(&"a".repeat(43), challenge),
            Err(VerifierProblem::Mismatch)
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
