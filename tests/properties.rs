//! Property-based tests of the form parsers and domain types: what must hold
//! for every input, not only for the examples in the unit tests.
//!
//! Case counts are kept moderate so the whole file stays well under 30 s in
//! a debug build on two cores; `PROPTEST_CASES` raises them for a longer run.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

use usher::config::Settings;
use usher::db::DatabaseUrl;
use usher::domain::{
    CodeHasher, EmailAddress, PasswordPolicy, PasswordProblem, PlainToken, TokenHash, VerificationCode,
    normalize_password,
};
use usher::web::forms::{decode, decode_fields};

const MAX_EMAIL_BYTES: usize = 254;
const MAX_PASSWORD_CHARS: usize = 128;

/// A config with `cases` cases, unless `PROPTEST_CASES` asks for more.
fn cases(cases: u32) -> ProptestConfig {
    let from_env = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    ProptestConfig { cases: cases.max(from_env), ..ProptestConfig::default() }
}

/// A string of up to `max` characters drawn mostly from `alphabet`, with
/// some arbitrary characters mixed in, to reach the interesting branches.
fn text_from(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    let pick = prop_oneof![8 => proptest::sample::select(chars), 1 => any::<char>()];
    proptest::collection::vec(pick, 0..=max).prop_map(|chars| chars.into_iter().collect())
}

fn is_allowed_form_char(c: char) -> bool {
    !c.is_control() || matches!(c, '\r' | '\n' | '\t')
}

// ---------------------------------------------------------------------------
// EmailAddress

/// Addresses that every part of the stack agrees are valid.
fn plain_address() -> impl Strategy<Value = String> {
    let local = "[a-z0-9]{1,12}([._+-][a-z0-9]{1,8}){0,2}";
    let label = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";
    let tld = "[a-z]{2,6}";
    (local, proptest::collection::vec(label, 1..=3), tld)
        .prop_map(|(local, labels, tld)| format!("{local}@{}.{tld}", labels.join(".")))
}

/// Flips the case of ASCII letters where `mask` says so.
fn recase(text: &str, mask: &[bool]) -> String {
    text.chars().zip(mask.iter().cycle()).map(|(c, &upper)| if upper { c.to_ascii_uppercase() } else { c }).collect()
}

fn check_normalised_email(raw: &str) -> Result<(), TestCaseError> {
    if let Ok(email) = EmailAddress::parse(raw) {
        let text = email.as_str();
        prop_assert_eq!(text, text.trim(), "not trimmed: {:?}", raw);
        prop_assert_eq!(text.to_lowercase(), text, "not lower case: {:?}", raw);
        prop_assert!(text.len() <= MAX_EMAIL_BYTES, "{} bytes from {:?}", text.len(), raw);
        prop_assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()), "{:?}", raw);
        prop_assert!(!email.local_part().is_empty());
        prop_assert_eq!(format!("{}@", email.local_part()), &text[..=email.local_part().len()]);
        prop_assert_eq!(email.to_string(), text);
        prop_assert!(email.domain().is_ascii(), "domain not in its ASCII form: {:?} from {:?}", text, raw);
        let again = EmailAddress::parse(text);
        prop_assert_eq!(again.as_ref(), Ok(&email), "not idempotent: {:?}", raw);
        let unicode = email.to_unicode();
        let from_unicode = EmailAddress::parse(&unicode);
        prop_assert_eq!(from_unicode.as_ref(), Ok(&email), "Unicode form {:?} of {:?}", unicode, raw);
    }
    Ok(())
}

