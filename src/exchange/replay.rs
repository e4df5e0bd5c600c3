//! Idempotent replay for exchanges and refreshes.
//!
//! A desktop app on a flaky network sends its code, the proxy redeems it, and the answer is lost on
//! the way back: the code is spent and the user would have to log in again. With replay, an
//! identical retry within the window gets the identical answer without a second provider call.
//!
//! What memory holds is useless by itself. Each request's secret inputs (code, verifier and
//! redirect URI; or the refresh token), with the provider and endpoint, go through HKDF-SHA256
//! (RFC 5869) salted with a random per-process value, giving two independent values: the entry's
//! index and a ChaCha20-Poly1305 key (RFC 8439). Only the index and the ciphertext are stored; the
//! key exists only while a request holding the same inputs is being served. Only successful
//! (200) answers are stored.
//!
//! With a shared store (`[state]`), the salt is derived from the state secret instead, so every
//! replica derives the same index and key for the same request: the index names the flight in
//! the store, and the key seals what is stored there ([`ReplayKey::seal`]).

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// A map by request index: the index is an HKDF output under a secret salt, already uniform and
/// unknowable to a client, so it is hashed by its first bytes ([`IndexHasher`]) instead of by
/// SipHash, whose rounds guard against keys an attacker picks.
pub type IndexMap<V> = HashMap<[u8; 32], V, BuildHasherDefault<IndexHasher>>;

/// The hasher of [`IndexMap`]: the first eight bytes of each write, folded together.
#[derive(Default)]
pub struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // An index is written as its length, then its 32 bytes.
        let mut head = [0u8; 8];
        for (to, from) in head.iter_mut().zip(bytes) {
            *to = *from;
        }
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(head);
    }
}

/// The index and the encryption key of one request's entry. Prints as `[redacted]`.
pub struct ReplayKey {
    index: [u8; 32],
    /// HKDF's pseudorandom key (RFC 5869 §2.2), from which the encryption key is expanded.
    prk: [u8; 32],
    /// Expanded when first used: without replay or a shared store, only the index is.
    key: OnceLock<[u8; 32]>,
}

impl ReplayKey {
    /// The entry's index (also the single-flight key).
    pub fn index(&self) -> [u8; 32] {
        self.index
    }

    fn key(&self) -> &[u8; 32] {
        self.key.get_or_init(|| {
            let mut key = [0u8; 32];
            // A 32-byte PRK is SHA-256's output length, and 32 bytes are far below HKDF-SHA256's
            // 8160-byte limit: neither can fail.
            if let Ok(hk) = Hkdf::<Sha256>::from_prk(&self.prk) {
                let _ = hk.expand(b"kick-oauth-proxy replay key v1", &mut key);
            }
            key
        })
    }
}

impl ReplayKey {
    /// `plaintext` sealed for the shared store: nonce ‖ ciphertext ‖ tag, bound to this index and
    /// to `kind` (so a sealed answer cannot be passed off as a sealed error, or the reverse).
    /// `None` without OS randomness.
    pub fn seal(&self, kind: u8, plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key()));
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.aad(kind),
                },
            )
            .ok()?;
        let mut sealed = Vec::with_capacity(12 + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Some(sealed)
    }

    /// Opens what [`ReplayKey::seal`] produced with the same `kind`; `None` when it was made with
    /// another key, index or kind, or was altered.
    pub fn open(&self, kind: u8, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at_checked(12)?;
        ChaCha20Poly1305::new(Key::from_slice(self.key()))
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad(kind),
                },
            )
            .ok()
    }

    fn aad(&self, kind: u8) -> [u8; 34] {
        let mut aad = [0u8; 34];
        aad[..32].copy_from_slice(&self.index);
        aad[32] = b'S';
        aad[33] = kind;
        aad
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplayKey([redacted])")
    }
}

