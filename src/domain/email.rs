use std::fmt;

/// The longest address SMTP can carry (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;

/// An email address in its normalised form: trimmed and lower case, so that
/// uniqueness is case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("Enter your email address.")]
    Missing,
    #[error("That email address is too long.")]
    TooLong,
    #[error("That does not look like an email address.")]
    Malformed,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailProblem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailProblem::Missing);
        }
        // Checked after lower-casing, which can make a string longer (`Ⱥ` → `ⱥ`).
        let normalised = trimmed.to_lowercase();
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(EmailProblem::TooLong);
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

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, which a guessable password often repeats.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = EmailAddress::parse("  Ann.Lee@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ann.lee@example.com");
        assert_eq!(email.local_part(), "ann.lee");
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
    }
}
