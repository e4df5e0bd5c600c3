//! Everything derived from the state secret, and the store's key names.
//!
//! Replicas agree on a flight only if they derive the same index from the same request, and on a
//! bucket only if they name it the same way; both come from `state.secret` through
//! HKDF-SHA256 (RFC 5869), one output per purpose:
//!
//! - the **replay salt**, which replaces the random per-process salt of
//!   `exchange::replay::ReplayCache`, so an index and an entry key derived on one replica are the
//!   ones every replica derives (entries still open only with the request's own secret inputs);
//! - the **rate-limit key**, an HMAC-SHA256 key naming buckets
//!   `rl:<endpoint>:<base64url(HMAC(endpoint ‖ address))[..16 bytes]>`, with the address an IPv4
//!   address or an IPv6 /64: the store never holds a client IP, and without the secret a name
//!   cannot be tied to an address by trying them all.
//!
//! Rotating the secret changes every index and bucket name: replays miss for one window and
//! buckets restart; nothing breaks.

use super::FlightIndex;
use crate::config::state::StateSecret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::net::IpAddr;

const HKDF_SALT: &[u8] = b"kick-oauth-proxy state v1";
const REPLAY_SALT_INFO: &[u8] = b"kick-oauth-proxy state replay salt v1";
const RATE_KEY_INFO: &[u8] = b"kick-oauth-proxy state rate-limit key v1";
/// Bytes of the HMAC kept in a bucket name (128 bits: collisions are not a concern).
const RATE_TAG_BYTES: usize = 16;

/// The keys derived from the state secret. Prints as `[redacted]`; zeroed on drop.
#[derive(Clone)]
pub struct StateKeys {
    replay_salt: [u8; 32],
    rate_key: [u8; 32],
}

impl StateKeys {
    /// Derives both keys from the state secret.
    pub fn derive(secret: &StateSecret) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.expose());
        let mut replay_salt = [0u8; 32];
        let mut rate_key = [0u8; 32];
        // 32-byte outputs are far below HKDF-SHA256's 8160-byte limit: these cannot fail.
        let _ = hk.expand(REPLAY_SALT_INFO, &mut replay_salt);
        let _ = hk.expand(RATE_KEY_INFO, &mut rate_key);
        Self {
            replay_salt,
            rate_key,
        }
    }

    /// The salt for the replay index and entry-key derivation (HKDF salt in
    /// `exchange::replay::ReplayCache`).
    pub fn replay_salt(&self) -> [u8; 32] {
        self.replay_salt
    }

    /// The bucket of `client` for `endpoint` (`token`, `refresh`, `revoke`). IPv6 clients are
    /// keyed by their /64, as the per-process limiter does.
    pub fn rate_key(&self, endpoint: &str, client: IpAddr) -> RateKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.rate_key)
            .expect("HMAC-SHA256 takes keys of any length");
        mac.update(&(endpoint.len() as u64).to_be_bytes());
        mac.update(endpoint.as_bytes());
        match client {
            IpAddr::V4(v4) => {
                mac.update(&[4]);
                mac.update(&v4.octets());
            }
            IpAddr::V6(v6) => {
                mac.update(&[6]);
                mac.update(&v6.octets()[..8]);
            }
        }
        let tag = mac.finalize().into_bytes();
        let mut name = String::with_capacity(endpoint.len() + 1 + 22);
        name.push_str(endpoint);
        name.push(':');
        URL_SAFE_NO_PAD.encode_string(&tag[..RATE_TAG_BYTES], &mut name);
        RateKey(name)
    }
}

impl fmt::Debug for StateKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKeys([redacted])")
    }
}

impl Drop for StateKeys {
    fn drop(&mut self) {
        self.replay_salt.iter_mut().for_each(|b| *b = 0);
        self.rate_key.iter_mut().for_each(|b| *b = 0);
    }
}

