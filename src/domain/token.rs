use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const TOKEN_BYTES: usize = 32;
/// Length of 32 bytes in unpadded URL-safe base64.
const TOKEN_TEXT_LENGTH: usize = 43;

/// `n` random bytes from the operating system's CSPRNG (via rand's thread RNG).
pub fn random_secret<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill(&mut bytes[..]);
    bytes
}

/// A secret that goes out in an email link and nowhere else. Its `Debug`
/// hides the value so it cannot slip into a log.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

/// What the database keeps of a token or code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(pub Vec<u8>);

impl PlainToken {
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_secret::<TOKEN_BYTES>()))
    }

    /// Accepts only what `generate` makes, so junk never reaches a query.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let well_formed =
            raw.len() == TOKEN_TEXT_LENGTH && URL_SAFE_NO_PAD.decode(raw).is_ok_and(|bytes| bytes.len() == TOKEN_BYTES);
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(***)")
    }
}

/// A six-digit code to type in by hand.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationCode(String);

impl VerificationCode {
    pub fn generate() -> Self {
        Self(format!("{:06}", rand::rng().random_range(0..1_000_000u32)))
    }

    /// Six digits; spaces and dashes people type for readability are ignored.
    pub fn parse(raw: &str) -> Option<Self> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(Self(digits))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(***)")
    }
}

/// Hashes codes with a server-side key: a plain SHA-256 of six digits would
/// be reversed by trying all million of them.
#[derive(Clone)]
pub struct CodeHasher {
    key: [u8; 32],
}

impl CodeHasher {
    pub fn new(master_secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"usher verification code key\0");
        hasher.update(master_secret);
        Self { key: hasher.finalize().into() }
    }

    pub fn hash(&self, user_id: i64, code: &VerificationCode) -> TokenHash {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&user_id.to_be_bytes());
        mac.update(code.0.as_bytes());
        TokenHash(mac.finalize().into_bytes().to_vec())
    }
}

impl TokenHash {
    pub fn matches(&self, other: &[u8]) -> bool {
        self.0.ct_eq(other).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_to_32_bytes() {
        let token = PlainToken::generate();
        assert_eq!(token.expose().len(), TOKEN_TEXT_LENGTH);
        assert_eq!(PlainToken::parse(token.expose()), Some(token.clone()));
        assert_eq!(token.hash().0.len(), 32);
        assert_ne!(PlainToken::generate(), token, "tokens must be random");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for raw in ["", "short", &"A".repeat(44), &"*".repeat(43)] {
            assert_eq!(PlainToken::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let token = PlainToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn codes_are_six_digits_and_tolerate_separators() {
        let code = VerificationCode::generate();
        assert_eq!(code.expose().len(), 6);
        assert_eq!(VerificationCode::parse("123 456").map(|c| c.0), Some("123456".into()));
        assert_eq!(VerificationCode::parse("123-456").map(|c| c.0), Some("123456".into()));
        for raw in ["12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(VerificationCode::parse(raw).is_none(), "{raw:?}");
        }
    }

    #[test]
    fn code_hashes_depend_on_key_and_user() {
        let code = VerificationCode::parse("123456").unwrap();
        let a = CodeHasher::new(b"first key of at least thirty-two bytes");
        let b = CodeHasher::new(b"other key of at least thirty-two bytes");
        assert_eq!(a.hash(1, &code), a.hash(1, &code));
        assert_ne!(a.hash(1, &code), a.hash(2, &code));
        assert_ne!(a.hash(1, &code), b.hash(1, &code));
    }
}
