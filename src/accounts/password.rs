//! What happens when a password is set.

use diesel::QueryResult;

use super::Context;
use crate::db::audit::{self, Event, EventKind};
use crate::db::email_tokens::{self, Purpose};
use crate::db::users::User;
use crate::db::{DbConnection, sessions, throttle_hits, two_factor};
use crate::mail::MailKind;
use crate::mail::messages::queue_notice;
use crate::throttle::Bucket;

/// Why a password is being set: decides which sessions end, whether the
/// address counts as proven, and what is recorded and mailed.
#[derive(Clone, Copy, Debug)]
pub enum PasswordSet<'a> {
    /// The signed-in owner changed it; the session with this public id
    /// stays signed in, every other one ends.
    Change { keep_session: &'a str },
    /// A reset link proved the mailbox: the address counts as verified and
    /// every session ends.
    Reset,
    /// A verification answered the sign-up that chose this password (see
    /// `verify_email`); every session ends.
    SignUp,
}

/// Sets the account's password hash (Argon2id PHC string) and, in the same
/// transaction: voids every outstanding reset link and every verification
/// link or code that would set a password of its own, ends the sessions
/// the case calls for, forgets failed sign-ins against the address (ASVS
/// 2.2.1: the owner is back in), cancels a pending change of address,
/// records the audit event and queues the
/// "your password was changed" notice (ASVS 2.5.5). Must run inside a
/// write transaction that locked the account (`User::lock`). Returns how
/// many sessions ended.
pub fn set_password(
    conn: &mut DbConnection,
    user: &User,
    password_hash: &str,
    how: PasswordSet,
    ctx: Context,
) -> QueryResult<usize> {
    User::set_password(conn, user.id, password_hash, ctx.now)?;
    // A password typed before the change no longer leads to the code step.
    two_factor::close_challenges_for(conn, user.id)?;
    email_tokens::void_all(conn, user.id, &[Purpose::ResetLink], ctx.now)?;
    email_tokens::void_carrying_password(conn, user.id, ctx.now)?;
    let ended = match how {
        PasswordSet::Change { keep_session } => sessions::delete_others(conn, user.id, keep_session)?,
        PasswordSet::Reset | PasswordSet::SignUp => sessions::delete_all_for_user(conn, user.id)?,
    };
    throttle_hits::clear(conn, &Bucket::SignInAddress(user.email.clone()).key())?;
    // Whoever asked to move the account elsewhere may be who the new password locks out.
    super::email_change::cancel_pending(conn, user.id)?;
    let event = match how {
        PasswordSet::Change { .. } => EventKind::PasswordChanged,
        PasswordSet::Reset => {
            User::mark_verified(conn, user.id, ctx.now)?;
            email_tokens::void_all(conn, user.id, &[Purpose::VerifyLink, Purpose::VerifyCode], ctx.now)?;
            EventKind::PasswordReset
        }
        // The verification records itself; a first password is no change to announce.
        PasswordSet::SignUp => return Ok(ended),
    };
    let facts = ctx.facts();
    queue_notice(conn, MailKind::PasswordChanged, &user.email, user.id, &facts, ctx.config)?;
    audit::record(conn, Event::own(event, user.id, ctx.ip), ctx.now)?;
    Ok(ended)
}
