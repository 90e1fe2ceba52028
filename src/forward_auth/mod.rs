//! Forward authentication: a reverse proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`) asks Usher about each request to
//! an app it guards. The request is brought to a plain form (`target`),
//! the rules file picks a policy (`rules`), and the forward-auth cookie's
//! session says who asks (`auth::forward_auth_account`); the routes in
//! `routes::forward_auth` turn that into the answer each proxy expects.

mod rules;
mod target;

pub use rules::{AccessRules, HostPattern, Policy, Rule, RuleVerdict};
pub use target::{OriginalRequest, PathProblem, TargetProblem, normalise_host, normalise_path, within_domain};

use crate::domain::{ADMINS, SignInBlock};

/// Who a request to a guarded app comes from, as the identity headers say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The account's id: stable for the account's life, never reused.
    pub user_id: i64,
    pub email: String,
    /// Sorted group names, `admins` included for administrators.
    pub groups: Vec<String>,
}

/// What Usher answers about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; with the identity of whoever is signed in, if the policy needed one.
    Allow(Option<Identity>),
    /// No one (who may sign in) is signed in: send them to sign in.
    SignIn,
    /// Signed in but not allowed.
    Deny(Denial),
}

/// Why a request was denied, in words for the person who sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No rule covers this host and path.
    NoRule,
    /// The rule needs a group this account is not in.
    NotInGroups(Vec<String>),
    /// The operator requires two-step sign-in and this account has not set it up.
    TwoFactorFirst,
    /// Signed in, but the account is not verified and approved (which
    /// Usher's own pages may not require): a guarded app gets only
    /// accounts whose address is proven and that an administrator let in.
    NotReady(SignInBlock),
    /// The proxy's description of the request cannot be judged (an
    /// ambiguous path, a missing header): refused rather than guessed.
    Unjudgeable(String),
}

impl Identity {
    /// The identity of an account with `member_of` (its groups' names) and
    /// the administrator flag, which stands for the read-only `admins` group.
    pub fn new(user_id: i64, email: String, is_admin: bool, member_of: Vec<String>) -> Self {
        // `admins` is the flag's alone, whatever a stored group is called.
        let mut groups: Vec<String> = member_of.into_iter().filter(|group| group != ADMINS).collect();
        if is_admin {
            groups.push(ADMINS.to_owned());
        }
        groups.sort();
        groups.dedup();
        Self { user_id, email, groups }
    }
}

/// Whether a signed-in account may use guarded apps yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Ready,
    /// It owes the two-step sign-in the operator requires.
    TwoFactorDue,
    /// Not verified, not approved, or disabled.
    Blocked(SignInBlock),
}

/// The verdict for a request that `policy` governs, given who is signed in
/// (`None`: no one) and how their account stands.
pub fn judge(policy: &Policy, signed_in: Option<(Identity, Standing)>) -> Verdict {
    let Some((identity, standing)) = signed_in else { return Verdict::SignIn };
    match standing {
        Standing::Ready => {}
        Standing::TwoFactorDue => return Verdict::Deny(Denial::TwoFactorFirst),
        Standing::Blocked(block) => return Verdict::Deny(Denial::NotReady(block)),
    }
    match policy {
        Policy::Bypass | Policy::SignedIn => Verdict::Allow(Some(identity)),
        Policy::Groups(wanted) => {
            if wanted.iter().any(|group| identity.groups.iter().any(|held| held == group.as_str())) {
                Verdict::Allow(Some(identity))
            } else {
                Verdict::Deny(Denial::NotInGroups(wanted.iter().map(ToString::to_string).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupName;

    #[test]
    fn groups_policies_need_one_of_the_groups_and_admins_mirror_the_flag() {
        let staff = Policy::Groups(vec![GroupName::parse("staff").unwrap()]);
        let admins = Policy::Groups(vec![GroupName::parse("admins").unwrap()]);
        let ann = Identity::new(7, "ann@example.com".into(), false, vec!["staff".into()]);
        let bob = Identity::new(8, "bob@example.com".into(), true, vec!["zeta".into(), "ops".into()]);
        assert_eq!(bob.groups, ["admins", "ops", "zeta"]);
        let stored_admins = Identity::new(9, "cy@example.com".into(), false, vec!["admins".into()]);
        assert!(stored_admins.groups.is_empty(), "only the flag makes an administrator");
        let ready = |identity: &Identity| Some((identity.clone(), Standing::Ready));
        assert_eq!(judge(&staff, ready(&ann)), Verdict::Allow(Some(ann.clone())));
        assert_eq!(judge(&staff, ready(&bob)), Verdict::Deny(Denial::NotInGroups(vec!["staff".into()])));
        assert_eq!(judge(&admins, ready(&bob)), Verdict::Allow(Some(bob)));
        assert_eq!(judge(&admins, ready(&ann)), Verdict::Deny(Denial::NotInGroups(vec!["admins".into()])));
        assert_eq!(judge(&Policy::SignedIn, None), Verdict::SignIn);
        let due = Some((ann.clone(), Standing::TwoFactorDue));
        assert_eq!(judge(&Policy::SignedIn, due), Verdict::Deny(Denial::TwoFactorFirst));
        let unverified = Some((ann, Standing::Blocked(SignInBlock::EmailUnverified)));
        assert_eq!(judge(&Policy::SignedIn, unverified), Verdict::Deny(Denial::NotReady(SignInBlock::EmailUnverified)));
    }
}
