//! What happens when an address is verified.

use diesel::QueryResult;

use super::{Context, PasswordSet, set_password};
use crate::db::audit::{self, Event, EventKind};
use crate::db::email_tokens::{self, Claimed, Purpose};
use crate::db::users::User;
use crate::db::{DbConnection, sessions};

/// Verifies the address a claimed link or code was sent to: sets the
/// password of the sign-up the secret answered (if it carried one), marks
/// the address verified, voids every other link and code sent for it, and
/// ends every session, so whoever registered the address before its owner
/// proved it keeps no way in. Must run inside the write transaction that
/// claimed the secret, after `User::lock`. Returns the verified address
/// (`None` if the account is gone).
pub fn verify_email(conn: &mut DbConnection, claimed: &Claimed, ctx: Context) -> QueryResult<Option<String>> {
    let Some(user) = User::find(conn, claimed.user_id)? else { return Ok(None) };
    match &claimed.password_hash {
        // Setting the sign-up's password ends every session already.
        Some(password_hash) => drop(set_password(conn, &user, password_hash, PasswordSet::SignUp, ctx)?),
        None => drop(sessions::delete_all_for_user(conn, user.id)?),
    }
    User::mark_verified(conn, user.id, ctx.now)?;
    email_tokens::void_all(conn, user.id, &[Purpose::VerifyLink, Purpose::VerifyCode], ctx.now)?;
    audit::record(conn, Event::own(EventKind::EmailVerified, user.id, ctx.ip), ctx.now)?;
    Ok(Some(user.email))
}
