//! Values that have been checked: forms become these before they touch the database.

mod account;
mod email;
mod password;
mod token;
mod user_agent;

pub use account::{AccountState, Approval, SignInBlock};
pub use email::EmailAddress;
pub use password::{PasswordPolicy, PasswordProblem, PasswordProblems, normalize_password};
pub use token::{CodeHasher, PlainToken, TokenHash, VerificationCode, random_secret};
pub use user_agent::describe_browser;
