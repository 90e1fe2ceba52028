//! Group names: they travel in URL paths, in the rules file and in the
//! comma-separated `Remote-Groups` header, so only `[a-z0-9_-]` is allowed.

use std::fmt;

/// The read-only group that mirrors the administrator flag.
pub const ADMINS: &str = "admins";

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;

/// A checked group name: 1 to `MAX_GROUP_NAME` characters of `a-z`, `0-9`,
/// `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

/// Why a group name was refused, in words for the person who typed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupNameProblem {
    #[error("Enter a group name.")]
    Empty,
    #[error("A group name is at most 64 characters.")]
    TooLong,
    #[error("A group name may hold only lowercase letters a to z, digits, '_' and '-'.")]
    BadCharacter,
}

impl GroupName {
    /// `name` as typed, trimmed; never lowercased for the person, so what
    /// they see is what is stored.
    pub fn parse(name: &str) -> Result<Self, GroupNameProblem> {
        let name = name.trim();
        if name.is_empty() {
            return Err(GroupNameProblem::Empty);
        }
        if name.len() > MAX_GROUP_NAME {
            return Err(GroupNameProblem::TooLong);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if !name.chars().all(allowed) {
            return Err(GroupNameProblem::BadCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `ADMINS`, which no one creates or joins by hand.
    pub fn is_admins(&self) -> bool {
        self.0 == ADMINS
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_travel_in_paths_and_headers() {
        for good in ["staff", "a", "wiki-editors", "team_2", " ops "] {
            assert!(GroupName::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(GroupName::parse(""), Err(GroupNameProblem::Empty));
        assert_eq!(GroupName::parse(&"a".repeat(65)), Err(GroupNameProblem::TooLong));
        for bad in ["Staff", "a,b", "a b", "a/b", "é", "a.b", "a%2F"] {
            assert_eq!(GroupName::parse(bad), Err(GroupNameProblem::BadCharacter), "{bad:?}");
        }
        assert!(GroupName::parse("admins").unwrap().is_admins());
    }
}
