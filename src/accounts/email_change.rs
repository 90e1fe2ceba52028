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
use crate::db::{DbConnection, sessions};
use crate::domain::{EmailAddress, TokenHash, describe_browser};
use crate::mail::MailKind;
use crate::mail::messages::{EventFacts, queue_about_email_change};

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

/// Completes the change a confirmation link names: the account takes the
/// new (now proven) address, every link and code sent to the old one
/// stops working, and the old address gets an undo link. Sessions go on.
/// Must run in a write transaction. Returns the new address.
pub fn confirm_email_change(
    conn: &mut DbConnection,
    link: &TokenHash,
    ctx: Context,
) -> QueryResult<Result<String, EmailChangeRefusal>> {
    let Some(change) = email_changes::claim_confirm(conn, link, ctx.now)? else {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    };
    if !User::lock(conn, change.user_id)? {
        return Ok(Err(EmailChangeRefusal::InvalidLink));
    }
    if !User::set_email(conn, change.user_id, &change.new_email, ctx.now)? {
        email_changes::set_state(conn, change.id, CANCELLED)?;
        return Ok(Err(EmailChangeRefusal::Taken(change.new_email)));
    }
    email_tokens::void_all(conn, change.user_id, &SECRETS_OF_AN_ADDRESS, ctx.now)?;
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

fn facts(ctx: Context) -> EventFacts {
    EventFacts { at: ctx.now, ip: ctx.ip.to_owned(), browser: describe_browser(ctx.user_agent) }
}

fn record(conn: &mut DbConnection, kind: EventKind, change: &EmailChange, ctx: Context) -> QueryResult<()> {
    let detail = format!("from {} to {}", change.old_email, change.new_email);
    let event = Event { detail: &detail, ..Event::own(kind, change.user_id, ctx.ip) };
    audit::record(conn, event, ctx.now)
}
