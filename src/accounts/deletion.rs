//! Deleting an account, by its owner or by an administrator. What stays is
//! a tombstone: the user row keeps its id, so the audit log's events keep
//! their meaning, while the address and password go. Sessions, links,
//! changes of address, group memberships, invitations of the address and
//! mail still to be sent go too;
//! the addresses the account's events and sent mail name are scrubbed. A
//! goodbye notice is queued without an account, and its recipient is wiped
//! once it is sent or given up on. The address can be registered again at
//! once.

use diesel::QueryResult;

use super::Context;
use super::admin::{Refusal, is_last_admin, lock_account};
use crate::db::audit::{self, Event, EventKind};
use crate::db::users::{SCRUBBED_ADDRESS, User};
use crate::db::{
    DbConnection, email_changes, email_tokens, groups, invitations, outbox, sessions, throttle_hits, two_factor,
};
use crate::mail::MailKind;
use crate::mail::messages::queue_without_account;
use crate::throttle::Bucket;

/// Who deletes the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletedBy<'a> {
    /// Its owner, from their account page, after typing their password
    /// again, and the account's address (`typed`, normalised).
    Owner { typed: &'a str },
    /// The administrator with this id, from the admin pages.
    Admin(i64),
}

/// Deletes the account `user_id` in the caller's write transaction (see the
/// module's comment for what that means). Returns the address it had.
///
/// # Errors
/// `Refusal::NoSuchUser` for an account that does not exist or is deleted
/// already, `Refusal::NotTheAddress` when its owner typed another address
/// (compared under the lock, so it is the address deleted),
/// `Refusal::LastAdmin` when it is the last enabled, approved administrator.
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
    if matches!(by, DeletedBy::Owner { typed } if typed != user.email) {
        return Ok(Err(Refusal::NotTheAddress));
    }
    if is_last_admin(conn, &user)? {
        return Ok(Err(Refusal::LastAdmin));
    }
    erase(conn, &user, by, ctx)?;
    Ok(Ok(user.email))
}

/// Turns `user` (locked, checked) into a tombstone and says goodbye.
pub(super) fn erase(conn: &mut DbConnection, user: &User, by: DeletedBy, ctx: Context) -> QueryResult<()> {
    sessions::delete_all_for_user(conn, user.id)?;
    two_factor::remove(conn, user.id)?;
    groups::remove_all_for_user(conn, user.id)?;
    email_tokens::delete_all_for_user(conn, user.id)?;
    invitations::delete_for(conn, &user.email, user.id)?;
    let mut addresses = email_changes::delete_all_for_user(conn, user.id)?;
    addresses.push(user.email.clone());
    // Longest first, so that no address is left half-scrubbed inside a
    // longer one that contains it (ann@… inside joann@…).
    addresses.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    addresses.dedup();
    outbox::forget_user(conn, user.id)?;
    audit::scrub_addresses(conn, user.id, &addresses, SCRUBBED_ADDRESS)?;
    forget_counted_attempts(conn, &addresses)?;
    User::make_tombstone(conn, user.id, ctx.now)?;
    let (actor, facts) = match by {
        DeletedBy::Owner { .. } => (user.id, Some(ctx.facts())),
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

/// Forgets the attempts counted against the account's addresses (mail
/// asked for, codes typed, failed sign-ins): they name the address, and
/// they would keep it from signing up again at once as a new account.
fn forget_counted_attempts(conn: &mut DbConnection, addresses: &[String]) -> QueryResult<()> {
    for address in addresses {
        let of_address =
            [Bucket::MailAddress, Bucket::CodeAddress, Bucket::SignInAddress].map(|bucket| bucket(address.clone()));
        for bucket in of_address {
            throttle_hits::clear(conn, &bucket.key())?;
        }
    }
    Ok(())
}
