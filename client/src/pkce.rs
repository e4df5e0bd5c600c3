//! Proof Key for Code Exchange (RFC 7636) with the `S256` method.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use oauth_types::pkce::{check_verifier, check_verifier_len, VERIFIER_ALPHABET as UNRESERVED};
use oauth_types::secret_type;

use crate::{random, Error};

/// Shortest and longest verifier RFC 7636 §4.1 allows: the rule the proxy checks, shared with it
/// (defined once in `oauth-types`).
pub use oauth_types::pkce::{MAX_VERIFIER_LEN, MIN_VERIFIER_LEN};
/// Length of [`PkceVerifier::generate`]'s verifiers: 64 characters of a 66-symbol alphabet, about
/// 387 bits of entropy (RFC 7636 §7.1 asks for at least 256).
pub const DEFAULT_VERIFIER_LEN: usize = 64;

secret_type!(
    /// A PKCE `code_verifier` (RFC 7636 §4.1): kept by the app, sent only to the proxy's token
    /// endpoint, never in the browser URL.
    PkceVerifier,
    serde
);

impl PkceVerifier {
    /// A fresh verifier of [`DEFAULT_VERIFIER_LEN`] characters from the OS CSPRNG (RFC 7636 §4.1, §7.1).
    pub fn generate() -> Result<Self, Error> {
        Self::generate_with_len(DEFAULT_VERIFIER_LEN)
    }

    /// A fresh verifier of `len` characters (43 to 128, RFC 7636 §4.1), each drawn uniformly from
    /// the unreserved set by rejection sampling so no character is more likely than another.
    pub fn generate_with_len(len: usize) -> Result<Self, Error> {
        check_verifier_len(len).map_err(|e| Error::Config(e.to_string()))?;
        // 66 symbols: accept bytes below 198 = 3 * 66 so `byte % 66` is uniform.
        const LIMIT: u8 = 198;
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 64];
        while out.len() < len {
            random::fill(&mut buf)?;
            for &byte in buf.iter().filter(|&&b| b < LIMIT) {
                if out.len() == len {
                    break;
                }
                out.push(char::from(UNRESERVED[usize::from(byte % 66)]));
            }
        }
        buf.fill(0);
        Ok(Self::new(out))
    }

    /// Wraps an existing verifier after checking its length and characters (RFC 7636 §4.1).
    pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        check_verifier(&value).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self::new(value))
    }

    /// The `S256` challenge: `BASE64URL(SHA256(ASCII(code_verifier)))` without padding (RFC 7636 §4.2).
    /// It is safe to put in the authorization URL.
    pub fn challenge_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.secret().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc7636_appendix_b() {
        let verifier = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            .expect("the RFC's verifier is valid");
        assert_eq!(
            verifier.challenge_s256(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifier_has_default_length_and_only_unreserved_characters() {
        let verifier = PkceVerifier::generate().expect("OS RNG works");
        assert_eq!(verifier.secret().len(), DEFAULT_VERIFIER_LEN);
        assert!(verifier.secret().bytes().all(|b| UNRESERVED.contains(&b)));
        // The server re-checks it; round-trip through the strict parser.
        PkceVerifier::parse(verifier.secret()).expect("generated verifier passes RFC 7636 §4.1");
    }

    #[test]
    fn generated_verifiers_at_the_bounds_are_valid_and_out_of_bounds_lengths_are_refused() {
        for len in [MIN_VERIFIER_LEN, MAX_VERIFIER_LEN] {
            let v = PkceVerifier::generate_with_len(len).expect("valid length");
            assert_eq!(v.secret().len(), len);
        }
        for len in [0, 42, 129] {
            assert!(matches!(
                PkceVerifier::generate_with_len(len),
                Err(Error::Config(_))
            ));
        }
    }

    #[test]
    fn two_generated_verifiers_differ_and_use_the_whole_alphabet() {
        let a = PkceVerifier::generate().expect("rng");
        let b = PkceVerifier::generate().expect("rng");
        assert_ne!(a.secret(), b.secret());
        // 200 verifiers × 128 chars: every one of the 66 symbols should show up.
        let mut seen = [false; 256];
        for _ in 0..200 {
            let v = PkceVerifier::generate_with_len(MAX_VERIFIER_LEN).expect("rng");
            for b in v.secret().bytes() {
                seen[usize::from(b)] = true;
            }
        }
        assert!(UNRESERVED.iter().all(|&c| seen[usize::from(c)]));
    }

    #[test]
    fn parse_refuses_characters_outside_the_unreserved_set() {
        let bad = format!("{}+", "a".repeat(50));
        assert!(matches!(PkceVerifier::parse(bad), Err(Error::Config(_))));
    }

    #[test]
    fn verifier_debug_and_display_are_redacted() {
        let v = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").expect("valid");
        assert_eq!(format!("{v:?}"), "PkceVerifier([redacted])");
        assert_eq!(format!("{v}"), "[redacted]");
    }
}