/// Addresses whose domain has non-ASCII labels (IDNs), as people type them.
fn idn_address() -> impl Strategy<Value = String> {
    let local = "[a-z0-9]{1,12}([._+-][a-z0-9]{1,8}){0,2}";
    // Letters of several scripts, mixed with ASCII; `ß` and `ς` are where
    // transitional and non-transitional processing differ.
    let label = "[a-z0-9]{0,3}[äöüßéçñøåłждяαβςσ例え中文]{1,4}[a-z0-9]{0,3}";
    let tld = "([a-z]{2,6}|テスト|рф)";
    (local, proptest::collection::vec(label, 1..=3), tld)
        .prop_map(|(local, labels, tld)| format!("{local}@{}.{tld}", labels.join(".")))
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn email_parse_never_panics_and_normalises(raw in any::<String>()) {
        check_normalised_email(&raw)?;
    }

    #[test]
    fn email_parse_normalises_address_like_text(raw in text_from("abcXYZ019.@-_+ \t\u{130}\u{23a}\u{212a}\"[]", 40)) {
        check_normalised_email(&raw)?;
    }

    #[test]
    fn email_parse_normalises_idn_like_text(
        raw in text_from("abXY0.@-_+ xn-\u{e9}\u{df}\u{3c2}\u{3a3}\u{fc}\u{308}\u{3002}\u{ff0e}\u{ff41}\u{200d}\u{5d0}\u{ff20}", 40),
    ) {
        check_normalised_email(&raw)?;
    }

    #[test]
    fn unicode_and_punycode_forms_parse_equal(
        address in idn_address(),
        mask in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let unicode = EmailAddress::parse(&address);
        prop_assert!(unicode.is_ok(), "{:?} refused: {:?}", address, unicode.map_err(|p| p.to_string()));
        let unicode = unicode.unwrap();
        let (local, domain) = address.rsplit_once('@').unwrap();
        // The punycode form worked out by the idna crate on its own, typed in any case.
        let punycode = format!("{local}@{}", idna::domain_to_ascii(domain).unwrap());
        prop_assert_eq!(unicode.as_str(), punycode.as_str());
        let typed = EmailAddress::parse(&recase(&punycode, &mask));
        prop_assert_eq!(typed.as_ref(), Ok(&unicode), "typed {:?}", recase(&punycode, &mask));
        prop_assert_eq!(unicode.to_unicode(), address.clone());
        check_normalised_email(&address)?;
    }

    #[test]
    fn plain_addresses_are_accepted_whatever_their_case_and_padding(
        address in plain_address(),
        mask in proptest::collection::vec(any::<bool>(), 1..8),
        before in "[ \t\r\n]{0,3}",
        after in "[ \t\r\n]{0,3}",
    ) {
        let typed = format!("{before}{}{after}", recase(&address, &mask));
        let email = EmailAddress::parse(&typed);
        prop_assert_eq!(email.as_ref().map(EmailAddress::as_str), Ok(address.as_str()), "typed {:?}", typed);
    }

    #[test]
    fn addresses_longer_than_254_bytes_are_refused(local in "[a-z]{1,64}", extra in 1usize..40) {
        let raw = format!("{local}@{}", domain_of_length(MAX_EMAIL_BYTES + extra - local.len() - 1));
        prop_assert_eq!(raw.len(), MAX_EMAIL_BYTES + extra);
        let refused = EmailAddress::parse(&raw).map_err(|problem| problem.to_string());
        prop_assert_eq!(refused, Err("That email address is too long.".to_owned()));
    }
}

/// A valid domain name of exactly `length` bytes (at least 5): labels of at
/// most 60 bytes, ending in `.com`.
fn domain_of_length(length: usize) -> String {
    let body = length - ".com".len();
    let mut domain: String = (0..body).map(|i| if i % 61 == 60 && i + 1 != body { '.' } else { 'd' }).collect();
    domain.push_str(".com");
    domain
}

