//! Deleting an account, by its owner or by an administrator. What stays is
//! a tombstone: the user row keeps its id, so the audit log's events keep
//! their meaning, while the address and password go. Sessions, links,
//! changes of address and mail still to be sent go too; the addresses the
//! account's events and sent mail name are scrubbed. A goodbye notice is
//! queued without an account, and its recipient is wiped once it is sent
//! or given up on. The address can be registered again at once.

use diesel::QueryResult;

use super::Context;
use super::admin::{Refusal, is_last_admin, lock_account};
use crate::db::audit::{self, Event, EventKind};
use crate::db::users::User;
use crate::db::{DbConnection, email_changes, email_tokens, outbox, sessions};
use crate::mail::MailKind;
use crate::mail::messages::queue_without_account;

/// What stands for a deleted account's address in its events.
const SCRUBBED: &str = "(a deleted address)";

/// Who deletes the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletedBy {
    /// Its owner, from their account page, after typing their password again.
    Owner,
    /// The administrator with this id, from the admin pages.
    Admin(i64),
}

/// Deletes the account `user_id` in the caller's write transaction (see the
/// module's comment for what that means). Returns the address it had.
///
/// # Errors
/// `Refusal::NoSuchUser` for an account that does not exist or is deleted
/// already, `Refusal::LastAdmin` when it is the last enabled, approved
/// administrator.
pub fn delete_account(
    conn: &mut DbConnection,
    user_id: i64,
    by: DeletedBy,
    ctx: Context,
) -> QueryResult<Result<String, Refusal>> {
    let user = match lock_account(conn, user_id, true)? {
        Ok(user) => user,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if is_last_admin(conn, &user)? {
        return Ok(Err(Refusal::LastAdmin));
    }
    erase(conn, &user, by, ctx)?;
    Ok(Ok(user.email))
}

/// Turns `user` (locked, checked) into a tombstone and says goodbye.
pub(super) fn erase(conn: &mut DbConnection, user: &User, by: DeletedBy, ctx: Context) -> QueryResult<()> {
    sessions::delete_all_for_user(conn, user.id)?;
    email_tokens::delete_all_for_user(conn, user.id)?;
    let mut addresses = email_changes::delete_all_for_user(conn, user.id)?;
    addresses.push(user.email.clone());
    addresses.sort();
    addresses.dedup();
    outbox::forget_user(conn, user.id)?;
    audit::scrub_addresses(conn, user.id, &addresses, SCRUBBED)?;
    User::make_tombstone(conn, user.id, ctx.now)?;
    let (actor, facts) = match by {
        DeletedBy::Owner => (user.id, Some(ctx.facts())),
        DeletedBy::Admin(admin) => (admin, None),
    };
    let event = Event {
        kind: EventKind::AccountDeleted,
        user_id: Some(user.id),
        actor_id: Some(actor),
        ip: ctx.ip,
        detail: "",
    };
    audit::record(conn, event, ctx.now)?;
    queue_without_account(conn, MailKind::AccountDeleted, &user.email, facts.as_ref(), ctx.config).map(drop)
}
