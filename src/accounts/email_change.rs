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
use crate::db::{DbConnection, sessions, throttle_hits};
use crate::domain::{EmailAddress, TokenHash, describe_browser};
use crate::mail::MailKind;
use crate::mail::messages::{EventFacts, queue_about_email_change};
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
}

impl EmailChangeRefusal {
    /// The refusal in words for the person.
    pub fn describe(&self) -> String {
        match self {
            Self::Unchanged => "That is your address already.".to_owned(),
            Self::InvalidLink => "This link has been used, replaced by a newer one, or has expired.".to_owned(),
            Self::Taken(address) => format!("{address} belongs to another account, so it cannot become yours."),
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
    let facts = facts(ctx);
    queue_about_email_change(conn, MailKind::EmailChangeRequested, &user.email, user.id, id, Some(&facts), ctx.config)?;
    let detail = format!("to {}", new_email.as_str());
    let event = Event { detail: &detail, ..Event::own(EventKind::EmailChangeRequested, user.id, ctx.ip) };
    audit::record(conn, event, ctx.now)?;
    Ok(Ok(()))
}

/// Cancels the account's pending change of address; whether there was one.
pub fn cancel_email_change(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    Ok(email_changes::end_pending(conn, user_id, CANCELLED)? > 0)
}

/// The browser that used a link, if it is signed in: whose session, and
/// its public id.
#[derive(Clone, Copy, Debug)]
pub struct ThisSession<'a> {
    pub user_id: i64,
    pub public_id: &'a str,
}

/// Completes the change a confirmation link names: the account takes the
/// new (now proven) address, an unverified sign-up holding it is removed,
/// the account's other sessions end (this browser's goes on if it is the
/// account's), every link and code sent to the old address stops working,
/// counted sign-in and mail attempts follow to the new address, and the
/// old address gets an undo link. Must run in a write transaction; the
/// address's uniqueness is checked here, so of two accounts racing for one
/// address one wins and the other is refused. Returns the new address.
pub fn confirm_email_change(
    conn: &mut DbConnection,
    link: &TokenHash,
    this_session: Option<ThisSession>,
    ctx: Context,
) -> QueryResult<Result<String, EmailChangeRefusal>> {
    let Some(change) = email_changes::claim_confirm(conn, link, ctx.now)? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    if !User::lock(conn, change.user_id)? {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    }
    remove_unverified_holder(conn, &change)?;
    if !User::set_email(conn, change.user_id, &change.new_email, ctx.now)? {
        email_changes::set_state(conn, change.id, CANCELLED)?;
        return Ok(Err(EmailChangeRefusal::Taken(change.new_email)));
    }
    match this_session {
        Some(this) if this.user_id == change.user_id => sessions::delete_others(conn, change.user_id, this.public_id)?,
        _ => sessions::delete_all_for_user(conn, change.user_id)?,
    };
    email_tokens::void_all(conn, change.user_id, &SECRETS_OF_AN_ADDRESS, ctx.now)?;
    for bucket in [Bucket::SignInAddress, Bucket::MailAddress] {
        let (from, to) = (bucket(change.old_email.clone()).key(), bucket(change.new_email.clone()).key());
        throttle_hits::move_hits(conn, &from, &to)?;
    }
    let facts = facts(ctx);
    let kind = MailKind::EmailChanged;
    queue_about_email_change(conn, kind, &change.old_email, change.user_id, change.id, Some(&facts), ctx.config)?;
    record(conn, EventKind::EmailChanged, &change, ctx)?;
    Ok(Ok(change.new_email))
}

/// Undoes the change an undo link names: the account takes back the old
/// address, every session ends, every reset link and verification stops
/// working, and a pending change is cancelled. Must run in a write
/// transaction. Returns the restored address.
pub fn revert_email_change(
    conn: &mut DbConnection,
    link: &TokenHash,
    ctx: Context,
) -> QueryResult<Result<String, EmailChangeRefusal>> {
    let Some(change) = email_changes::claim_revert(conn, link, ctx.now)? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    if !User::lock(conn, change.user_id)? {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    }
    if !User::set_email(conn, change.user_id, &change.old_email, ctx.now)? {
        // The link stays good for when the address is free again.
        email_changes::set_state(conn, change.id, CONFIRMED)?;
        return Ok(Err(EmailChangeRefusal::Taken(change.old_email)));
    }
    sessions::delete_all_for_user(conn, change.user_id)?;
    email_tokens::void_all(conn, change.user_id, &SECRETS_OF_AN_ADDRESS, ctx.now)?;
    email_changes::end_pending(conn, change.user_id, CANCELLED)?;
    record(conn, EventKind::EmailChangeReverted, &change, ctx)?;
    Ok(Ok(change.old_email))
}

/// Removes an account that holds the change's new address without ever
/// having proven it: whoever registered it cannot keep its owner out.
fn remove_unverified_holder(conn: &mut DbConnection, change: &EmailChange) -> QueryResult<()> {
    let Some(holder) = User::find_by_email(conn, &change.new_email)? else { return Ok(()) };
    if holder.id != change.user_id && holder.email_verified_at.is_none() && User::lock(conn, holder.id)? {
        User::delete_unverified(conn, holder.id)?;
    }
    Ok(())
}

fn facts(ctx: Context) -> EventFacts {
    EventFacts { at: ctx.now, ip: ctx.ip.to_owned(), browser: describe_browser(ctx.user_agent) }
}

fn record(conn: &mut DbConnection, kind: EventKind, change: &EmailChange, ctx: Context) -> QueryResult<()> {
    let detail = format!("from {} to {}", change.old_email, change.new_email);
    let event = Event { detail: &detail, ..Event::own(kind, change.user_id, ctx.ip) };
    audit::record(conn, event, ctx.now)
}