/// Lower-casing can make a string longer (`İ` is two bytes, `i̇` three), so
/// the limit must hold for the normalised address too: an address that is
/// accepted must be accepted again as it was stored (a 254-byte `Ⱥ@…`,
/// U+023A of two bytes, lower-cases to a 255-byte `ⱥ@…`).
#[test]
fn email_length_limit_holds_after_lower_casing() {
    let mut accepted_too_long = Vec::new();
    for expanding in ["\u{130}", "\u{23a}", "\u{23e}"] {
        for copies in 1..=4 {
            let local = expanding.repeat(copies);
            let raw = format!("{local}@{}", domain_of_length(MAX_EMAIL_BYTES - local.len() - 1));
            assert_eq!(raw.len(), MAX_EMAIL_BYTES);
            if let Ok(email) = EmailAddress::parse(&raw)
                && email.as_str().len() > MAX_EMAIL_BYTES
            {
                accepted_too_long.push(format!(
                    "{raw:?} ({} bytes) is stored as {} bytes, which parse then refuses: {:?}",
                    raw.len(),
                    email.as_str().len(),
                    EmailAddress::parse(email.as_str()).map_err(|problem| problem.to_string()),
                ));
            }
        }
    }
    assert!(accepted_too_long.is_empty(), "{}", accepted_too_long.join("\n"));
}

// ---------------------------------------------------------------------------
// PlainToken

const URL_SAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn generated_tokens_are_43_url_safe_chars_that_parse(_round in 0u8..4) {
        let token = PlainToken::generate();
        let text = token.expose();
        prop_assert_eq!(text.len(), 43);
        prop_assert!(text.chars().all(|c| URL_SAFE.contains(c)));
        prop_assert_eq!(URL_SAFE_NO_PAD.decode(text).map(|bytes| bytes.len()), Ok(32));
        prop_assert_eq!(PlainToken::parse(text), Some(token.clone()));
        prop_assert_eq!(token.hash().0.len(), 32);
        let shown = format!("{token:?}");
        prop_assert!(!shown.contains(text));
    }

    #[test]
    fn every_32_byte_secret_encodes_to_a_token(bytes in any::<[u8; 32]>(), pad in "[ \t\r\n]{0,2}") {
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let token = PlainToken::parse(&format!("{pad}{text}{pad}"));
        prop_assert_eq!(token.as_ref().map(PlainToken::expose), Some(text.as_str()));
    }

    #[test]
    fn tokens_of_another_length_are_refused(raw in "[A-Za-z0-9_-]{0,100}") {
        prop_assume!(raw.len() != 43);
        prop_assert_eq!(PlainToken::parse(&raw), None);
    }

    #[test]
    fn a_parsed_token_is_exactly_a_canonical_encoding_of_32_bytes(
        raw in prop_oneof![
            "[A-Za-z0-9_-]{43}",
            text_from("ABCxyz019-_+/= \t", 50),
            any::<String>(),
        ],
    ) {
        if let Some(token) = PlainToken::parse(&raw) {
            let text = token.expose();
            prop_assert_eq!(text, raw.trim());
            prop_assert_eq!(text.len(), 43);
            prop_assert!(text.chars().all(|c| URL_SAFE.contains(c)), "{:?}", raw);
            let bytes = URL_SAFE_NO_PAD.decode(text).expect("a parsed token decodes");
            prop_assert_eq!(bytes.len(), 32);
            prop_assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), text);
            prop_assert_eq!(token.hash(), PlainToken::parse(text).unwrap().hash());
        } else {
            // Refused: then it is not the encoding of 32 bytes.
            let trimmed = raw.trim();
            let canonical =
                URL_SAFE_NO_PAD.decode(trimmed).is_ok_and(|b| b.len() == 32 && URL_SAFE_NO_PAD.encode(&b) == trimmed);
            prop_assert!(!canonical, "refused a valid token {:?}", raw);
        }
    }

    #[test]
    fn different_tokens_hash_differently(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let ta = PlainToken::parse(&URL_SAFE_NO_PAD.encode(a)).unwrap();
        let tb = PlainToken::parse(&URL_SAFE_NO_PAD.encode(b)).unwrap();
        prop_assert_eq!(ta.hash() == tb.hash(), a == b);
    }
}

