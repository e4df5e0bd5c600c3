//! The sealed `state` the relay hands to the provider: the app's loopback target, the app's own
//! `state` and an expiry, encrypted and authenticated with a key only this proxy (and its
//! replicas) holds, so the proxy keeps nothing between `/authorize` and `/callback`.
//!
//! - Keys: HKDF-SHA256 (RFC 5869) over the operator's sealing secret (any string of at least 32
//!   bytes) gives a 256-bit XChaCha20-Poly1305 key and a one-byte key id. Replicas given the same
//!   secret derive the same key and id; nothing else needs sharing.
//! - Sealing: XChaCha20-Poly1305 (RFC 8439 with the 192-bit nonce extension) under a fresh random
//!   nonce. The provider name is additional data, so a state sealed for one provider's flow does
//!   not open at another's callback.
//! - Wire form: base64url without padding of `version (1) | key id (1) | nonce (24) | ciphertext`.
//!   The key id says which key sealed it: the current one, or during a rotation the previous one,
//!   which still opens; a state whose id matches neither is [`OpenError::UnknownKey`].
//!
//! Only an opened state is trusted; every failure looks the same to the browser (an error page)
//! and differs only in the log's `error` code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;

/// The first byte of every sealed state: this layout.
const VERSION: u8 = 1;
/// XChaCha20-Poly1305's nonce length.
const NONCE_LEN: usize = 24;
/// The Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Sealed states longer than this (base64 characters) are not even decoded.
pub const MAX_SEALED_LEN: usize = 2048;
/// The shortest sealing secret accepted, in bytes: 256 bits of input for a 256-bit key.
pub const MIN_SECRET_LEN: usize = 32;
/// HKDF salt: a fixed domain separator (the secret is the only secret input).
const HKDF_SALT: &[u8] = b"kick-oauth-proxy relay state";

/// A key derived from one sealing secret. `Debug` shows the key id only; the key bytes are
/// cleared on drop.
#[derive(Clone)]
pub struct SealingKey {
    id: u8,
    key: [u8; 32],
}

impl SealingKey {
    /// Derives the key and its id from a sealing secret (HKDF-SHA256, RFC 5869).
    pub fn derive(secret: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
        let mut key = [0u8; 32];
        let mut id = [0u8; 1];
        // Outputs of 32 and 1 bytes are far below HKDF-SHA256's 8160-byte limit: cannot fail.
        let _ = hk.expand(b"kick-oauth-proxy relay seal key v1", &mut key);
        let _ = hk.expand(b"kick-oauth-proxy relay key id v1", &mut id);
        Self { id: id[0], key }
    }

    /// The key id written into every state this key seals.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }
}

impl PartialEq for SealingKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.key == other.key
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey(id {:#04x}, [redacted])", self.id)
    }
}

impl Drop for SealingKey {
    fn drop(&mut self) {
        // Best effort: the key should not linger in freed memory.
        self.key.iter_mut().for_each(|b| *b = 0);
    }
}

/// What a sealed state carries. `Debug` redacts the app's state.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    /// The loopback URI the code goes back to (already checked against the relay's targets).
    pub target: String,
    /// The app's own `state`, returned to it unchanged (RFC 6749 §4.1.2).
    pub app_state: String,
    /// Seconds since the Unix epoch after which the state no longer opens.
    pub expires_at: u64,
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("target", &self.target)
            .field("app_state", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a state did not open. The browser sees one page for all of them; the log sees the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not base64url, too short or too long, or an unknown layout version.
    #[error("malformed state")]
    Malformed,
    /// Sealed under a key id that is neither the current nor the previous key's.
    #[error("state sealed with an unknown key")]
    UnknownKey,
    /// The key id matched but the ciphertext did not authenticate: altered, or forged.
    #[error("state does not authenticate")]
    Tampered,
    /// Authentic, but past its expiry.
    #[error("state expired")]
    Expired,
}

impl OpenError {
    /// The log's `error` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed | Self::Tampered => "invalid_state",
            Self::UnknownKey => "unknown_state_key",
            Self::Expired => "expired_state",
        }
    }
}

/// No randomness for a nonce: the state cannot be sealed safely.
#[derive(Debug, thiserror::Error)]
#[error("no OS randomness for the sealing nonce")]
pub struct SealError;

/// Seals and opens states with the current key, and opens with the previous one during a
/// rotation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sealer {
    current: SealingKey,
    previous: Option<SealingKey>,
}

impl Sealer {
    /// A sealer for `current`, also opening what `previous` sealed.
    pub fn new(current: SealingKey, previous: Option<SealingKey>) -> Self {
        Self { current, previous }
    }

    /// As [`Sealer::new`], from the secrets.
    pub fn from_secrets(current: &str, previous: Option<&str>) -> Self {
        Self::new(
            SealingKey::derive(current),
            previous.map(SealingKey::derive),
        )
    }

