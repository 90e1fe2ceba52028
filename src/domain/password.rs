use unicode_normalization::UnicodeNormalization;
use zxcvbn::{Score, zxcvbn};

/// Longest password accepted, in code points after NFKC normalisation.
pub const MAX_PASSWORD_LENGTH: usize = 128;

/// Passwords are compared in NFKC form, so the same password typed on two
/// keyboards (composed or decomposed accents, full-width digits) matches.
pub fn normalize_password(raw: &str) -> String {
    raw.nfkc().collect()
}

#[derive(Clone, Copy, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("Use at least {0} characters.")]
    TooShort(usize),
    #[error("Use at most {MAX_PASSWORD_LENGTH} characters.")]
    TooLong,
    #[error("The two passwords do not match.")]
    Mismatch,
    #[error("This password is too easy to guess: {0}")]
    Guessable(String),
}

/// What is wrong with a new password and its confirmation, each on the
/// field it is about, so a form can show both at once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PasswordProblems {
    /// Length or guessability: about the password field.
    pub password: Option<PasswordProblem>,
    /// [`PasswordProblem::Mismatch`]: about the confirmation field.
    pub confirmation: Option<PasswordProblem>,
}

impl PasswordPolicy {
    /// [`Self::check`], with the password's own problem and a mismatch
    /// reported separately rather than the first one only.
    ///
    /// # Errors
    /// Every problem found, each on its field.
    pub fn check_each(&self, password: &str, confirmation: &str, context: &[&str]) -> Result<String, PasswordProblems> {
        let own = self.check(password, password, context);
        let mismatch = normalize_password(password) != normalize_password(confirmation);
        match (own, mismatch) {
            (Ok(password), false) => Ok(password),
            (own, mismatch) => Err(PasswordProblems {
                password: own.err(),
                confirmation: mismatch.then_some(PasswordProblem::Mismatch),
            }),
        }
    }

    /// Checks a new password (length and guessability, no composition rules,
    /// as NIST SP 800-63B asks) and returns it normalised, ready to hash.
    pub fn check(&self, password: &str, confirmation: &str, context: &[&str]) -> Result<String, PasswordProblem> {
        let password = normalize_password(password);
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PasswordProblem::TooShort(self.min_length));
        }
        if length > MAX_PASSWORD_LENGTH {
            return Err(PasswordProblem::TooLong);
        }
        if password != normalize_password(confirmation) {
            return Err(PasswordProblem::Mismatch);
        }
        let mut inputs = vec!["usher"];
        inputs.extend_from_slice(context);
        let estimate = zxcvbn(&password, &inputs);
        if estimate.score() < Score::Three {
            let reason = estimate
                .feedback()
                .and_then(|feedback| feedback.warning())
                .map(|warning| warning.to_string())
                .unwrap_or_else(|| "add more words or characters that are hard to guess.".into());
            return Err(PasswordProblem::Guessable(reason));
        }
        Ok(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_length: 12 };

    #[test]
    fn a_short_password_and_a_mismatch_are_both_reported() {
        let problems = POLICY.check_each("short", "other", &[]).unwrap_err();
        assert_eq!(problems.password, Some(PasswordProblem::TooShort(12)));
        assert_eq!(problems.confirmation, Some(PasswordProblem::Mismatch));
        let only_mismatch = POLICY.check_each("correct horse battery staple", "correct horse", &[]).unwrap_err();
        assert_eq!(only_mismatch, PasswordProblems { password: None, confirmation: Some(PasswordProblem::Mismatch) });
    }

    #[test]
    fn a_long_unusual_password_is_accepted() {
        let ok = POLICY.check("correct horse battery staple", "correct horse battery staple", &[]);
        assert_eq!(ok.as_deref(), Ok("correct horse battery staple"));
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        // Eleven full-width letters normalise to eleven ASCII ones: too short.
        let full_width = "ｑｗｅｒｔｙｚｘｃｖｂ";
        assert_eq!(POLICY.check(full_width, full_width, &[]), Err(PasswordProblem::TooShort(12)));
        // Twelve two-byte characters are twelve characters, not twenty-four.
        let accents = "éàüöñçøåßðþæ";
        assert_ne!(POLICY.check(accents, accents, &[]), Err(PasswordProblem::TooShort(12)));
    }

    #[test]
    fn passwords_up_to_128_characters_are_accepted_whole() {
        let long: String = "correct horse battery staple ".repeat(5).chars().take(128).collect();
        assert_eq!(POLICY.check(&long, &long, &[]).map(|p| p.chars().count()), Ok(128));
    }

    #[test]
    fn over_long_passwords_are_refused() {
        let long = "x".repeat(129);
        assert_eq!(POLICY.check(&long, &long, &[]), Err(PasswordProblem::TooLong));
    }

    #[test]
    fn confirmation_must_match() {
        let result = POLICY.check("correct horse battery staple", "correct horse battery stapel", &[]);
        assert_eq!(result, Err(PasswordProblem::Mismatch));
    }

    #[test]
    fn common_and_personal_passwords_are_refused_with_a_reason() {
        for guessable in ["password1234", "qwertyuiopasdf", "annlee123456", "annleeannlee"] {
            let result = POLICY.check(guessable, guessable, &["annlee"]);
            assert!(matches!(result, Err(PasswordProblem::Guessable(_))), "{guessable}: {result:?}");
        }
    }
}