// ---------------------------------------------------------------------------
// VerificationCode, CodeHasher, TokenHash

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn codes_are_exactly_six_ascii_digits_ignoring_spaces_and_dashes(
        raw in prop_oneof![
            text_from("0123456789 -", 12),
            text_from("0123456789 -a\u{661}\u{ff11}\t_", 12),
            any::<String>(),
        ],
    ) {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let expected = digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit());
        let code = VerificationCode::parse(&raw);
        prop_assert_eq!(code.is_some(), expected, "{:?}", raw);
        if let Some(code) = code {
            prop_assert_eq!(code.expose(), digits.as_str());
            let shown = format!("{code:?}");
            prop_assert!(!shown.contains(code.expose()));
        }
    }

    #[test]
    fn six_digits_with_separators_anywhere_parse(
        digits in "[0-9]{6}",
        separators in proptest::collection::vec("[ -]{0,2}", 7),
    ) {
        let typed: String = separators
            .iter()
            .zip(digits.chars().map(Some).chain(std::iter::once(None)))
            .flat_map(|(sep, digit)| sep.chars().chain(digit))
            .collect();
        prop_assert_eq!(VerificationCode::parse(&typed).map(|c| c.expose().to_owned()), Some(digits), "{:?}", typed);
    }

    #[test]
    fn other_numbers_of_digits_are_refused(digits in "[0-9]{0,12}") {
        prop_assume!(digits.len() != 6);
        prop_assert!(VerificationCode::parse(&digits).is_none());
    }

    #[test]
    fn generated_codes_parse(_round in 0u8..4) {
        let code = VerificationCode::generate();
        prop_assert_eq!(code.expose().len(), 6);
        prop_assert_eq!(VerificationCode::parse(code.expose()), Some(code));
    }

    #[test]
    fn code_hashes_are_keyed_by_secret_user_and_code(
        key in proptest::collection::vec(any::<u8>(), 0..64),
        other_key in proptest::collection::vec(any::<u8>(), 0..64),
        user in any::<i64>(),
        other_user in any::<i64>(),
        code in "[0-9]{6}",
        other_code in "[0-9]{6}",
    ) {
        let hasher = CodeHasher::new(&key);
        let code_v = VerificationCode::parse(&code).unwrap();
        let other_v = VerificationCode::parse(&other_code).unwrap();
        let hash = hasher.hash(user, &code_v);
        prop_assert_eq!(hash.0.len(), 32);
        prop_assert_eq!(&hash, &CodeHasher::new(&key).hash(user, &code_v));
        prop_assert!(hash.matches(&hasher.hash(user, &code_v).0));
        prop_assert_eq!(hash == hasher.hash(other_user, &code_v), user == other_user);
        prop_assert_eq!(hash == hasher.hash(user, &other_v), code == other_code);
        prop_assert_eq!(hash == CodeHasher::new(&other_key).hash(user, &code_v), key == other_key);
    }

    #[test]
    fn token_hash_matches_exactly_equal_bytes(
        a in proptest::collection::vec(any::<u8>(), 0..40),
        b in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        prop_assert!(TokenHash(a.clone()).matches(&a));
        prop_assert_eq!(TokenHash(a.clone()).matches(&b), a == b);
    }
}

// ---------------------------------------------------------------------------
// Passwords

fn password_chars() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('0', '9'),
        1 => proptest::sample::select(vec![' ', '!', 'É', 'é', '\u{301}', 'ｱ', 'ﬁ', '①', '㎏', 'Ａ', 'ß', '\u{fdfa}']),
        1 => any::<char>(),
    ]
}

