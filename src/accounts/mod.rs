//! Account transitions: the one place that says what happens when a
//! password is set, an address is verified, or an administrator approves,
//! rejects, disables or enables an account. Routes and commands parse their
//! input, call one of these inside their write transaction, and render the
//! outcome; they never re-state a rule.
//!
//! | what happens when …                          | where             |
//! | -------------------------------------------- | ----------------- |
//! | a password is set (change, reset, sign-up)   | `password.rs`     |
//! | an address is verified                       | `verification.rs` |
//! | an administrator acts on an account          | `admin.rs`        |
//! | an administrator is created from the CLI     | `admin.rs`        |
//! | a person ends their own sessions             | `sessions.rs`     |
//! | a person changes their address (or undoes it) | `email_change.rs` |
//! | an account is deleted (by its owner or admin) | `deletion.rs`     |
//! | a second factor is turned on, used or off    | `two_factor.rs`   |
//! | an administrator creates or fills a group    | `groups.rs`       |
//! | an address is invited, or an invitation used | `invitations.rs`  |

mod admin;
mod deletion;
mod email_change;
mod groups;
mod invitations;
mod password;
mod sessions;
mod two_factor;
mod verification;

pub use admin::{AdminAction, CreateAdminRefusal, Refusal, act_on_account, create_admin};
pub use deletion::{DeletedBy, delete_account};
pub use email_change::{
    EmailChangeRefusal, cancel_email_change, confirm_email_change, request_email_change, revert_email_change,
};
pub use groups::{GroupRefusal, add_to_group, create_group, remove_from_group};
pub use invitations::{
    AcceptRefusal, InviteRefusal, accept_invitation, check_invitation, invite, resend_invitation, revoke_invitation,
};
pub use password::{PasswordSet, set_password};
pub use sessions::{EndSessions, end_sessions};
pub use two_factor::{
    CodeRefusal, Enabled, Proof, ResealReport, ResetBy, SecondFactorState, confirm_enrolment,
    end_code_step_out_of_attempts, prove_for_sign_in, renew_recovery_codes, reseal_secrets, reset as reset_two_factor,
    start_enrolment, state_of as second_factor_state, turn_off,
};
pub use verification::verify_email;

use crate::config::Config;
use crate::domain::describe_browser;
use crate::mail::messages::EventFacts;

/// Who causes a transition, from where and when, and the settings the mail
/// it queues needs.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub config: &'a Config,
    /// The client's address as recorded in audit events (`"command line"`
    /// for the CLI).
    pub ip: &'a str,
    /// The client's `User-Agent`, for notices that say which browser acted.
    pub user_agent: &'a str,
    /// Unix seconds (UTC).
    pub now: i64,
}

impl Context<'_> {
    /// When, from where and in which browser: what a notice tells.
    pub fn facts(&self) -> EventFacts {
        EventFacts { at: self.now, ip: self.ip.to_owned(), browser: describe_browser(self.user_agent) }
    }
}
