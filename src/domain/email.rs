//! Email addresses as Usher stores and compares them.
//!
//! The domain is kept in its IDNA ASCII form (UTS #46 `ToASCII`,
//! non-transitional, as browsers apply it; the labels RFC 5891 calls
//! A-labels), so `anna@bücher.example` and `anna@xn--bcher-kva.example` are
//! one account, one throttle key and one SMTP envelope that any relay takes,
//! with or without SMTPUTF8.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// The longest address SMTP can carry (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;

/// Typed input longer than this is refused before any IDNA work. A Unicode
/// domain can take more UTF-8 bytes than its ASCII form (three per CJK
/// character against about two), so the real limit is checked on the
/// ASCII form.
const MAX_TYPED_BYTES: usize = 4 * MAX_EMAIL_LENGTH;

/// An email address in its normalised form: trimmed, the local part lower
/// case, the domain in its IDNA ASCII form (lower case, `xn--` labels for
/// non-ASCII ones). Two spellings of one mailbox normalise to the same
/// value, so uniqueness is case-insensitive and IDN-insensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

/// Why [`EmailAddress::parse`] refused a typed address; the message is
/// meant for the person who typed it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("Enter your email address.")]
    Missing,
    #[error("That email address is too long.")]
    TooLong,
    #[error("That does not look like an email address.")]
    Malformed,
    /// The domain has non-ASCII letters or `xn--` labels but is not a valid
    /// internationalised domain name (UTS #46 with the RFC 5891 rules).
    #[error(
        "The part after the @ is not a domain name that can receive mail. Check it for a typing mistake \
         (domain names hold letters, digits, hyphens and dots)."
    )]
    BadDomain,
}