fn password(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(password_chars(), 0..=max_chars).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    // zxcvbn is slow: few cases and short passwords where it runs.
    #![proptest_config(cases(48))]

    #[test]
    fn accepted_passwords_are_normalised_and_within_the_length_limits(
        raw in password(24),
        min_length in 8usize..=16,
    ) {
        let policy = PasswordPolicy { min_length };
        let result = policy.check(&raw, &raw, &[]);
        prop_assert_eq!(&result, &policy.check(&raw, &raw, &[]), "not deterministic");
        let normalised = normalize_password(&raw);
        let length = normalised.chars().count();
        match &result {
            Ok(accepted) => {
                prop_assert_eq!(accepted, &normalised);
                prop_assert!((min_length..=MAX_PASSWORD_CHARS).contains(&length), "{} chars accepted", length);
            }
            Err(PasswordProblem::TooShort(n)) => {
                prop_assert_eq!(*n, min_length);
                prop_assert!(length < min_length);
            }
            Err(PasswordProblem::TooLong) => prop_assert!(length > MAX_PASSWORD_CHARS),
            Err(PasswordProblem::Guessable(reason)) => prop_assert!(!reason.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {:?} for {:?}", other, raw),
        }
        if length < min_length {
            prop_assert_eq!(result, Err(PasswordProblem::TooShort(min_length)));
        }
    }

    #[test]
    fn composed_and_decomposed_forms_are_the_same_password(raw in password(20)) {
        let policy = PasswordPolicy { min_length: 8 };
        let nfd: String = raw.nfd().collect();
        prop_assert_eq!(policy.check(&raw, &nfd, &[]), policy.check(&nfd, &raw, &[]));
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn normalisation_is_nfkc_and_idempotent(raw in password(40)) {
        let once = normalize_password(&raw);
        prop_assert_eq!(&normalize_password(&once), &once);
        prop_assert_eq!(once, raw.nfkc().collect::<String>());
    }

    /// Lengths outside the limits are refused before zxcvbn runs, so these
    /// cases are cheap and may be long.
    #[test]
    fn lengths_outside_the_limits_are_always_refused(
        raw in prop_oneof![password(7), proptest::collection::vec(password_chars(), 129..400)
            .prop_map(|chars| chars.into_iter().collect::<String>())],
        min_length in 8usize..=64,
    ) {
        let policy = PasswordPolicy { min_length };
        let length = normalize_password(&raw).chars().count();
        prop_assume!(length < min_length || length > MAX_PASSWORD_CHARS);
        let result = policy.check(&raw, &raw, &[]);
        if length < min_length {
            prop_assert_eq!(result, Err(PasswordProblem::TooShort(min_length)));
        } else if length > MAX_PASSWORD_CHARS {
            prop_assert_eq!(result, Err(PasswordProblem::TooLong));
        }
    }

    #[test]
    fn a_confirmation_that_normalises_differently_is_a_mismatch(
        raw in "[a-z0-9]{12,40}",
        confirmation in "[a-z0-9]{12,40}",
    ) {
        prop_assume!(raw != confirmation);
        let policy = PasswordPolicy { min_length: 12 };
        prop_assert_eq!(policy.check(&raw, &confirmation, &[]), Err(PasswordProblem::Mismatch));
    }
}

// ---------------------------------------------------------------------------
// decode_fields

/// Field text a browser could send: anything but control characters other
/// than CR, LF and tab.
fn field_text(max: usize) -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::sample::select("ab=&+%; \r\n\t#?/é€😀".chars().collect::<Vec<_>>()),
        4 => any::<char>(),
    ]
    .prop_filter("allowed in forms", |c| is_allowed_form_char(*c));
    proptest::collection::vec(c, 0..=max).prop_map(|chars| chars.into_iter().collect())
}

