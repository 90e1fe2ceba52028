//! Encrypts composed messages while they wait in the outbox, so the links
//! and codes in them are never stored readable. AES-256-GCM with a random
//! nonce per message, under a key derived from the session secret.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};

use crate::domain::random_secret;

const NONCE_BYTES: usize = 12;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(master_secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"usher outbox key\0");
        hasher.update(master_secret);
        let key: [u8; 32] = hasher.finalize().into();
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    pub fn seal(&self, message: &[u8]) -> Vec<u8> {
        let nonce = random_secret::<NONCE_BYTES>();
        let mut sealed = nonce.to_vec();
        sealed.extend(self.cipher.encrypt(Nonce::from_slice(&nonce), message).expect("AES-GCM encrypts any message"));
        sealed
    }

    /// `None` if the payload was not sealed with this key (the secret changed).
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_BYTES)?;
        self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_only_with_the_same_key_and_hide_the_text() {
        let sealer = Sealer::new(b"a secret of at least thirty-two bytes!!");
        let sealed = sealer.seal(b"link: https://example.com/verify?token=abc");
        assert!(!sealed.windows(3).any(|w| w == b"abc"));
        assert_eq!(sealer.open(&sealed).as_deref(), Some(&b"link: https://example.com/verify?token=abc"[..]));
        assert_eq!(Sealer::new(b"another secret of thirty-two bytes or more").open(&sealed), None);
        assert_eq!(sealer.open(&sealed[..5]), None);
    }
}
