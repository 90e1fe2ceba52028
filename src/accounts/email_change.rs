//! What happens when a person changes their address: a request (nothing
//! changes until the new address is proven), its confirmation from a link
//! sent to the new address, and its undoing from a link sent to the old
//! one. The undo link is the old owner's way back after a takeover, so it
//! restores the address, ends every session and voids every reset link
//! rather than offering a reset (which would go to the new, possibly
//! hostile, address).

use diesel::QueryResult;

use super::Context;
use crate::db::audit::{self, Event, EventKind};
use crate::db::email_changes::{self, CANCELLED, CONFIRMED, EmailChange};
use crate::db::email_tokens::{self, Purpose};
use crate::db::users::User;
use crate::db::{DbConnection, sessions, throttle_hits, two_factor};
use crate::domain::{EmailAddress, TokenHash};
use crate::mail::MailKind;
use crate::mail::messages::{queue, queue_about_email_change};
use crate::throttle::Bucket;

/// Secrets sent to an address that stop working when the account's
/// address changes: they were sent for the other address.
const SECRETS_OF_AN_ADDRESS: [Purpose; 3] = [Purpose::ResetLink, Purpose::VerifyLink, Purpose::VerifyCode];

/// Why a change of address cannot go ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailChangeRefusal {
    /// The new address is the account's address already.
    Unchanged,
    /// The link is not (or no longer) valid: used, replaced, cancelled or expired.
    InvalidLink,
    /// Another account has the address now.
    Taken(String),
    /// The link was opened signed in as another account (or none).
    OtherAccount,
}

impl EmailChangeRefusal {
    /// The refusal in words for the person.
    pub fn describe(&self) -> String {
        match self {
            Self::Unchanged => "That is your address already.".to_owned(),
            Self::InvalidLink => "This link has been used, cancelled, replaced by a newer one, or has expired.".to_owned(),
            Self::Taken(address) => format!("{address} belongs to another account, so it cannot become yours."),
            Self::OtherAccount => {
                "This link is for another account. Sign in as the account that asked for the change, then open it again."
                    .to_owned()
            }
        }
    }
}

/// Requests a change of `user`'s address to `new_email`: records it
/// (voiding an older request), mails a confirmation link to the new
/// address and a notice to the current one, and records the event. Must
/// run in a write transaction after `User::lock`. Whether the new address
/// has an account is not checked here: that would tell the requester; the
/// confirmation refuses it instead.
pub fn request_email_change(
    conn: &mut DbConnection,
    user: &User,
    new_email: &EmailAddress,
    ctx: Context,
) -> QueryResult<Result<(), EmailChangeRefusal>> {
    if new_email.as_str() == user.email {
        return Ok(Err(EmailChangeRefusal::Unchanged));
    }
    let expires_at = ctx.now + ctx.config.settings.verify_token_ttl.as_secs() as i64;
    let id = email_changes::request(conn, user.id, &user.email, new_email.as_str(), expires_at, ctx.now)?;
    queue_about_email_change(conn, MailKind::EmailChangeConfirm, new_email.as_str(), user.id, id, None, ctx.config)?;
    let facts = ctx.facts();
    queue_about_email_change(conn, MailKind::EmailChangeRequested, &user.email, user.id, id, Some(&facts), ctx.config)?;
    let detail = format!("to {}", new_email.as_str());
    let event = Event { detail: &detail, ..Event::own(EventKind::EmailChangeRequested, user.id, ctx.ip) };
    audit::record(conn, event, ctx.now)?;
    Ok(Ok(()))
}

/// Cancels the account's pending change of address and records it;
/// whether there was one. Must run in a write transaction after
/// `User::lock`. Setting a password and disabling the account cancel it
/// too (`cancel_pending`): whoever asked may have been an intruder.
pub fn cancel_email_change(conn: &mut DbConnection, user_id: i64, ctx: Context) -> QueryResult<bool> {
    let cancelled = cancel_pending(conn, user_id)?;
    if cancelled {
        audit::record(conn, Event::own(EventKind::EmailChangeCancelled, user_id, ctx.ip), ctx.now)?;
    }
    Ok(cancelled)
}

/// Cancels the account's pending change of address, if any.
pub(super) fn cancel_pending(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    Ok(email_changes::end_pending(conn, user_id, CANCELLED)? > 0)
}

