//! The `invitations` table: addresses an administrator invited to sign
//! up. A row is pending until its link is used (`accepted_at`), an
//! administrator withdraws it (`revoked_at`), or it expires
//! (`expires_at`). Only the SHA-256 of the link's token is stored, set when
//! the mail is composed; a re-send clears it, which voids the older link.
//! The rules live in `accounts/invitations.rs`.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::invitations;
use crate::domain::TokenHash;

/// Ended invitations (accepted, withdrawn or expired) are kept this long
/// for administrators to see, then the cleanup deletes them: 30 days.
pub const ENDED_KEPT_SECS: i64 = 30 * 24 * 3600;

/// A stored invitation.
#[derive(Queryable, Clone, Debug)]
pub struct Invitation {
    pub id: i64,
    /// Normalised, as `users.email`.
    pub email: String,
    /// The names of the groups to join, separated by spaces.
    pub group_names: String,
    pub token_hash: Option<Vec<u8>>,
    /// The administrator who invited (or last re-sent it).
    pub invited_by: i64,
    pub created_at: i64,
    /// When the link stops working (unix seconds).
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub accepted_at: Option<i64>,
    /// The account the invitation created.
    pub user_id: Option<i64>,
}

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationState {
    /// Its link works.
    Pending,
    /// Its link created an account.
    Accepted,
    /// Its link ran out before it was used.
    Expired,
    /// An administrator withdrew it.
    Revoked,
}

impl InvitationState {
    /// The state in one word, as the invitations page shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl Invitation {
    /// Where the invitation stands at `now`.
    pub fn state(&self, now: i64) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    /// The names of the groups to join.
    pub fn groups(&self) -> Vec<&str> {
        self.group_names.split_whitespace().collect()
    }
}

/// An invitation about to be stored.
pub struct NewInvitation<'a> {
    /// Normalised.
    pub email: &'a str,
    /// Names of existing groups, checked by the caller.
    pub groups: &'a [String],
    pub invited_by: i64,
    pub expires_at: i64,
}

/// Stores a pending invitation, without a link yet; its id.
pub fn insert(conn: &mut DbConnection, new: NewInvitation, now: i64) -> QueryResult<i64> {
    diesel::insert_into(invitations::table)
        .values((
            invitations::email.eq(new.email),
            invitations::group_names.eq(new.groups.join(" ")),
            invitations::invited_by.eq(new.invited_by),
            invitations::created_at.eq(now),
            invitations::expires_at.eq(new.expires_at),
        ))
        .returning(invitations::id)
        .get_result(conn)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Invitation>> {
    invitations::table.find(id).first(conn).optional()
}

/// Locks the invitation's row until the transaction ends (on PostgreSQL;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers). False when
/// there is no such invitation.
pub fn lock(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    let locked = diesel::update(invitations::table.find(id))
        .set(invitations::expires_at.eq(invitations::expires_at))
        .execute(conn)?;
    Ok(locked == 1)
}

/// The invitation whose link has this hash, in whatever state.
pub fn find_by_token(conn: &mut DbConnection, hash: &TokenHash) -> QueryResult<Option<Invitation>> {
    invitations::table.filter(invitations::token_hash.eq(&hash.0)).first(conn).optional()
}

/// The newest pending invitation of `email` (normalised) at `now`.
pub fn pending_for(conn: &mut DbConnection, email: &str, now: i64) -> QueryResult<Option<Invitation>> {
    invitations::table
        .filter(invitations::email.eq(email))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now))
        .order(invitations::id.desc())
        .first(conn)
        .optional()
}

/// The newest `limit` invitations, newest first.
pub fn newest(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Invitation>> {
    invitations::table.order(invitations::id.desc()).limit(limit).load(conn)
}

/// Stores the hash of the link minted for a pending invitation; false when
/// it is no longer pending (accepted, withdrawn or expired meanwhile).
pub fn set_token_hash(conn: &mut DbConnection, id: i64, hash: &TokenHash, now: i64) -> QueryResult<bool> {
    let pending = invitations::table
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now));
    let set = diesel::update(pending.filter(invitations::id.eq(id)))
        .set(invitations::token_hash.eq(&hash.0))
        .execute(conn)?;
    Ok(set == 1)
}

/// Withdraws a pending invitation (its link stays known, so that it can
/// say it was withdrawn); false when it was not pending.
pub fn revoke(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<bool> {
    let pending = invitations::table
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now));
    let revoked =
        diesel::update(pending.filter(invitations::id.eq(id))).set(invitations::revoked_at.eq(now)).execute(conn)?;
    Ok(revoked == 1)
}

/// Prepares a re-send of an invitation that is pending or expired: voids
/// its link (the new mail mints another), gives it a new deadline and
/// names `by` as the inviter. False when it was accepted or withdrawn.
pub fn renew(conn: &mut DbConnection, id: i64, by: i64, expires_at: i64) -> QueryResult<bool> {
    let open = invitations::table
        .filter(invitations::id.eq(id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null());
    let renewed = diesel::update(open)
        .set((
            invitations::token_hash.eq(None::<Vec<u8>>),
            invitations::expires_at.eq(expires_at),
            invitations::invited_by.eq(by),
        ))
        .execute(conn)?;
    Ok(renewed == 1)
}

/// Uses a link in one statement: of concurrent uses exactly one gets the
/// invitation, and only while it is pending.
pub fn claim(conn: &mut DbConnection, hash: &TokenHash, now: i64) -> QueryResult<Option<Invitation>> {
    let pending = invitations::table
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now));
    diesel::update(pending.filter(invitations::token_hash.eq(&hash.0)))
        .set(invitations::accepted_at.eq(now))
        .returning(invitations::all_columns)
        .get_result(conn)
        .optional()
}

/// Undoes a claim in the same transaction, for when the account could not
/// be made after all.
pub fn unclaim(conn: &mut DbConnection, id: i64) -> QueryResult<()> {
    diesel::update(invitations::table.find(id)).set(invitations::accepted_at.eq(None::<i64>)).execute(conn).map(drop)
}

/// Records the account an accepted invitation created.
pub fn set_user(conn: &mut DbConnection, id: i64, user_id: i64) -> QueryResult<()> {
    diesel::update(invitations::table.find(id)).set(invitations::user_id.eq(user_id)).execute(conn).map(drop)
}

/// Deletes every invitation of `email` (a deleted account's address) or
/// that created `user_id`.
pub fn delete_for(conn: &mut DbConnection, email: &str, user_id: i64) -> QueryResult<usize> {
    diesel::delete(invitations::table.filter(invitations::email.eq(email).or(invitations::user_id.eq(user_id))))
        .execute(conn)
}

/// Deletes up to `batch` invitations that ended (accepted, withdrawn or
/// expired) before `before`.
pub fn delete_ended_batch(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let ended: Vec<i64> = invitations::table
        .select(invitations::id)
        .filter(
            invitations::accepted_at
                .lt(before)
                .or(invitations::revoked_at.lt(before))
                .or(invitations::expires_at.lt(before)),
        )
        .limit(batch)
        .load(conn)?;
    if ended.is_empty() {
        return Ok(0);
    }
    diesel::delete(invitations::table.filter(invitations::id.eq_any(ended))).execute(conn)
}