    /// Seals `flow` for `provider`'s callback.
    pub fn seal(&self, provider: &str, flow: &Flow) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let plaintext = encode_flow(flow);
        let aad = additional_data(provider, self.current.id);
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError)?;
        let mut out = Vec::with_capacity(2 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.push(self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a state sealed for `provider`, checking its expiry against `now` (Unix seconds).
    pub fn open(&self, provider: &str, sealed: &str, now: u64) -> Result<Flow, OpenError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(OpenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() < 2 + NONCE_LEN + TAG_LEN || bytes[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let id = bytes[1];
        let nonce = XNonce::from_slice(&bytes[2..2 + NONCE_LEN]);
        let ciphertext = &bytes[2 + NONCE_LEN..];
        let aad = additional_data(provider, id);
        let mut candidates = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .filter(|key| key.id == id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(OpenError::UnknownKey);
        }
        // Two keys can share an id (1 in 256): try each one that claims it.
        let plaintext = candidates
            .find_map(|key| {
                key.cipher()
                    .decrypt(
                        nonce,
                        Payload {
                            msg: ciphertext,
                            aad: &aad,
                        },
                    )
                    .ok()
            })
            .ok_or(OpenError::Tampered)?;
        let flow = decode_flow(&plaintext).ok_or(OpenError::Malformed)?;
        if now > flow.expires_at {
            return Err(OpenError::Expired);
        }
        Ok(flow)
    }
}

/// Binds the ciphertext to its layout, its key id and the provider whose callback may open it.
fn additional_data(provider: &str, id: u8) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + provider.len());
    aad.extend_from_slice(b"kick-oauth-proxy relay state v1");
    aad.push(VERSION);
    aad.push(id);
    aad.extend_from_slice(provider.as_bytes());
    aad
}

/// `expires_at (u64 BE) | target length (u16 BE) | target | app state length (u16 BE) | app state`.
fn encode_flow(flow: &Flow) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + flow.target.len() + flow.app_state.len());
    out.extend_from_slice(&flow.expires_at.to_be_bytes());
    for part in [&flow.target, &flow.app_state] {
        // Both are bounded far below 64 KiB by the handler's input rules.
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&part.as_bytes()[..usize::from(len)]);
    }
    out
}

fn decode_flow(bytes: &[u8]) -> Option<Flow> {
    let (expires, mut rest) = bytes.split_first_chunk::<8>()?;
    let mut part = || -> Option<String> {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return None;
        }
        let (value, tail) = tail.split_at(len);
        rest = tail;
        String::from_utf8(value.to_vec()).ok()
    };
    let target = part()?;
    let app_state = part()?;
    if !rest.is_empty() {
        return None;
    }
    Some(Flow {
        target,
        app_state,
        expires_at: u64::from_be_bytes(*expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-current";
    const OLD: &str = "0123456789abcdef0123456789abcdef-previous";

    fn flow() -> Flow {
        Flow {
            target: "http://127.0.0.1:50123/callback".to_owned(),
            app_state: "app-state-CANARY-value".to_owned(),
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_sealed_flow_opens_with_the_same_secret_and_provider_until_it_expires() {
        let sealer = Sealer::from_secrets(SECRET, None);
        let sealed = sealer.seal("kick", &flow()).expect("seal");
        assert!(!sealed.contains("CANARY") && !sealed.contains("127.0.0.1"));
        assert_eq!(sealer.open("kick", &sealed, 999), Ok(flow()));
        assert_eq!(sealer.open("kick", &sealed, 1_000), Ok(flow()));
        assert_eq!(sealer.open("kick", &sealed, 1_001), Err(OpenError::Expired));
        // Another replica with only the secret in common opens it too.
        let replica = Sealer::from_secrets(SECRET, None);
        assert_eq!(replica.open("kick", &sealed, 999), Ok(flow()));
        // Two seals of the same flow differ (fresh nonce).
        assert_ne!(sealed, sealer.seal("kick", &flow()).expect("seal"));
    }

    #[test]
    fn another_provider_another_key_or_any_altered_byte_does_not_open() {
        let sealer = Sealer::from_secrets(SECRET, None);
        let sealed = sealer.seal("kick", &flow()).expect("seal");
        assert_eq!(sealer.open("twitch", &sealed, 0), Err(OpenError::Tampered));
        let stranger = Sealer::from_secrets("another secret of at least 32 bytes!!", None);
        assert_ne!(stranger.current.id, sealer.current.id, "ids differ here");
        assert_eq!(
            stranger.open("kick", &sealed, 0),
            Err(OpenError::UnknownKey)
        );
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64");
        for i in 2..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            let altered = URL_SAFE_NO_PAD.encode(altered);
            assert_eq!(
                sealer.open("kick", &altered, 0),
                Err(OpenError::Tampered),
                "byte {i}"
            );
        }
        for malformed in ["", "not base64!", "AQ", &"A".repeat(MAX_SEALED_LEN + 1)] {
            assert_eq!(sealer.open("kick", malformed, 0), Err(OpenError::Malformed));
        }
    }

    #[test]
    fn after_a_rotation_the_previous_secret_still_opens_and_new_states_use_the_new_key() {
        let old = Sealer::from_secrets(OLD, None);
        let sealed_before = old.seal("kick", &flow()).expect("seal");
        let rotated = Sealer::from_secrets(SECRET, Some(OLD));
        assert_eq!(rotated.open("kick", &sealed_before, 0), Ok(flow()));
        let sealed_after = rotated.seal("kick", &flow()).expect("seal");
        let bytes = URL_SAFE_NO_PAD.decode(&sealed_after).expect("base64");
        assert_eq!(bytes[1], SealingKey::derive(SECRET).id());
        // Once the previous secret is dropped, its states no longer open.
        let done = Sealer::from_secrets(SECRET, None);
        assert_eq!(
            done.open("kick", &sealed_before, 0),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn debug_never_shows_key_bytes_or_the_app_state() {
        let sealer = Sealer::from_secrets(SECRET, Some(OLD));
        let printed = format!("{sealer:?} {:?}", flow());
        assert!(!printed.contains("CANARY"), "{printed}");
        assert!(printed.contains("[redacted]"));
        let key = SealingKey::derive(SECRET);
        let bytes = format!("{:?}", key.key);
        assert!(!printed.contains(&bytes));
    }
}
