//! Invitations: an administrator invites an address, withdraws or re-sends
//! the invitation, and the invited person accepts it from the emailed
//! link, which creates their account: verified (the link proves the
//! mailbox), approved (an administrator asked for it), in the groups the
//! invitation names. Each step records its event in the caller's write
//! transaction. The link's token is minted when the mail is composed
//! (`mail::messages`), so only its hash is ever stored.

use diesel::QueryResult;

use super::{Context, add_to_group};
use crate::db::DbConnection;
use crate::db::audit::{self, Event, EventKind};
use crate::db::groups;
use crate::db::invitations::{self, Invitation, InvitationState, NewInvitation};
use crate::db::users::{NewUser, User};
use crate::domain::{Approval, EmailAddress, GroupName, TokenHash};
use crate::mail::queue_invitation;

/// The events of an invitation, which become the account's once it is
/// accepted.
const INVITATION_EVENTS: [EventKind; 3] =
    [EventKind::InvitationSent, EventKind::InvitationResent, EventKind::InvitationRevoked];

/// Why an administrator's invitation, withdrawal or re-send was refused;
/// nothing changed and no mail was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InviteRefusal {
    /// The address has an account already (its id).
    #[error("{email} is already a user.")]
    AlreadyUser { email: String, user_id: i64 },
    /// The address has a pending invitation (its id): re-send that one.
    #[error("{email} has a pending invitation already. Send it again instead, with a new link.")]
    AlreadyInvited { email: String, invitation_id: i64 },
    /// `admins` mirrors the administrator flag: nobody is invited into it.
    #[error(
        "admins is the built-in group of administrators: nobody is invited into it. \
         Make someone an administrator with usher create-admin."
    )]
    BuiltInGroup,
    /// No group has that name (any more).
    #[error("There is no group named {0}.")]
    NoSuchGroup(String),
    /// No invitation has that id.
    #[error("There is no such invitation.")]
    NoSuchInvitation,
    /// The invitation is not pending (or, for a re-send, was accepted or
    /// withdrawn): its state.
    #[error("This invitation is {} already; nothing changed.", .0.as_str())]
    NotPending(InvitationState),
    /// `USHER_REGISTRATION=closed`: no invitation could be accepted.
    #[error("Sign-up is closed (USHER_REGISTRATION=closed), so nobody can accept an invitation.")]
    SignUpClosed,
}

/// Why an invitation's link created no account; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcceptRefusal {
    /// No invitation has this link: mistyped, or replaced by a re-send.
    #[error("This invitation link is not valid.")]
    Unknown,
    /// The link ran out.
    #[error("This invitation has expired.")]
    Expired,
    /// An administrator withdrew the invitation.
    #[error("This invitation was withdrawn.")]
    Revoked,
    /// The link was used already.
    #[error("This invitation was used already.")]
    Used,
    /// An account with the address was made meanwhile.
    #[error("There is already an account with this address.")]
    AccountExists,
    /// The administrator who invited is one no longer (demoted, disabled
    /// or deleted): what they asked for no longer stands.
    #[error(
        "The administrator who invited you can no longer do so. Ask the site's administrators for a new invitation."
    )]
    InviterGone,
    /// `USHER_REGISTRATION=closed`.
    #[error("This site does not take new accounts, not even by invitation.")]
    SignUpClosed,
}

/// What an invitation link leads to now, without using it: the invitation
/// if it can still be accepted, else why not.
///
/// # Errors
/// As [`accept_invitation`] would refuse it.
pub fn check_invitation(
    conn: &mut DbConnection,
    hash: &TokenHash,
    now: i64,
) -> QueryResult<Result<Invitation, AcceptRefusal>> {
    let Some(invitation) = invitations::find_by_token(conn, hash)? else { return Ok(Err(AcceptRefusal::Unknown)) };
    if let Err(refusal) = refusal_for(invitation.state(now)) {
        return Ok(Err(refusal));
    }
    if User::find_by_email(conn, &invitation.email)?.is_some_and(|user| !unproven(&user)) {
        return Ok(Err(AcceptRefusal::AccountExists));
    }
    if !inviter_stands(conn, &invitation)? {
        return Ok(Err(AcceptRefusal::InviterGone));
    }
    Ok(Ok(invitation))
}

/// Whether `user` is an account someone made for the address without
/// proving it (never verified, never signed in): the invitation's link,
/// which proves the mailbox, takes it over, as registering again would.
fn unproven(user: &User) -> bool {
    user.email_verified_at.is_none() && user.last_sign_in_at.is_none() && user.deleted_at.is_none() && !user.is_admin
}