/// Raw bodies that look like forms, so the percent and `+` branches run.
fn form_like_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(vec![
            "a", "b", "=", "&", "+", "%", "%2", "%41", "%C3", "%A9", "%FF", "%00", "%0A", "%7F", "%C2%85",
            "%E2%80%8B", "%F0%9F%98%80", "%ED%A0%80", "\u{7f}", "\t", "é", "&&", "==",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// A form with two fields, as a route would declare it.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct KnownFields {
    email: String,
    password: String,
}
const KNOWN: [&str; 2] = ["email", "password"];

fn check_decoded(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(fields) = decode_fields(body) else { return Ok(()) };
    prop_assert!(std::str::from_utf8(body).is_ok(), "accepted invalid UTF-8 {:?}", body);
    let pairs = body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()).count();
    prop_assert_eq!(fields.len(), pairs);
    for (name, value) in &fields {
        prop_assert!(name.chars().chain(value.chars()).all(is_allowed_form_char), "control char from {:?}", body);
    }
    // What was accepted survives a re-encoding unchanged.
    let reencoded = serde_urlencoded::to_string(&fields).unwrap();
    prop_assert_eq!(decode_fields(reencoded.as_bytes()).ok(), Some(fields));
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_decoded(&body)?;
    }

    #[test]
    fn decoding_form_like_bodies_keeps_its_promises(body in form_like_body()) {
        check_decoded(&body)?;
    }

    #[test]
    fn what_serde_urlencoded_encodes_round_trips(
        fields in proptest::collection::btree_map(field_text(12), field_text(24), 0..6),
        order in any::<proptest::sample::Index>(),
    ) {
        let mut fields: Vec<(String, String)> = fields.into_iter().collect();
        if !fields.is_empty() {
            let pivot = order.index(fields.len());
            fields.rotate_left(pivot);
        }
        let body = serde_urlencoded::to_string(&fields).unwrap();
        prop_assert_eq!(decode_fields(body.as_bytes()).ok(), Some(fields), "body {:?}", body);
    }

    #[test]
    fn a_repeated_known_field_is_refused(
        unknown in proptest::collection::vec((field_text(6), field_text(6)), 0..4),
        repeated in proptest::sample::select(vec!["email", "password"]),
        (email, password, value) in (field_text(6), field_text(6), field_text(6)),
    ) {
        let mut fields: Vec<(String, String)> =
            unknown.into_iter().filter(|(name, _)| !KNOWN.contains(&name.as_str())).collect();
        fields.push(("email".into(), email));
        fields.push(("password".into(), password));
        fields.push((repeated.into(), value));
        let body = serde_urlencoded::to_string(&fields).unwrap();
        let refused = decode::<KnownFields>(body.as_bytes());
        prop_assert!(refused.is_err(), "body {:?}", body);
        prop_assert_eq!(refused.err().unwrap().to_string(), "The form has a repeated field.");
    }

    #[test]
    fn unknown_fields_are_ignored_wherever_and_however_often_they_are(
        unknown in proptest::collection::vec((field_text(6), field_text(6)), 0..6),
        (email, password) in (field_text(6), field_text(6)),
        email_at in any::<proptest::sample::Index>(),
        password_at in any::<proptest::sample::Index>(),
    ) {
        let mut fields: Vec<(String, String)> =
            unknown.into_iter().filter(|(name, _)| !KNOWN.contains(&name.as_str())).collect();
        fields.insert(email_at.index(fields.len() + 1), ("email".into(), email.clone()));
        fields.insert(password_at.index(fields.len() + 1), ("password".into(), password.clone()));
        let body = serde_urlencoded::to_string(&fields).unwrap();
        let decoded = decode::<KnownFields>(body.as_bytes());
        prop_assert_eq!(decoded.ok(), Some(KnownFields { email, password }), "body {:?}", body);
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are(
        fields in proptest::collection::vec((field_text(6), field_text(6)), 1..4),
        which in any::<proptest::sample::Index>(),
        in_name in any::<bool>(),
        control in any::<char>().prop_filter("forbidden", |c| !is_allowed_form_char(*c)),
    ) {
        let mut fields = fields;
        let at = which.index(fields.len());
        let field = &mut fields[at];
        if in_name { field.0.push(control) } else { field.1.insert(0, control) }
        let body = serde_urlencoded::to_string(&fields).unwrap();
        prop_assert!(decode_fields(body.as_bytes()).is_err(), "body {:?}", body);
    }

    #[test]
    fn invalid_utf8_is_refused_raw_or_percent_encoded(
        fields in proptest::collection::vec((field_text(6), field_text(6)), 1..4),
        at in any::<proptest::sample::Index>(),
        bad in prop_oneof![Just(vec![0xFFu8]), Just(vec![0xC3]), Just(vec![0xED, 0xA0, 0x80]), Just(vec![0x80])],
        encoded in any::<bool>(),
    ) {
        let body = serde_urlencoded::to_string(&fields).unwrap().into_bytes();
        let insert: Vec<u8> = if encoded {
            bad.iter().flat_map(|b| format!("%{b:02X}").into_bytes()).collect()
        } else {
            bad
        };
        // Somewhere inside a field, not as a field of its own after a `&`.
        let mut body = body;
        let mut position = at.index(body.len() + 1);
        while position > 0 && position < body.len() && body[position - 1] == b'%' {
            position -= 1;
        }
        body.splice(position..position, insert);
        prop_assert!(decode_fields(&body).is_err(), "body {:?}", String::from_utf8_lossy(&body));
    }
}

