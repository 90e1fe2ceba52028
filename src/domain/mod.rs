//! Values that have been checked: forms become these before they touch the database.

mod account;
mod email;
mod group;
mod password;
mod second_factor;
mod token;
mod user_agent;

pub use account::{AccountState, Approval, SignInBlock};
pub use email::EmailAddress;
pub use group::{ADMINS, GroupName, GroupNameProblem, MAX_GROUP_NAME};
pub use password::{PasswordPolicy, PasswordProblem, PasswordProblems, normalize_password};
pub use second_factor::{
    RECOVERY_CODES, STEP_SECS, SecondFactorCode, TotpSecret, hash_recovery_code, new_recovery_codes, qr_svg,
    recovery_code_hash,
};
pub use token::{CodeHasher, PlainToken, TokenHash, VerificationCode, random_secret};
pub use user_agent::describe_browser;
