//! Second factors as values: authenticator secrets (RFC 6238 TOTP through
//! the `totp-rs` crate: HMAC-SHA-1, 6 digits, 30-second steps, one step of
//! clock drift either way) and recovery codes (ten characters of Crockford
//! base32, 50 bits each, kept only as a salted SHA-256).

use std::fmt;

use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};

use super::random_secret;

/// Seconds per RFC 6238 time step.
pub const STEP_SECS: i64 = 30;
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Characters in a recovery code (5 bits each).
const RECOVERY_CODE_CHARS: usize = 10;
/// Crockford's base32 alphabet, lowercase: no i, l, o or u to misread.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Bytes of an authenticator secret: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;

/// An authenticator secret. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        Self(random_secret())
    }

    /// The secret from its raw bytes (as decrypted); `None` if they are
    /// not a secret of ours.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Totp {
        // `otpauth` labels may not hold a colon: it separates issuer and account.
        let issuer = issuer.map(|issuer| issuer.replace(':', " "));
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(STEP_SECS as u64)
            .with_secret(self.0)
            .with_issuer(issuer)
            .with_account_name(account.replace(':', " "))
            .build()
            .expect("a 160-bit secret with RFC 6238's parameters is valid")
    }

    /// The secret in base32 (RFC 4648, no padding), as authenticator apps
    /// take it typed in.
    pub fn base32(&self) -> String {
        self.totp(None, "").secret().to_base32()
    }

    /// The base32 secret in groups of four, easier to type.
    pub fn grouped(&self) -> String {
        let base32 = self.base32();
        let groups: Vec<&str> =
            base32.as_bytes().chunks(4).map(|chunk| std::str::from_utf8(chunk).unwrap_or("")).collect();
        groups.join(" ")
    }

    /// The `otpauth://totp/…` URI of Google Authenticator's key URI format,
    /// naming the site (`issuer`) and the account's address.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        self.totp(Some(issuer), account).to_url().unwrap_or_default()
    }

    /// The code this secret gives at `at` (unix seconds).
    pub fn code_at(&self, at: i64) -> String {
        self.totp(None, "").generate(u64::try_from(at).unwrap_or(0)).to_string()
    }

    /// The time step whose code `code` is, among the current step and one
    /// either side of `now` (unix seconds); `None` for any other code.
    /// The caller refuses a step already accepted (RFC 6238 §5.2).
    pub fn matching_step(&self, code: &str, now: i64) -> Option<i64> {
        let now = u64::try_from(now).ok()?;
        self.totp(None, "").check(code, now).and_then(|step| i64::try_from(step).ok())
    }
}

/// What was typed at a second-factor prompt, told apart by its shape.
#[derive(Clone, PartialEq, Eq)]
pub enum SecondFactorCode {
    /// Six digits from the authenticator app.
    Totp(String),
    /// A recovery code, normalised (lowercase, no separators).
    Recovery(String),
}

impl fmt::Debug for SecondFactorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Totp(_) => "Totp(***)",
            Self::Recovery(_) => "Recovery(***)",
        })
    }
}

impl SecondFactorCode {
    /// Reads a typed code: NFKC first (full-width digits from an East Asian
    /// keyboard become ASCII), spaces and hyphens are ignored, letters may
    /// be in either case, and the letters o, i and l read as 0, 1 and 1.
    /// `None` when it is neither six digits nor a recovery code.
    pub fn parse(typed: &str) -> Option<Self> {
        use unicode_normalization::UnicodeNormalization;
        let compact: String = typed.nfkc().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Self::Totp(compact));
        }
        let normal: String = compact
            .to_ascii_lowercase()
            .chars()
            .map(|c| match c {
                'o' => '0',
                'i' | 'l' => '1',
                other => other,
            })
            .collect();
        let valid = normal.len() == RECOVERY_CODE_CHARS && normal.bytes().all(|b| CROCKFORD.contains(&b));
        valid.then_some(Self::Recovery(normal))
    }
}

/// A new set of recovery codes, as shown to the person (`xxxxx-xxxxx`).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random_secret::<RECOVERY_CODE_CHARS>();
            // 256 is a multiple of 32: every character is equally likely.
            let chars: String = bytes.iter().map(|b| char::from(CROCKFORD[usize::from(b % 32)])).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// The stored form of a recovery code: a random 16-byte salt and
/// SHA-256(salt ‖ normalised code). A fast hash is enough for 50 random
/// bits, and spares the password-hashing pool ten checks per guess.
pub fn hash_recovery_code(code: &str) -> (Vec<u8>, Vec<u8>) {
    let salt = random_secret::<16>().to_vec();
    let normal = match SecondFactorCode::parse(code) {
        Some(SecondFactorCode::Recovery(normal)) => normal,
        _ => code.to_owned(),
    };
    let hash = recovery_code_hash(&salt, &normal);
    (salt, hash)
}

/// SHA-256(salt ‖ normalised code).
pub fn recovery_code_hash(salt: &[u8], normal: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(normal.as_bytes());
    hasher.finalize().to_vec()
}

/// The QR code of `text` as inline SVG markup: no `style` attribute and
/// no `data:` URL, so the page's `default-src 'self'` policy shows it.
pub fn qr_svg(text: &str, label: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else { return String::new() };
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    // Inline markup takes no XML declaration; the label names it for screen readers.
    let svg = svg.split_once("?>").map_or(svg.as_str(), |(_, rest)| rest).to_owned();
    let label = label.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    svg.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{label}\" class=\"qr\" "), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, cut to the 6 digits Usher uses.
    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let vectors = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        for (at, code) in vectors {
            assert_eq!(secret.code_at(at), code, "at {at}");
            assert_eq!(secret.matching_step(code, at), Some(at / STEP_SECS));
        }
    }

    #[test]
    fn one_step_of_drift_is_accepted_either_way_and_two_are_not() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_015;
        for (offset, accepted) in [(-60, false), (-30, true), (0, true), (30, true), (60, false)] {
            let code = secret.code_at(now + offset);
            assert_eq!(secret.matching_step(&code, now).is_some(), accepted, "offset {offset}");
        }
    }

    #[test]
    fn recovery_codes_carry_fifty_bits_and_read_forgivingly() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 11);
            let Some(SecondFactorCode::Recovery(normal)) = SecondFactorCode::parse(code) else { panic!("{code}") };
            let (salt, hash) = hash_recovery_code(code);
            assert_eq!(recovery_code_hash(&salt, &normal), hash);
            let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
            assert_eq!(SecondFactorCode::parse(&typed), Some(SecondFactorCode::Recovery(normal)));
        }
        assert_eq!(SecondFactorCode::parse("123 456"), Some(SecondFactorCode::Totp("123456".into())));
        assert_eq!(
            SecondFactorCode::parse("１２３ ４５６"),
            Some(SecondFactorCode::Totp("123456".into())),
            "full width"
        );
        assert_eq!(SecondFactorCode::parse("12345"), None);
        assert_eq!(SecondFactorCode::parse("abcde-fghiu"), None, "u is not in the alphabet");
    }

    #[test]
    fn the_qr_code_is_inline_svg_without_styles() {
        let secret = TotpSecret::generate();
        let uri = secret.otpauth_uri("Site: Name", "ann@example.com");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={}", secret.base32())));
        let svg = qr_svg(&uri, "QR code");
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(!svg.contains("style") && !svg.contains("<?xml"));
    }
}