// ---------------------------------------------------------------------------
// Settings::from_flags

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn durations_round_trip_through_humantime(seconds in 0u64..400 * 24 * 3600, millis in 0u32..1000) {
        let duration = Duration::new(seconds, millis * 1_000_000);
        let written = humantime::format_duration(duration).to_string();
        let settings = Settings::from_flags([format!("--verify-token-ttl={written}"), format!("--mail-poll-interval={written}")]);
        let settings = settings.map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        prop_assert_eq!(settings.verify_token_ttl, duration);
        prop_assert_eq!(settings.mail_poll_interval, duration);
    }

    #[test]
    fn durations_in_the_readme_units_parse(n in 0u64..100_000, unit in proptest::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)])) {
        let settings = Settings::from_flags([format!("--session-idle-ttl={n}{}", unit.0)]).unwrap();
        prop_assert_eq!(settings.session_idle_ttl, Duration::from_secs(n * unit.1));
    }

    #[test]
    fn arbitrary_flag_values_give_settings_or_an_error_naming_the_flag(
        flag in proptest::sample::select(vec![
            "verify-token-ttl", "session-absolute-ttl", "password-min-length", "site-name", "mail-from",
            "throttle", "require-email-verification", "hash-queue", "public-url", "mail-max-attempts",
        ]),
        value in prop_oneof![text_from("0123456789smhdw .-+:/@<>", 16), any::<String>()],
    ) {
        match Settings::from_flags([format!("--{flag}={value}")]) {
            Ok(settings) => {
                let name = &settings.site_name;
                prop_assert!(!name.is_empty() && name.chars().count() <= 80 && name.trim() == name);
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!((8..=64).contains(&settings.password_min_length));
            }
            Err(error) => prop_assert!(error.to_string().contains(&format!("--{flag}")), "{}", error),
        }
    }

    #[test]
    fn password_min_length_is_8_to_64(n in 0u32..200) {
        let result = Settings::from_flags([format!("--password-min-length={n}")]);
        prop_assert_eq!(result.map(|s| u32::from(s.password_min_length)).ok(), (8..=64).contains(&n).then_some(n));
    }

    #[test]
    fn boolean_settings_take_the_usual_words(
        word in proptest::sample::select(vec![("true", true), ("false", false), ("yes", true), ("no", false),
            ("on", true), ("off", false), ("1", true), ("0", false)]),
    ) {
        let settings = Settings::from_flags([format!("--throttle={}", word.0), format!("--require-admin-approval={}", word.0)]).unwrap();
        prop_assert_eq!(settings.throttle, word.1);
        prop_assert_eq!(settings.require_admin_approval, word.1);
    }
}

// ---------------------------------------------------------------------------
// DatabaseUrl

