//! Secrets Usher must read back (authenticator secrets) are stored sealed
//! with AES-256-GCM under keys of their own, derived by HKDF-SHA-256
//! (RFC 5869) from `USHER_ENCRYPTION_KEY`, never from the session key:
//! rotating that after a leak must not lock anyone out.
//!
//! A sealed value is `[1][key id: 4 bytes][nonce: 12 bytes][ciphertext and
//! tag]`. The key id says which key sealed it, so keys listed in
//! `USHER_ENCRYPTION_OLD_KEYS` still open values sealed before a rotation
//! (`usher rotate-encryption-key` reseals them under the current key). The
//! caller's associated data (e.g. the user id) binds a value to its row:
//! copied to another account's row, it no longer opens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::domain::random_secret;

const FORMAT: u8 = 1;
const KEY_ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = 1 + KEY_ID_BYTES + NONCE_BYTES;

/// One key: its id and cipher.
#[derive(Clone)]
struct SealingKey {
    id: [u8; KEY_ID_BYTES],
    cipher: Aes256Gcm,
}

impl SealingKey {
    /// Derives the AES key and its id from an operator's secret.
    fn derive(secret: &str) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"usher encryption key"), secret.as_bytes());
        let mut key = [0u8; 32];
        hkdf.expand(b"aes-256-gcm", &mut key).expect("32 bytes is a valid HKDF-SHA-256 length");
        let mut id = [0u8; KEY_ID_BYTES];
        hkdf.expand(b"key id", &mut id).expect("4 bytes is a valid HKDF-SHA-256 length");
        Self { id, cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed under a key that is neither current nor listed as old.
    #[error("sealed under a key Usher was not given (USHER_ENCRYPTION_KEY or USHER_ENCRYPTION_OLD_KEYS)")]
    UnknownKey,
    /// Altered, truncated, or moved to another row.
    #[error("the sealed value is damaged or belongs to another record")]
    Damaged,
}

/// The current key, which seals, and older ones, which still open.
#[derive(Clone)]
pub struct KeyRing {
    current: SealingKey,
    old: Vec<SealingKey>,
}

impl KeyRing {
    /// A ring sealing under `current` and opening under it and `old`.
    pub fn new(current: &str, old: &[&str]) -> Self {
        Self {
            current: SealingKey::derive(current),
            old: old.iter().map(|secret| SealingKey::derive(secret)).collect(),
        }
    }

    /// Seals `plaintext` under the current key, bound to `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let nonce = random_secret::<NONCE_BYTES>();
        let payload = Payload { msg: plaintext, aad: associated_data };
        let ciphertext =
            self.current.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encrypts any message");
        let mut sealed = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&self.current.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend(ciphertext);
        sealed
    }

    /// Opens a value sealed by `seal` under any key of the ring.
    ///
    /// # Errors
    /// `UnknownKey` when no key of the ring sealed it; `Damaged` when it
    /// was altered or `associated_data` is not what it was sealed with.
    pub fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < HEADER_BYTES || sealed[0] != FORMAT {
            return Err(OpenError::Damaged);
        }
        let (id, rest) = sealed[1..].split_at(KEY_ID_BYTES);
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let key =
            std::iter::once(&self.current).chain(&self.old).find(|key| key.id == id).ok_or(OpenError::UnknownKey)?;
        let payload = Payload { msg: ciphertext, aad: associated_data };
        key.cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| OpenError::Damaged)
    }

    /// Whether `sealed` was sealed under the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.get(1..1 + KEY_ID_BYTES) == Some(&self.current.id[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_associated_data() {
        let ring = KeyRing::new("first key of at least thirty-two bytes", &[]);
        let sealed = ring.seal(b"authenticator secret", b"user 7");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.open(&sealed, b"user 7").unwrap(), b"authenticator secret");
        assert_eq!(ring.open(&sealed, b"user 8"), Err(OpenError::Damaged));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(&altered, b"user 7"), Err(OpenError::Damaged));
        let other = KeyRing::new("another key of at least thirty-two bytes", &[]);
        assert_eq!(other.open(&sealed, b"user 7"), Err(OpenError::UnknownKey));
    }

    #[test]
    fn after_a_rotation_old_values_open_until_resealed() {
        let old = KeyRing::new("first key of at least thirty-two bytes", &[]);
        let sealed = old.seal(b"secret", b"user 7");
        let rotated =
            KeyRing::new("second key of at least thirty-two bytes", &["first key of at least thirty-two bytes"]);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(&sealed, b"user 7").unwrap(), b"secret");
        let resealed = rotated.seal(&rotated.open(&sealed, b"user 7").unwrap(), b"user 7");
        assert!(rotated.is_current(&resealed));
        let new_only = KeyRing::new("second key of at least thirty-two bytes", &[]);
        assert_eq!(new_only.open(&resealed, b"user 7").unwrap(), b"secret");
    }
}
