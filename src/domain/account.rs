/// Where an account stands on approval by an administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    Pending,
    Approved,
    Rejected,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            _ => Self::Pending,
        }
    }
}

/// The facts about an account that decide whether it may sign in.
#[derive(Clone, Copy, Debug)]
pub struct AccountState {
    pub email_verified: bool,
    pub approval: Approval,
    pub disabled: bool,
}

/// Why an account with a correct password may not sign in (yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInBlock {
    Disabled,
    EmailUnverified,
    AwaitingApproval,
    Rejected,
}

impl SignInBlock {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Disabled => "account disabled",
            Self::EmailUnverified => "email not verified",
            Self::AwaitingApproval => "awaiting approval",
            Self::Rejected => "not approved",
        }
    }
}

impl AccountState {
    /// Every state the operator requires must hold; the first one missing
    /// is what the person is told about.
    pub fn sign_in_block(&self, require_verification: bool, require_approval: bool) -> Option<SignInBlock> {
        if self.disabled {
            Some(SignInBlock::Disabled)
        } else if require_verification && !self.email_verified {
            Some(SignInBlock::EmailUnverified)
        } else if require_approval && self.approval == Approval::Rejected {
            Some(SignInBlock::Rejected)
        } else if require_approval && self.approval == Approval::Pending {
            Some(SignInBlock::AwaitingApproval)
        } else {
            None
        }
    }

    pub fn describe(&self) -> &'static str {
        if self.disabled {
            "disabled"
        } else if !self.email_verified {
            "email not verified"
        } else {
            match self.approval {
                Approval::Pending => "email verified, awaiting approval",
                Approval::Rejected => "email verified, not approved",
                Approval::Approved => "active",
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(email_verified: bool, approval: Approval, disabled: bool) -> AccountState {
        AccountState { email_verified, approval, disabled }
    }

    #[test]
    fn sign_in_needs_every_required_state() {
        use Approval::*;
        let cases = [
            (state(true, Approved, false), true, true, None),
            (state(true, Approved, true), false, false, Some(SignInBlock::Disabled)),
            (state(false, Approved, false), true, false, Some(SignInBlock::EmailUnverified)),
            (state(false, Approved, false), false, false, None),
            (state(true, Pending, false), true, true, Some(SignInBlock::AwaitingApproval)),
            (state(true, Pending, false), true, false, None),
            (state(true, Rejected, false), true, true, Some(SignInBlock::Rejected)),
            (state(false, Pending, false), true, true, Some(SignInBlock::EmailUnverified)),
        ];
        for (account, verification, approval, expected) in cases {
            assert_eq!(account.sign_in_block(verification, approval), expected, "{account:?}");
        }
    }
}
