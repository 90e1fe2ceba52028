//! The `email_changes` table: requested changes of an account's address.
//! A row is `pending` until the link sent to the new address is used
//! (`confirmed`), the person cancels it, or a newer request `replaced` it;
//! a confirmed change can be `reverted` from the link sent to the old
//! address. Only SHA-256 hashes of the links' tokens are stored.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::email_changes;
use crate::domain::TokenHash;

#[derive(Queryable, Clone, Debug)]
pub struct EmailChange {
    pub id: i64,
    pub user_id: i64,
    pub old_email: String,
    pub new_email: String,
    pub state: String,
    pub confirm_hash: Option<Vec<u8>>,
    /// When the confirmation link stops working (unix seconds).
    pub expires_at: i64,
    pub revert_hash: Option<Vec<u8>>,
    pub revert_expires_at: Option<i64>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
}

/// How long the undo link sent to the old address works: 7 days.
pub const REVERT_TTL_SECS: i64 = 7 * 24 * 3600;

pub const PENDING: &str = "pending";
pub const CONFIRMED: &str = "confirmed";
pub const CANCELLED: &str = "cancelled";
pub const REPLACED: &str = "replaced";
pub const REVERTED: &str = "reverted";

/// Deletes a user's changes of address, returning every address they
/// named (old and new), for a deleted account's other traces.
pub fn delete_all_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<String>> {
    let named: Vec<(String, String)> = email_changes::table
        .filter(email_changes::user_id.eq(user_id))
        .select((email_changes::old_email, email_changes::new_email))
        .load(conn)?;
    diesel::delete(email_changes::table.filter(email_changes::user_id.eq(user_id))).execute(conn)?;
    Ok(named.into_iter().flat_map(|(old, new)| [old, new]).collect())
}

/// Records a pending change from `old_email` to `new_email`, after marking
/// the account's older pending ones `replaced`. Returns the new row's id.
pub fn request(
    conn: &mut DbConnection,
    user_id: i64,
    old_email: &str,
    new_email: &str,
    expires_at: i64,
    now: i64,
) -> QueryResult<i64> {
    end_pending(conn, user_id, REPLACED)?;
    diesel::insert_into(email_changes::table)
        .values((
            email_changes::user_id.eq(user_id),
            email_changes::old_email.eq(old_email),
            email_changes::new_email.eq(new_email),
            email_changes::state.eq(PENDING),
            email_changes::expires_at.eq(expires_at),
            email_changes::created_at.eq(now),
        ))
        .returning(email_changes::id)
        .get_result(conn)
}

/// Ends the account's pending changes with `state` (`cancelled` or
/// `replaced`); how many there were.
pub fn end_pending(conn: &mut DbConnection, user_id: i64, state: &str) -> QueryResult<usize> {
    diesel::update(
        email_changes::table.filter(email_changes::user_id.eq(user_id)).filter(email_changes::state.eq(PENDING)),
    )
    .set(email_changes::state.eq(state))
    .execute(conn)
}

/// The account's pending change that has not expired, if any.
pub fn pending_for(conn: &mut DbConnection, user_id: i64, now: i64) -> QueryResult<Option<EmailChange>> {
    email_changes::table
        .filter(email_changes::user_id.eq(user_id))
        .filter(email_changes::state.eq(PENDING))
        .filter(email_changes::expires_at.gt(now))
        .order(email_changes::id.desc())
        .first(conn)
        .optional()
}

/// Sets a change's state, whatever it was.
pub fn set_state(conn: &mut DbConnection, id: i64, state: &str) -> QueryResult<()> {
    diesel::update(email_changes::table.find(id)).set(email_changes::state.eq(state)).execute(conn).map(drop)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<EmailChange>> {
    email_changes::table.find(id).first(conn).optional()
}

/// Stores the hash of the confirmation link minted for a pending change;
/// false when the change is no longer pending.
pub fn set_confirm_hash(conn: &mut DbConnection, id: i64, hash: &TokenHash) -> QueryResult<bool> {
    let set = diesel::update(email_changes::table.find(id).filter(email_changes::state.eq(PENDING)))
        .set(email_changes::confirm_hash.eq(&hash.0))
        .execute(conn)?;
    Ok(set == 1)
}

/// Stores the hash of the undo link minted for a confirmed change, and
/// when it stops working; false when the change is not confirmed (any
/// more).
pub fn set_revert_hash(conn: &mut DbConnection, id: i64, hash: &TokenHash, expires_at: i64) -> QueryResult<bool> {
    let set = diesel::update(email_changes::table.find(id).filter(email_changes::state.eq(CONFIRMED)))
        .set((email_changes::revert_hash.eq(&hash.0), email_changes::revert_expires_at.eq(expires_at)))
        .execute(conn)?;
    Ok(set == 1)
}

/// The pending, unexpired change a confirmation link names, without using it.
pub fn peek_confirm(conn: &mut DbConnection, hash: &TokenHash, now: i64) -> QueryResult<Option<EmailChange>> {
    email_changes::table
        .filter(email_changes::confirm_hash.eq(&hash.0))
        .filter(email_changes::state.eq(PENDING))
        .filter(email_changes::expires_at.gt(now))
        .first(conn)
        .optional()
}

/// Uses a confirmation link in one statement: of concurrent uses exactly
/// one gets the change.
pub fn claim_confirm(conn: &mut DbConnection, hash: &TokenHash, now: i64) -> QueryResult<Option<EmailChange>> {
    diesel::update(
        email_changes::table
            .filter(email_changes::confirm_hash.eq(&hash.0))
            .filter(email_changes::state.eq(PENDING))
            .filter(email_changes::expires_at.gt(now)),
    )
    .set((email_changes::state.eq(CONFIRMED), email_changes::confirmed_at.eq(now)))
    .returning(email_changes::all_columns)
    .get_result(conn)
    .optional()
}

/// Closes the undo links of the account's confirmed changes made after
/// change `id`: undoing a change also undoes what came after it.
pub fn close_later(conn: &mut DbConnection, user_id: i64, id: i64) -> QueryResult<usize> {
    diesel::update(
        email_changes::table
            .filter(email_changes::user_id.eq(user_id))
            .filter(email_changes::state.eq(CONFIRMED))
            .filter(email_changes::id.gt(id)),
    )
    .set(email_changes::state.eq(REVERTED))
    .execute(conn)
}

/// The confirmed change an undo link names, while it works, without using it.
pub fn peek_revert(conn: &mut DbConnection, hash: &TokenHash, now: i64) -> QueryResult<Option<EmailChange>> {
    email_changes::table
        .filter(email_changes::revert_hash.eq(&hash.0))
        .filter(email_changes::state.eq(CONFIRMED))
        .filter(email_changes::revert_expires_at.gt(now))
        .first(conn)
        .optional()
}

/// Uses an undo link in one statement (single use).
pub fn claim_revert(conn: &mut DbConnection, hash: &TokenHash, now: i64) -> QueryResult<Option<EmailChange>> {
    diesel::update(
        email_changes::table
            .filter(email_changes::revert_hash.eq(&hash.0))
            .filter(email_changes::state.eq(CONFIRMED))
            .filter(email_changes::revert_expires_at.gt(now)),
    )
    .set(email_changes::state.eq(REVERTED))
    .returning(email_changes::all_columns)
    .get_result(conn)
    .optional()
}