/// Whether the administrator who sent `invitation` still is one.
fn inviter_stands(conn: &mut DbConnection, invitation: &Invitation) -> QueryResult<bool> {
    let inviter = User::find(conn, invitation.invited_by)?;
    Ok(inviter.is_some_and(|user| user.is_admin && user.disabled_at.is_none() && user.deleted_at.is_none()))
}

/// Whether sign-up is closed to everyone, the invited included.
fn closed(ctx: Context) -> bool {
    !ctx.config.settings.registration.admits_invitations()
}

fn refusal_for(state: InvitationState) -> Result<(), AcceptRefusal> {
    match state {
        InvitationState::Pending => Ok(()),
        InvitationState::Accepted => Err(AcceptRefusal::Used),
        InvitationState::Expired => Err(AcceptRefusal::Expired),
        InvitationState::Revoked => Err(AcceptRefusal::Revoked),
    }
}

/// Invites `email` into `groups`, by the administrator `actor`: stores the
/// invitation, queues its mail (the link is minted when it is sent) and
/// records "invitation sent" with the address as its detail. Returns the
/// invitation's id.
///
/// # Errors
/// `AlreadyUser` when the address has an account (nothing is sent),
/// `AlreadyInvited` when it has a pending invitation, `BuiltInGroup` or
/// `NoSuchGroup` for a group that cannot be joined.
pub fn invite(
    conn: &mut DbConnection,
    actor: i64,
    email: &EmailAddress,
    group_names: &[GroupName],
    ctx: Context,
) -> QueryResult<Result<i64, InviteRefusal>> {
    if closed(ctx) {
        return Ok(Err(InviteRefusal::SignUpClosed));
    }
    let address = email.as_str();
    // Two administrators inviting one address at once: one invitation.
    crate::db::lock_named(conn, &format!("invitation:{address}"))?;
    if let Some(user) = User::find_by_email(conn, address)?.filter(|user| !unproven(user)) {
        return Ok(Err(InviteRefusal::AlreadyUser { email: user.email, user_id: user.id }));
    }
    if let Some(pending) = invitations::pending_for(conn, address, ctx.now)? {
        return Ok(Err(InviteRefusal::AlreadyInvited { email: pending.email, invitation_id: pending.id }));
    }
    let mut names: Vec<String> = Vec::new();
    for name in group_names {
        if name.is_admins() {
            return Ok(Err(InviteRefusal::BuiltInGroup));
        }
        if groups::find_by_name(conn, name.as_str())?.is_none() {
            return Ok(Err(InviteRefusal::NoSuchGroup(name.to_string())));
        }
        if !names.iter().any(|known| known == name.as_str()) {
            names.push(name.as_str().to_owned());
        }
    }
    names.sort();
    let expires_at = ctx.now + ttl_secs(ctx);
    let new = NewInvitation { email: address, groups: &names, invited_by: actor, expires_at };
    let id = invitations::insert(conn, new, ctx.now)?;
    queue_invitation(conn, address, id, ctx.config)?;
    record(conn, EventKind::InvitationSent, actor, address, ctx)?;
    Ok(Ok(id))
}

/// Withdraws the pending invitation `id`, by the administrator `actor`:
/// its link stops working (and says it was withdrawn), a mail not yet sent
/// is not sent. Returns the invited address.
///
/// # Errors
/// `NoSuchInvitation`, or `NotPending` when it was accepted, withdrawn or
/// has expired.
pub fn revoke_invitation(
    conn: &mut DbConnection,
    actor: i64,
    id: i64,
    ctx: Context,
) -> QueryResult<Result<String, InviteRefusal>> {
    let Some(invitation) = invitations::find(conn, id)? else { return Ok(Err(InviteRefusal::NoSuchInvitation)) };
    if !invitations::revoke(conn, id, ctx.now)? {
        return Ok(Err(InviteRefusal::NotPending(invitation.state(ctx.now))));
    }
    record(conn, EventKind::InvitationRevoked, actor, &invitation.email, ctx)?;
    Ok(Ok(invitation.email))
}