/// Completes the change a confirmation link names, for the signed-in
/// account `user_id` that asked for it (a link opened by anyone else, a
/// mistyped address's owner say, completes nothing): the account takes
/// the new (now proven) address, an unverified sign-up holding it is
/// removed, the account's sessions but `keep_session` (a public id) end,
/// every link and code sent to the old address stops working, counted
/// failed sign-ins follow to the new address, and the old address gets an
/// undo link. Must run in a write transaction; the address's uniqueness
/// is checked here, so of two accounts racing for one address one wins
/// and the other is refused. Returns the new address.
pub fn confirm_email_change(
    conn: &mut DbConnection,
    link: &TokenHash,
    user_id: i64,
    keep_session: &str,
    ctx: Context,
) -> QueryResult<Result<String, EmailChangeRefusal>> {
    // The account first, then the change: the order every transition locks in.
    let Some(peeked) = email_changes::peek_confirm(conn, link, ctx.now)? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    if peeked.user_id != user_id {
        return Ok(Err(EmailChangeRefusal::OtherAccount));
    }
    let Some(change) = lock_then(conn, user_id, |conn| email_changes::claim_confirm(conn, link, ctx.now))? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    let removed = remove_unverified_holder(conn, &change.new_email, user_id)?;
    if !User::set_email(conn, user_id, &change.new_email, ctx.now)? {
        email_changes::set_state(conn, change.id, CANCELLED)?;
        return Ok(Err(EmailChangeRefusal::Taken(change.new_email)));
    }
    sessions::delete_others(conn, user_id, keep_session)?;
    email_tokens::void_all(conn, user_id, &SECRETS_OF_AN_ADDRESS, ctx.now)?;
    move_sign_in_failures(conn, &change.old_email, &change.new_email)?;
    let facts = ctx.facts();
    queue_about_email_change(
        conn,
        MailKind::EmailChanged,
        &change.old_email,
        user_id,
        change.id,
        Some(&facts),
        ctx.config,
    )?;
    record(conn, EventKind::EmailChanged, &change, removed, ctx)?;
    Ok(Ok(change.new_email))
}

/// Undoes the change an undo link names, whatever the address is now (a
/// takeover may have changed it again): the account takes back the old
/// address (removing an unverified sign-up that took it meanwhile), undo
/// links of later changes stop working (so the undone taker cannot undo
/// the undo), a pending change is cancelled, every session ends, every
/// reset link and verification stops working, and a reset link goes to
/// the restored address, since whoever changed it may know the password.
/// Must run in a write transaction. Returns the restored address.
pub fn revert_email_change(
    conn: &mut DbConnection,
    link: &TokenHash,
    ctx: Context,
) -> QueryResult<Result<String, EmailChangeRefusal>> {
    let Some(peeked) = email_changes::peek_revert(conn, link, ctx.now)? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    let user_id = peeked.user_id;
    let Some(change) = lock_then(conn, user_id, |conn| email_changes::claim_revert(conn, link, ctx.now))? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    let Some(user) = User::find(conn, user_id)? else { return Ok(Err(EmailChangeRefusal::InvalidLink)) };
    let removed = remove_unverified_holder(conn, &change.old_email, user_id)?;
    if !User::set_email(conn, user_id, &change.old_email, ctx.now)? {
        // The link stays good for when the address is free again.
        email_changes::set_state(conn, change.id, CONFIRMED)?;
        return Ok(Err(EmailChangeRefusal::Taken(change.old_email)));
    }
    email_changes::close_later(conn, user_id, change.id)?;
    email_changes::end_pending(conn, user_id, CANCELLED)?;
    sessions::delete_all_for_user(conn, user_id)?;
    two_factor::close_challenges_for(conn, user_id)?;
    email_tokens::void_all(conn, user_id, &SECRETS_OF_AN_ADDRESS, ctx.now)?;
    move_sign_in_failures(conn, &user.email, &change.old_email)?;
    queue(conn, MailKind::PasswordReset, &change.old_email, Some(user_id), ctx.config)?;
    record(conn, EventKind::EmailChangeReverted, &change, removed, ctx)?;
    Ok(Ok(change.old_email))
}

/// Locks account `user_id`, then runs `claim`; `None` if the account is gone.
fn lock_then<T>(
    conn: &mut DbConnection,
    user_id: i64,
    claim: impl FnOnce(&mut DbConnection) -> QueryResult<Option<T>>,
) -> QueryResult<Option<T>> {
    if !User::lock(conn, user_id)? {
        return Ok(None);
    }
    claim(conn)
}

/// Removes an account other than `user_id` that holds `address` without
/// ever having proven it: whoever registered it cannot keep its owner out.
/// Whether one was removed.
fn remove_unverified_holder(conn: &mut DbConnection, address: &str, user_id: i64) -> QueryResult<bool> {
    let Some(holder) = User::find_by_email(conn, address)? else { return Ok(false) };
    if holder.id == user_id || holder.email_verified_at.is_some() || !User::lock(conn, holder.id)? {
        return Ok(false);
    }
    User::delete_unverified(conn, holder.id)
}

/// Failed sign-ins counted against `from` now count against `to`: a
/// change of address does not reset the lockout.
fn move_sign_in_failures(conn: &mut DbConnection, from: &str, to: &str) -> QueryResult<()> {
    let (from, to) = (Bucket::SignInAddress(from.to_owned()).key(), Bucket::SignInAddress(to.to_owned()).key());
    throttle_hits::move_hits(conn, &from, &to).map(drop)
}

fn record(
    conn: &mut DbConnection,
    kind: EventKind,
    change: &EmailChange,
    removed_unverified: bool,
    ctx: Context,
) -> QueryResult<()> {
    let mut detail = format!("from {} to {}", change.old_email, change.new_email);
    if removed_unverified {
        detail.push_str("; an unconfirmed sign-up holding the address was removed");
    }
    let event = Event { detail: &detail, ..Event::own(kind, change.user_id, ctx.ip) };
    audit::record(conn, event, ctx.now)
}
