//! Hostile form bodies: the strict urlencoded decoder, then every parser a
//! decoded field value reaches (tokens, codes, addresses), must neither
//! panic nor break their promises on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::domain::{EmailAddress, PlainToken, VerificationCode};
use usher::web::forms::{decode, decode_fields};

/// A form as a route declares one: unknown fields ignored, known ones once.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SignIn {
    email: String,
    password: String,
    remember_me: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = decode_fields(data) {
        assert!(std::str::from_utf8(data).is_ok(), "accepted invalid UTF-8");
        if decode::<SignIn>(data).is_ok() {
            for known in ["email", "password", "remember_me"] {
                assert!(fields.iter().filter(|(name, _)| name == known).count() <= 1, "accepted a repeated {known}");
            }
        }
        for (name, value) in &fields {
            assert!(
                name.chars().chain(value.chars()).all(|c| !c.is_control() || matches!(c, '\r' | '\n' | '\t')),
                "accepted a control character"
            );
            parse_all(value);
        }
    }
    // The parsers also see text that never went through a form.
    parse_all(&String::from_utf8_lossy(data));
});

fn parse_all(text: &str) {
    if let Some(token) = PlainToken::parse(text) {
        assert_eq!(token.expose().len(), 43);
        assert_eq!(token.expose(), text.trim());
        assert_eq!(token.hash().0.len(), 32);
    }
    if let Some(code) = VerificationCode::parse(text) {
        assert!(code.expose().len() == 6 && code.expose().bytes().all(|b| b.is_ascii_digit()));
    }
    if let Ok(email) = EmailAddress::parse(text) {
        let stored = email.as_str();
        assert_eq!(stored, stored.trim());
        assert_eq!(stored, stored.to_lowercase());
        assert!(!email.local_part().is_empty());
        assert!(email.domain().is_ascii());
        assert_eq!(EmailAddress::parse(stored).as_ref(), Ok(&email));
    }
}