/// Everything in a URL's user information that must be percent-encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn redacted_postgres_urls_never_contain_the_password(
        scheme in proptest::sample::select(vec!["postgres", "postgresql"]),
        user in "[a-z][a-z0-9_]{0,8}",
        // Upper case first, so the password cannot match the lower-case rest by chance.
        password in "[A-Z][A-Za-z0-9 !$&'()*+,;=:@/?#%\\[\\]é]{5,16}",
        host in prop_oneof!["[a-z][a-z0-9.-]{0,12}", Just("[::1]".to_owned()), Just("127.0.0.1".to_owned())],
        port in proptest::option::of(1u16..),
        database in "[a-z0-9_]{0,8}",
        password_in_query in any::<bool>(),
        extra_query in "(sslmode=require|connect_timeout=5|application_name=[a-z]{1,5})?",
        fragment in proptest::option::of("[a-z]{0,5}"),
    ) {
        let encoded = utf8_percent_encode(&password, USERINFO).to_string();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let authority = if password_in_query { format!("{user}@{host}{port}") } else { format!("{user}:{encoded}@{host}{port}") };
        let mut query: Vec<String> = Vec::new();
        if password_in_query {
            query.push(format!("password={encoded}"));
        }
        if !extra_query.is_empty() {
            query.push(extra_query);
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        let raw = format!("{scheme}://{authority}/{database}{query}{fragment}");

        let url = DatabaseUrl::parse(&raw);
        prop_assert!(url.is_postgres());
        let redacted = url.redacted();
        prop_assert_eq!(format!("{url:?}"), redacted.clone());
        let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8_lossy().into_owned();
        for secret in [&password, &encoded, &decoded, &utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string()] {
            prop_assert!(!redacted.contains(secret.as_str()), "{:?} redacted to {:?}", raw, redacted);
        }
        let prefix = format!("{scheme}://");
        prop_assert!(redacted.starts_with(&prefix) || redacted == "postgres://(unparsable)");
    }

    /// Whatever the URL parser makes of a string, no password survives in
    /// the redacted form: parsed again it has none but `***`, and the one it
    /// had is not in the text (unless the text has it anyway, as a short
    /// password like `@` or one that equals the user name would be).
    #[test]
    fn redacted_arbitrary_postgres_urls_never_contain_the_parsed_password(
        scheme in proptest::sample::select(vec!["postgres://", "postgresql://"]),
        rest in prop_oneof![text_from("abAB01:@/?#&=%[]., ", 40), any::<String>()],
    ) {
        let raw = format!("{scheme}{rest}");
        let redacted = DatabaseUrl::parse(&raw).redacted();
        if let Ok(again) = url::Url::parse(&redacted) {
            prop_assert!(matches!(again.password(), None | Some("***")), "{:?} redacted to {:?}", raw, redacted);
            prop_assert_eq!(again.query(), None, "{:?} redacted to {:?}", raw, redacted);
        }
        if let Ok(parsed) = url::Url::parse(&raw)
            && let Some(password) = parsed.password().filter(|p| !p.is_empty())
        {
            let mut without = parsed.clone();
            let _ = without.set_password(Some("***"));
            let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned();
            for secret in [password, decoded.as_str()] {
                if !without.as_str().contains(secret) {
                    prop_assert!(!redacted.contains(secret), "{:?} redacted to {:?}", raw, redacted);
                }
            }
        }
    }

    #[test]
    fn anything_else_is_a_sqlite_path_with_the_prefix_stripped(raw in any::<String>()) {
        prop_assume!(!raw.starts_with("postgres://") && !raw.starts_with("postgresql://"));
        let url = DatabaseUrl::parse(&raw);
        prop_assert!(!url.is_postgres());
        let path = raw.strip_prefix("sqlite://").unwrap_or(&raw);
        prop_assert_eq!(url.redacted(), format!("sqlite:{path}"));
    }
}