impl EmailAddress {
    /// Parses a typed address into its normalised form.
    ///
    /// The local part keeps the rules Usher always had: it is lower-cased
    /// and must be a dot-atom of at most 64 bytes (RFC 5322 and RFC 6531:
    /// letters, including non-ASCII ones, digits and ``!#$%&'*+-/=?^_`{|}~``,
    /// dots only between them); quoted local parts and address literals
    /// (`a@[1.2.3.4]`) are refused.
    ///
    /// The domain needs at least one dot. An all-ASCII domain without
    /// `xn--` labels is only lower-cased. Any other domain goes through
    /// UTS #46 `ToASCII` with non-transitional processing (`ß` stays `ß`),
    /// the STD3 ASCII rules, hyphen checks and DNS length checks (labels
    /// of at most 63 bytes), which together match RFC 5891's rules for
    /// labels; it is stored as ASCII, so the same mailbox typed either
    /// way gives the same address, and `parse` of a stored address gives
    /// it back unchanged.
    ///
    /// # Errors
    /// [`EmailProblem::Missing`] for blank input, [`EmailProblem::TooLong`]
    /// when the normalised address exceeds [`MAX_EMAIL_LENGTH`] bytes,
    /// [`EmailProblem::BadDomain`] for an invalid internationalised domain,
    /// [`EmailProblem::Malformed`] for anything else that is not an address.
    pub fn parse(raw: &str) -> Result<Self, EmailProblem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailProblem::Missing);
        }
        if trimmed.len() > MAX_TYPED_BYTES {
            return Err(EmailProblem::TooLong);
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            // Still "too long" rather than "malformed" for a long string, as before.
            return Err(if trimmed.to_lowercase().len() > MAX_EMAIL_LENGTH {
                EmailProblem::TooLong
            } else {
                EmailProblem::Malformed
            });
        };
        let domain = ascii_domain(domain)?;
        // Checked after lower-casing, which can make a string longer (`Ⱥ` → `ⱥ`),
        // and after IDNA, whose ASCII form is what SMTP carries.
        let normalised = format!("{}@{domain}", local.to_lowercase());
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(EmailProblem::TooLong);
        }
        if is_idn(&domain) && !idna::uts46::verify_dns_length(&domain, false) {
            return Err(EmailProblem::BadDomain);
        }
        let (local, domain) = normalised.rsplit_once('@').ok_or(EmailProblem::Malformed)?;
        let plausible = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !normalised.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '[' | ']'))
            && email_address::EmailAddress::is_valid(&normalised)
            // What the mailer cannot send to would leave an account nobody can verify.
            && normalised.parse::<lettre::Address>().is_ok();
        if !plausible {
            return Err(EmailProblem::Malformed);
        }
        Ok(Self(normalised))
    }

    /// The normalised address, its domain in ASCII: what is stored,
    /// compared, used as a throttle key and put in the SMTP envelope.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, which a guessable password often repeats.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }

    /// The domain in its ASCII form, e.g. `xn--bcher-kva.example`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// The address with its domain in Unicode (UTS #46 `ToUnicode`), for
    /// people to read: `anna@bücher.example`. The same as [`Self::as_str`]
    /// for an ASCII domain. Never for comparing or sending.
    pub fn to_unicode(&self) -> String {
        Self::unicode_form(&self.0).unwrap_or_else(|| self.0.clone())
    }

    /// The Unicode form of an address as stored (see [`Self::to_unicode`]),
    /// or `None` when it reads the same as stored or its `xn--` labels do
    /// not decode. For pages that show both forms, so that a look-alike
    /// domain (`аpple.example` in Cyrillic is `xn--pple-43d.example`)
    /// stands out.
    pub fn unicode_form(stored: &str) -> Option<String> {
        let (local, domain) = stored.rsplit_once('@')?;
        if !is_idn(domain) {
            return None;
        }
        let (unicode, decoded) = Uts46::new().to_unicode(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::Check);
        (decoded.is_ok() && unicode != domain).then(|| format!("{local}@{unicode}"))
    }

    /// What an administrator typed to find addresses starting with it,
    /// brought to the stored form: lower case, and the domain labels after
    /// an `@` in ASCII, so `anna@bücher` finds `anna@xn--bcher-kva.example`.
    /// A label is converted as a whole, so a Unicode label cut short finds
    /// nothing; text that is no valid domain stays as typed.
    pub fn search_prefix(typed: &str) -> String {
        let typed = typed.trim();
        let Some((local, domain)) = typed.rsplit_once('@') else {
            return typed.to_lowercase();
        };
        let domain = match domain.strip_suffix('.') {
            // A trailing dot is where the next label will go; keep it.
            Some(labels) => ascii_domain(labels).map(|ascii| format!("{ascii}.")),
            None => ascii_domain(domain),
        };
        match domain {
            Ok(domain) => format!("{}@{domain}", local.to_lowercase()),
            Err(_) => typed.to_lowercase(),
        }
    }

    /// A domain in its IDNA ASCII form, by the rules of [`Self::parse`]
    /// but without the need for a dot, for addresses Usher sends from
    /// (`no-reply@localhost` is a fine sender).
    ///
    /// # Errors
    /// [`EmailProblem::BadDomain`] for an invalid internationalised domain.
    pub fn domain_to_ascii(domain: &str) -> Result<String, EmailProblem> {
        let ascii = ascii_domain(domain)?;
        if is_idn(&ascii) && !idna::uts46::verify_dns_length(&ascii, false) {
            return Err(EmailProblem::BadDomain);
        }
        Ok(ascii)
    }
}

impl fmt::Display for EmailAddress {
    /// The stored form (ASCII domain); see [`EmailAddress::to_unicode`]
    /// for the form to show people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a domain has an IDNA label (`xn--…`, any case).
fn is_idn(domain: &str) -> bool {
    domain.split('.').any(|label| label.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("xn--")))
}