/// A bucket's name below the prefix, `<endpoint>:<tag>`: pseudonymous, no address in it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// The name, as stored after `<prefix>rl:`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateKey({})", self.0)
    }
}

/// The store key of a flight: `<prefix>f:{<base64url index>}` (the braces are a Redis Cluster
/// hash tag, so later multi-key operations on one flight stay in one slot).
pub(super) fn flight_key(prefix: &str, index: &FlightIndex) -> String {
    let mut key = String::with_capacity(prefix.len() + 47);
    key.push_str(prefix);
    key.push_str("f:{");
    URL_SAFE_NO_PAD.encode_string(index.as_bytes(), &mut key);
    key.push('}');
    key
}

/// The store key of a bucket: `<prefix>rl:<endpoint>:<tag>`.
pub(super) fn bucket_key(prefix: &str, key: &RateKey) -> String {
    format!("{prefix}rl:{}", key.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> StateSecret {
        StateSecret::from_bytes(s.as_bytes().to_vec())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-replica-secret";

    #[test]
    fn replicas_with_the_same_secret_derive_the_same_keys() {
        let a = StateKeys::derive(&secret(SECRET));
        let b = StateKeys::derive(&secret(SECRET));
        assert_eq!(a.replay_salt(), b.replay_salt());
        assert_eq!(
            a.rate_key("token", ip("203.0.113.9")),
            b.rate_key("token", ip("203.0.113.9"))
        );
        let other = StateKeys::derive(&secret("another-secret-of-at-least-32-bytes!!"));
        assert_ne!(a.replay_salt(), other.replay_salt());
        assert_ne!(
            a.rate_key("token", ip("203.0.113.9")),
            other.rate_key("token", ip("203.0.113.9"))
        );
        // The two outputs are independent of each other.
        assert_ne!(a.replay_salt(), a.rate_key);
    }

    #[test]
    fn bucket_names_separate_endpoints_and_addresses_but_share_an_ipv6_64() {
        let keys = StateKeys::derive(&secret(SECRET));
        let token = keys.rate_key("token", ip("203.0.113.9"));
        assert_ne!(token, keys.rate_key("refresh", ip("203.0.113.9")));
        assert_ne!(token, keys.rate_key("token", ip("203.0.113.10")));
        assert_eq!(
            keys.rate_key("token", ip("2001:db8:1:2::1")),
            keys.rate_key("token", ip("2001:db8:1:2:ffff:eeee:dddd:cccc"))
        );
        assert_ne!(
            keys.rate_key("token", ip("2001:db8:1:2::1")),
            keys.rate_key("token", ip("2001:db8:1:3::1"))
        );
        // An IPv4 address and the IPv6 /64 spelling the same bytes are different clients.
        assert_ne!(
            keys.rate_key("token", ip("0.0.0.1")),
            keys.rate_key("token", ip("::1"))
        );
        let name = token.as_str();
        let tag = name.strip_prefix("token:").expect("endpoint first");
        assert_eq!(tag.len(), 22);
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(!name.contains("203") && !name.contains("113"));
    }

    #[test]
    fn store_keys_carry_the_prefix_and_a_hash_tag() {
        let key = flight_key("kop:v1:", &FlightIndex::new([0xfb; 32]));
        let encoded = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(key, format!("kop:v1:f:{{{encoded}}}"));
        assert_eq!(key.len(), "kop:v1:f:{}".len() + 43);
        let keys = StateKeys::derive(&secret(SECRET));
        let bucket = bucket_key("kop:v1:", &keys.rate_key("revoke", ip("198.51.100.1")));
        assert!(bucket.starts_with("kop:v1:rl:revoke:"));
    }

    #[test]
    fn keys_print_redacted() {
        let keys = StateKeys::derive(&secret(SECRET));
        assert_eq!(format!("{keys:?}"), "StateKeys([redacted])");
        assert_eq!(
            format!("{:?}", FlightIndex::new([1; 32])),
            "FlightIndex(..)"
        );
    }
}
