//! Who someone is: password hashing, server-side sessions and guards.

mod encryption;
mod guards;
mod hasher;
pub mod prefetch;
mod session;
mod session_store;

pub use encryption::{KeyRing, OpenError};
pub use guards::{AdminUser, ReauthRequired, Reauthenticated, SignedInUser};
pub use hasher::{HashError, PasswordHasher, hash_now, verify_now};
pub use session::{SessionData, SessionStart};
pub use session_store::{DbSessionStore, SessionPolicy, forward_auth_account};