/// Sends the invitation `id` again, by the administrator `actor`, with a
/// new link and a new deadline: the older link stops working at once. An
/// expired invitation may be sent again too. Returns the invited address.
///
/// # Errors
/// `NoSuchInvitation`; `NotPending` when it was accepted or withdrawn;
/// `AlreadyUser` when the address has an account now (nothing is sent).
pub fn resend_invitation(
    conn: &mut DbConnection,
    actor: i64,
    id: i64,
    ctx: Context,
) -> QueryResult<Result<String, InviteRefusal>> {
    if closed(ctx) {
        return Ok(Err(InviteRefusal::SignUpClosed));
    }
    let Some(invitation) = invitations::find(conn, id)? else { return Ok(Err(InviteRefusal::NoSuchInvitation)) };
    crate::db::lock_named(conn, &format!("invitation:{}", invitation.email))?;
    if let Some(user) = User::find_by_email(conn, &invitation.email)?.filter(|user| !unproven(user)) {
        return Ok(Err(InviteRefusal::AlreadyUser { email: user.email, user_id: user.id }));
    }
    if let Some(newer) = invitations::pending_for(conn, &invitation.email, ctx.now)?.filter(|other| other.id != id) {
        return Ok(Err(InviteRefusal::AlreadyInvited { email: newer.email, invitation_id: newer.id }));
    }
    if !invitations::renew(conn, id, actor, ctx.now + ttl_secs(ctx))? {
        return Ok(Err(InviteRefusal::NotPending(invitation.state(ctx.now))));
    }
    queue_invitation(conn, &invitation.email, id, ctx.config)?;
    record(conn, EventKind::InvitationResent, actor, &invitation.email, ctx)?;
    Ok(Ok(invitation.email))
}

/// Accepts the invitation whose link has `hash`, if this request wins it
/// (of concurrent uses exactly one does): creates the account with
/// `password_hash`, verified and approved, puts it in the invitation's
/// groups (those that still exist, each "added to group" by the inviting
/// administrator), records "invitation accepted" and makes the
/// invitation's earlier events the account's. Returns the new account;
/// signing in is the caller's.
///
/// # Errors
/// `AcceptRefusal`: the link is unknown, expired, withdrawn or used, or
/// the address got an account meanwhile.
pub fn accept_invitation(
    conn: &mut DbConnection,
    hash: &TokenHash,
    password_hash: &str,
    ctx: Context,
) -> QueryResult<Result<User, AcceptRefusal>> {
    if closed(ctx) {
        return Ok(Err(AcceptRefusal::SignUpClosed));
    }
    let Some(invitation) = invitations::claim(conn, hash, ctx.now)? else {
        // Lost the race, or never had one: say why.
        return Ok(Err(check_invitation(conn, hash, ctx.now)?.err().unwrap_or(AcceptRefusal::Used)));
    };
    let refused = |conn: &mut DbConnection, refusal| {
        invitations::unclaim(conn, invitation.id)?;
        Ok(Err(refusal))
    };
    if !inviter_stands(conn, &invitation)? {
        return refused(conn, AcceptRefusal::InviterGone);
    }
    let Some(user_id) = create_or_take_over(conn, &invitation.email, password_hash, ctx)? else {
        return refused(conn, AcceptRefusal::AccountExists);
    };
    invitations::set_user(conn, invitation.id, user_id)?;
    audit::adopt(conn, &INVITATION_EVENTS, &invitation.email, user_id)?;
    let event = Event {
        kind: EventKind::InvitationAccepted,
        user_id: Some(user_id),
        actor_id: Some(user_id),
        ip: ctx.ip,
        detail: &invitation.email,
    };
    audit::record(conn, event, ctx.now)?;
    for name in invitation.groups() {
        // A group that is no longer there, or a name that no longer parses, is skipped.
        if let Ok(name) = GroupName::parse(name) {
            drop(add_to_group(conn, invitation.invited_by, user_id, &name, ctx)?);
        }
    }
    let user = User::find(conn, user_id)?.expect("the account was just created");
    Ok(Ok(user))
}

/// The account the invitation makes: a new one, verified and approved;
/// or the unproven account someone made for the address (`unproven`),
/// given this password and made verified and approved. `None` when the
/// address has a proven account.
fn create_or_take_over(
    conn: &mut DbConnection,
    email: &str,
    password_hash: &str,
    ctx: Context,
) -> QueryResult<Option<i64>> {
    if let Some(existing) = User::find_by_email(conn, email)? {
        if !unproven(&existing) || !User::lock(conn, existing.id)? {
            return Ok(None);
        }
        User::set_password(conn, existing.id, password_hash, ctx.now)?;
        User::mark_verified(conn, existing.id, ctx.now)?;
        User::set_approval(conn, existing.id, Approval::Approved, ctx.now)?;
        crate::db::sessions::delete_all_for_user(conn, existing.id)?;
        return Ok(Some(existing.id));
    }
    let new_user = NewUser {
        email,
        password_hash,
        email_verified_at: Some(ctx.now),
        approval: Approval::Approved.as_str(),
        is_admin: false,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    User::insert(conn, &new_user)
}

fn ttl_secs(ctx: Context) -> i64 {
    i64::try_from(ctx.config.settings.invitation_ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Records an administrator's event about an invitation of `email`.
fn record(conn: &mut DbConnection, kind: EventKind, actor: i64, email: &str, ctx: Context) -> QueryResult<()> {
    let event = Event { kind, user_id: None, actor_id: Some(actor), ip: ctx.ip, detail: email };
    audit::record(conn, event, ctx.now)
}