impl Drop for ReplayKey {
    fn drop(&mut self) {
        // Best effort: the key should not outlive the request that derived it.
        self.prk.iter_mut().for_each(|b| *b = 0);
        if let Some(key) = self.key.get_mut() {
            key.iter_mut().for_each(|b| *b = 0);
        }
    }
}

struct Entry {
    expires: Instant,
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
}

#[derive(Default)]
struct Store {
    entries: IndexMap<Entry>,
    /// Insertion order; the window is constant, so this is also expiry order.
    order: VecDeque<([u8; 32], Instant)>,
    bytes: usize,
}

/// Stored successful answers, encrypted, bounded in entries and bytes, expiring after the window.
pub struct ReplayCache {
    window: Duration,
    max_entries: usize,
    max_bytes: usize,
    /// HKDF-Extract keyed with the salt once (HMAC's inner and outer pads), cloned per request.
    extract: HkdfExtract<Sha256>,
    store: Mutex<Store>,
}

/// Bytes an entry costs besides its ciphertext (index twice, nonce, bookkeeping).
const ENTRY_OVERHEAD: usize = 128;

impl ReplayCache {
    /// A cache keeping answers for `window` (zero disables storing), within the bounds, with a
    /// random per-process salt.
    pub fn new(window: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self::with_salt(window, max_entries, max_bytes, None)
    }

    /// As [`ReplayCache::new`], with the salt every replica shares (derived from the state
    /// secret), or a random one for `None`.
    pub fn with_salt(
        window: Duration,
        max_entries: usize,
        max_bytes: usize,
        shared_salt: Option<[u8; 32]>,
    ) -> Self {
        let mut salt = [0u8; 32];
        if let Some(shared) = shared_salt {
            salt = shared;
        } else if getrandom::fill(&mut salt).is_err() {
            // No OS randomness: store nothing rather than store under a predictable salt.
            tracing::error!("no OS randomness available; replay disabled");
            return Self {
                window: Duration::ZERO,
                max_entries: 0,
                max_bytes: 0,
                extract: HkdfExtract::new(Some(&salt)),
                store: Mutex::new(Store::default()),
            };
        }
        Self {
            window,
            max_entries,
            max_bytes,
            extract: HkdfExtract::new(Some(&salt)),
            store: Mutex::new(Store::default()),
        }
    }

    /// How long answers are kept.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// True when answers are stored at all.
    pub fn enabled(&self) -> bool {
        !self.window.is_zero() && self.max_entries > 0
    }

    /// Derives the index and key for a request from its provider, endpoint and secret inputs.
    pub fn key(&self, provider: &str, endpoint: &str, secrets: &[&str]) -> ReplayKey {
        // The input keying material is fed to HKDF-Extract piece by piece, never joined in a
        // buffer: the same bytes as one joined input, and no copy of the secrets to wipe.
        let mut extract = self.extract.clone();
        for part in [provider, endpoint].iter().chain(secrets) {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            extract.input_ikm(&(part.len() as u64).to_be_bytes());
            extract.input_ikm(part.as_bytes());
        }
        let (prk, hk) = extract.finalize();
        let mut index = [0u8; 32];
        // 32 bytes are far below HKDF-SHA256's 8160-byte limit: this cannot fail.
        let _ = hk.expand(b"kick-oauth-proxy replay index v1", &mut index);
        ReplayKey {
            index,
            prk: prk.into(),
            key: OnceLock::new(),
        }
    }