/// The domain in its ASCII form. An ASCII domain without `xn--` labels is
/// only lower-cased, so the addresses accepted before IDN support keep
/// working; any other goes through UTS #46 `ToASCII` (non-transitional,
/// STD3 rules, CheckHyphens). Lengths are checked by the caller, which
/// tells "too long" from "invalid".
fn ascii_domain(typed: &str) -> Result<String, EmailProblem> {
    if typed.is_ascii() && !is_idn(typed) {
        return Ok(typed.to_ascii_lowercase());
    }
    // UTS #46 does its own case mapping: lower-casing first would turn a
    // final `Σ` into `ς`, which UTS #46 maps to `σ`, a different domain.
    Uts46::new()
        .to_ascii(typed.as_bytes(), AsciiDenyList::STD3, Hyphens::Check, DnsLength::Ignore)
        .map(|ascii| ascii.into_owned())
        .map_err(|_| EmailProblem::BadDomain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = EmailAddress::parse("  Ann.Lee@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ann.lee@example.com");
        assert_eq!(email.local_part(), "ann.lee");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        let cases = [
            ("", EmailProblem::Missing),
            ("   ", EmailProblem::Missing),
            ("no-at-sign", EmailProblem::Malformed),
            ("@example.com", EmailProblem::Malformed),
            ("ann@localhost", EmailProblem::Malformed),
            ("ann lee@example.com", EmailProblem::Malformed),
            ("ann@example.com.", EmailProblem::Malformed),
            ("a@[1.2.3.4]", EmailProblem::Malformed),
            ("\"a\"@example.com", EmailProblem::Malformed),
        ];
        for (raw, expected) in cases {
            assert_eq!(EmailAddress::parse(raw), Err(expected), "input {raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(EmailProblem::TooLong));
        assert_eq!(EmailAddress::parse(&"a".repeat(300)), Err(EmailProblem::TooLong));
        assert_eq!(EmailAddress::parse(&"a".repeat(5000)), Err(EmailProblem::TooLong));
    }

    #[test]
    fn unicode_domains_are_stored_in_their_ascii_form() {
        let cases = [
            ("anna@bücher.example", "anna@xn--bcher-kva.example"),
            ("Anna@BÜCHER.Example", "anna@xn--bcher-kva.example"),
            // Fullwidth letters and the ideographic full stop map as in browsers.
            ("anna@ｂücher。example", "anna@xn--bcher-kva.example"),
            // Decomposed ü (u + combining diaeresis) is the same domain.
            ("anna@bu\u{308}cher.example", "anna@xn--bcher-kva.example"),
            ("anna@mail.bücher.example", "anna@mail.xn--bcher-kva.example"),
            ("user@例え.テスト", "user@xn--r8jz45g.xn--zckzah"),
        ];
        for (typed, stored) in cases {
            assert_eq!(EmailAddress::parse(typed).as_ref().map(EmailAddress::as_str), Ok(stored), "{typed}");
        }
    }

    #[test]
    fn unicode_and_punycode_forms_are_one_address() {
        let unicode = EmailAddress::parse("anna@bücher.example").unwrap();
        let ascii = EmailAddress::parse("ANNA@XN--BCHER-KVA.EXAMPLE").unwrap();
        assert_eq!(unicode, ascii);
        assert_eq!(ascii.domain(), "xn--bcher-kva.example");
        assert_eq!(ascii.to_unicode(), "anna@bücher.example");
        assert_eq!(EmailAddress::parse(ascii.as_str()), Ok(ascii));
    }

    #[test]
    fn processing_is_non_transitional() {
        // Transitional processing (IDNA2003) would map ß to ss and ς to σ.
        let sharp_s = EmailAddress::parse("max@straße.example").unwrap();
        assert_eq!(sharp_s.as_str(), "max@xn--strae-oqa.example");
        assert_ne!(sharp_s, EmailAddress::parse("max@strasse.example").unwrap());
        assert_eq!(sharp_s.to_unicode(), "max@straße.example");
        let parse = |typed: &str| EmailAddress::parse(typed).unwrap();
        assert_ne!(parse("a@ας.example"), parse("a@ασ.example"), "final sigma is its own letter");
        // UTS #46 maps a capital Σ to σ wherever it stands; lower-casing first would give ς.
        assert_eq!(parse("a@ΑΣ.example"), parse("a@ασ.example"));
    }

    #[test]
    fn invalid_internationalised_domains_are_refused_in_plain_words() {
        let refused = [
            "anna@bü_cher.example",        // not a letter, digit or hyphen
            "anna@bü!cher.example",        // nor is this
            "anna@-bücher.example",        // a leading hyphen
            "anna@bücher-.example",        // a trailing hyphen
            "anna@xn--zz.example",         // not punycode of anything
            "anna@xn--bcher-.example",     // punycode of an all-ASCII label
            "anna@bücher\u{200d}.example", // a joiner where none may stand
            "anna@1\u{5d0}.example",       // a right-to-left label must not start with a digit
            "anna@bücher＠evil.example",   // a fullwidth @ maps to a real one
        ];
        for typed in refused {
            assert_eq!(EmailAddress::parse(typed), Err(EmailProblem::BadDomain), "{typed}");
        }
        let accepted = [
            ("anna@xn--Bcher-KVA.example", "anna@xn--bcher-kva.example"),
            ("anna@\u{5d0}1.example", "anna@xn--1-zhc.example"),
            ("anna@xn--ls8h.example", "anna@xn--ls8h.example"),
        ];
        for (typed, stored) in accepted {
            assert_eq!(EmailAddress::parse(typed).as_ref().map(EmailAddress::as_str), Ok(stored), "{typed}");
        }
        let message = EmailProblem::BadDomain.to_string();
        assert!(message.contains("after the @") && !message.contains("IDNA"), "{message}");
    }

    #[test]
    fn a_label_longer_than_63_bytes_in_ascii_is_refused() {
        // 57 ü are 63 bytes as punycode (`xn--tdaa…`), 58 are 64.
        let typed = |copies| format!("anna@{}.example", "ü".repeat(copies));
        assert!(EmailAddress::parse(&typed(57)).is_ok());
        assert_eq!(EmailAddress::parse(&typed(58)), Err(EmailProblem::BadDomain));
    }

    #[test]
    fn the_length_limit_applies_to_the_ascii_form() {
        // 60 labels of "ü." are 180 bytes in UTF-8 but 60 × "xn--tda." = 480 in ASCII.
        let typed = format!("a@{}example", "ü.".repeat(60));
        assert_eq!(EmailAddress::parse(&typed), Err(EmailProblem::TooLong));
    }

    #[test]
    fn ascii_domains_keep_the_rules_they_had() {
        // An underscore is no IDNA letter, but plain ASCII domains are only lower-cased.
        assert_eq!(EmailAddress::parse("a@Mail_Host.example").unwrap().as_str(), "a@mail_host.example");
        assert_eq!(EmailAddress::parse("a@r3---sn.example").unwrap().as_str(), "a@r3---sn.example");
    }

    #[test]
    fn local_parts_keep_their_rules() {
        // Non-ASCII local parts were accepted before and still are (SMTPUTF8 mail).
        assert_eq!(EmailAddress::parse("Jörg@bücher.example").unwrap().as_str(), "jörg@xn--bcher-kva.example");
        assert_eq!(EmailAddress::parse("a.b+tag@example.com").unwrap().local_part(), "a.b+tag");
        assert_eq!(EmailAddress::parse("a..b@example.com"), Err(EmailProblem::Malformed));
        assert_eq!(EmailAddress::parse(".ab@example.com"), Err(EmailProblem::Malformed));
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert_eq!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))), Err(EmailProblem::Malformed));
        assert!(EmailAddress::parse("!#$%&'*+-/=?^_`{|}~@example.com").is_ok());
    }

    #[test]
    fn the_unicode_form_is_only_given_when_it_differs() {
        assert_eq!(EmailAddress::unicode_form("anna@xn--bcher-kva.example").as_deref(), Some("anna@bücher.example"));
        assert_eq!(
            EmailAddress::unicode_form("ceo@xn--pple-43d.example").as_deref(),
            Some("ceo@\u{430}pple.example"),
            "a Cyrillic а that reads like apple"
        );
        assert_eq!(EmailAddress::unicode_form("ann@example.com"), None);
        assert_eq!(EmailAddress::unicode_form("ann@xn--zz.example"), None, "undecodable");
        assert_eq!(EmailAddress::unicode_form("not an address"), None);
        let plain = EmailAddress::parse("ann@example.com").unwrap();
        assert_eq!(plain.to_unicode(), "ann@example.com");
    }

    #[test]
    fn sender_domains_need_no_dot() {
        assert_eq!(EmailAddress::domain_to_ascii("Bücher.example").as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(EmailAddress::domain_to_ascii("localhost").as_deref(), Ok("localhost"));
        assert_eq!(EmailAddress::domain_to_ascii("bü_cher"), Err(EmailProblem::BadDomain));
    }

    #[test]
    fn search_prefixes_are_brought_to_the_stored_form() {
        assert_eq!(EmailAddress::search_prefix(" Anna "), "anna");
        assert_eq!(EmailAddress::search_prefix("Anna@Bücher"), "anna@xn--bcher-kva");
        assert_eq!(EmailAddress::search_prefix("anna@bücher."), "anna@xn--bcher-kva.");
        assert_eq!(EmailAddress::search_prefix("anna@bücher.exa"), "anna@xn--bcher-kva.exa");
        assert_eq!(EmailAddress::search_prefix("anna@"), "anna@");
        assert_eq!(EmailAddress::search_prefix("anna@-bü"), "anna@-bü", "no domain: kept as typed");
    }
}