    /// The stored answer for `key`, decrypted, if present and not expired.
    pub fn get(&self, key: &ReplayKey) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let now = Instant::now();
        let (nonce, ciphertext) = {
            let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
            Self::purge_expired(&mut store, now);
            let entry = store.entries.get(&key.index)?;
            if entry.expires <= now {
                return None;
            }
            (entry.nonce, entry.ciphertext.clone())
        };
        // Decrypted outside the lock: other requests need not wait for it.
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.key()));
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &key.index,
                },
            )
            .ok()?;
        Some(Bytes::from(plaintext))
    }

    /// Stores `answer` under `key` for the window, evicting expired and then oldest entries to stay
    /// within the bounds.
    pub fn put(&self, key: &ReplayKey, answer: &[u8]) {
        if !self.enabled() {
            return;
        }
        let mut nonce = [0u8; 12];
        if getrandom::fill(&mut nonce).is_err() {
            return;
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.key()));
        let Ok(ciphertext) = cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: answer,
                aad: &key.index,
            },
        ) else {
            return;
        };
        let cost = ciphertext.len() + ENTRY_OVERHEAD;
        if cost > self.max_bytes {
            return;
        }
        let now = Instant::now();
        let Some(expires) = now.checked_add(self.window) else {
            return;
        };
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        Self::purge_expired(&mut store, now);
        if let Some(old) = store.entries.remove(&key.index) {
            store.bytes -= old.ciphertext.len() + ENTRY_OVERHEAD;
        }
        while store.entries.len() >= self.max_entries || store.bytes + cost > self.max_bytes {
            if !Self::evict_oldest(&mut store) {
                break;
            }
        }
        store.bytes += cost;
        store.order.push_back((key.index, expires));
        store.entries.insert(
            key.index,
            Entry {
                expires,
                nonce,
                ciphertext,
            },
        );
    }

    fn purge_expired(store: &mut Store, now: Instant) {
        while store
            .order
            .front()
            .is_some_and(|(_, expires)| *expires <= now)
        {
            Self::evict_oldest(store);
        }
    }

    /// Drops the oldest entry; false when there is none.
    fn evict_oldest(store: &mut Store) -> bool {
        let Some((index, expires)) = store.order.pop_front() else {
            return false;
        };
        // A re-put index has a newer order record; only drop the entry this record belongs to.
        if store
            .entries
            .get(&index)
            .is_some_and(|e| e.expires == expires)
        {
            if let Some(old) = store.entries.remove(&index) {
                store.bytes -= old.ciphertext.len() + ENTRY_OVERHEAD;
            }
        }
        true
    }

    /// Entries held (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &[u8] =
        br#"{"access_token":"PLAINTEXT-ACCESS-TOKEN","refresh_token":"PLAINTEXT-REFRESH"}"#;

    fn cache() -> ReplayCache {
        ReplayCache::new(Duration::from_secs(60), 100, 1 << 20)
    }

    #[test]
    fn an_identical_request_gets_the_stored_answer_and_another_does_not() {
        let cache = cache();
        let key = cache.key("kick", "token", &["code-1", "verifier", "redirect"]);
        cache.put(&key, ANSWER);
        let same = cache.key("kick", "token", &["code-1", "verifier", "redirect"]);
        assert_eq!(cache.get(&same).as_deref(), Some(ANSWER));
        for other in [
            cache.key("kick", "token", &["code-2", "verifier", "redirect"]),
            cache.key("kick", "token", &["code-1", "other-verifier", "redirect"]),
            cache.key("kick", "token", &["code-1", "verifier", "other"]),
            cache.key("kick", "refresh", &["code-1", "verifier", "redirect"]),
            cache.key("twitch", "token", &["code-1", "verifier", "redirect"]),
            cache.key("kick", "token", &["code-1verifier", "", "redirect"]),
        ] {
            assert!(cache.get(&other).is_none());
        }
    }

    /// Replicas sharing a store must derive the same index and key for the same request, across
    /// versions too: HKDF-SHA256 (RFC 5869) over the length-prefixed parts, computed here
    /// independently, in one call, from the joined input.
    #[test]
    fn index_and_key_are_hkdf_sha256_of_the_length_prefixed_parts() {
        let salt = [7u8; 32];
        let cache = ReplayCache::with_salt(Duration::from_secs(60), 100, 1 << 20, Some(salt));
        let parts = ["kick", "token", "code-1", "verifier", "redirect"];
        let mut ikm = Vec::new();
        for part in parts {
            ikm.extend_from_slice(&(part.len() as u64).to_be_bytes());
            ikm.extend_from_slice(part.as_bytes());
        }
        let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let (mut index, mut key) = ([0u8; 32], [0u8; 32]);
        hk.expand(b"kick-oauth-proxy replay index v1", &mut index)
            .expect("32 bytes");
        hk.expand(b"kick-oauth-proxy replay key v1", &mut key)
            .expect("32 bytes");
        for _ in 0..2 {
            // Twice: the keyed extract state is cloned per request, never consumed.
            let derived = cache.key("kick", "token", &parts[2..]);
            assert_eq!(derived.index(), index);
            assert_eq!(derived.key(), &key);
        }
    }

    #[test]
    fn memory_holds_no_plaintext_and_no_key() {
        let cache = cache();
        let key = cache.key("kick", "refresh", &["PLAINTEXT-REFRESH-INPUT"]);
        cache.put(&key, ANSWER);
        let store = cache.store.lock().expect("lock");
        let entry = store.entries.get(&key.index).expect("stored");
        let stored: Vec<u8> = [&key.index[..], &entry.nonce[..], &entry.ciphertext[..]].concat();
        for needle in [
            &b"PLAINTEXT"[..],
            b"access_token",
            b"PLAINTEXT-REFRESH-INPUT",
            &key.key()[..16],
        ] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle),
                "stored bytes contain {needle:?}"
            );
        }
        assert_eq!(
            entry.ciphertext.len(),
            ANSWER.len() + 16,
            "AEAD tag present"
        );
    }

    #[test]
    fn a_tampered_entry_is_not_returned() {
        let cache = cache();
        let key = cache.key("kick", "refresh", &["r"]);
        cache.put(&key, ANSWER);
        if let Some(entry) = cache
            .store
            .lock()
            .expect("lock")
            .entries
            .get_mut(&key.index)
        {
            entry.ciphertext[0] ^= 1;
        }
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn entries_expire_after_the_window() {
        let cache = ReplayCache::new(Duration::from_millis(30), 100, 1 << 20);
        let key = cache.key("kick", "refresh", &["r"]);
        cache.put(&key, ANSWER);
        assert!(cache.get(&key).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&key).is_none());
        let other = cache.key("kick", "refresh", &["s"]);
        cache.put(&other, ANSWER);
        assert_eq!(cache.len(), 1, "the expired entry was purged");
    }

    #[test]
    fn bounds_evict_the_oldest_entries() {
        let cache = ReplayCache::new(Duration::from_secs(60), 3, 1 << 20);
        let keys: Vec<_> = (0..5)
            .map(|i| cache.key("kick", "refresh", &[&i.to_string()]))
            .collect();
        keys.iter().for_each(|k| cache.put(k, ANSWER));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&keys[0]).is_none());
        assert!(cache.get(&keys[4]).is_some());

        let small = ReplayCache::new(
            Duration::from_secs(60),
            100,
            2 * (ANSWER.len() + 16 + ENTRY_OVERHEAD),
        );
        let keys: Vec<_> = (0..4)
            .map(|i| small.key("kick", "refresh", &[&i.to_string()]))
            .collect();
        keys.iter().for_each(|k| small.put(k, ANSWER));
        assert_eq!(small.len(), 2);
        assert!(small.get(&keys[3]).is_some());
    }

    #[test]
    fn a_zero_window_stores_nothing() {
        let cache = ReplayCache::new(Duration::ZERO, 100, 1 << 20);
        let key = cache.key("kick", "refresh", &["r"]);
        cache.put(&key, ANSWER);
        assert!(cache.get(&key).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_key_prints_redacted() {
        let key = cache().key("kick", "refresh", &["r"]);
        assert_eq!(format!("{key:?}"), "ReplayKey([redacted])");
    }
}
