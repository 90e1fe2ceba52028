//! The second-factor tables: `two_factor` (an account's sealed RFC 6238
//! secret and the latest time step it accepted), `recovery_codes` (salted
//! SHA-256 hashes, each usable once) and `second_factor_challenges` (a
//! right password waiting for its code, keyed by a hash of the browser's
//! cookie). The rules live in `accounts/two_factor.rs`.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::{recovery_codes, second_factor_challenges, two_factor};

/// An account's authenticator secret, enabled or waiting for its first code.
#[derive(Queryable, Clone, Debug)]
pub struct TwoFactorRow {
    pub user_id: i64,
    /// Sealed by `auth::encryption::KeyRing`, with the user id as
    /// associated data.
    pub secret: Vec<u8>,
    /// `None` while enrolment waits for a first valid code.
    pub enabled_at: Option<i64>,
    /// The latest RFC 6238 time step accepted (unix seconds / 30).
    pub last_step: i64,
    pub created_at: i64,
}

pub fn find(conn: &mut DbConnection, user_id: i64) -> QueryResult<Option<TwoFactorRow>> {
    two_factor::table.find(user_id).first(conn).optional()
}

/// Whether the account has a second factor turned on.
pub fn is_enabled(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    let enabled = two_factor::table
        .find(user_id)
        .filter(two_factor::enabled_at.is_not_null())
        .select(two_factor::user_id)
        .first::<i64>(conn)
        .optional()?;
    Ok(enabled.is_some())
}

/// Keeps `secret` as the account's pending enrolment, replacing an older
/// pending one. Changes nothing (and returns false) when a second factor
/// is already enabled.
pub fn start_enrolment(conn: &mut DbConnection, user_id: i64, secret: &[u8], now: i64) -> QueryResult<bool> {
    diesel::delete(two_factor::table.find(user_id).filter(two_factor::enabled_at.is_null())).execute(conn)?;
    if find(conn, user_id)?.is_some() {
        return Ok(false);
    }
    diesel::insert_into(two_factor::table)
        .values((
            two_factor::user_id.eq(user_id),
            two_factor::secret.eq(secret),
            two_factor::last_step.eq(0_i64),
            two_factor::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Turns the pending enrolment on, as having accepted `step`. False when
/// there was none pending (finished in another tab, or restarted).
pub fn enable(conn: &mut DbConnection, user_id: i64, secret: &[u8], step: i64, now: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        two_factor::table.find(user_id).filter(two_factor::enabled_at.is_null()).filter(two_factor::secret.eq(secret)),
    )
    .set((two_factor::enabled_at.eq(now), two_factor::last_step.eq(step)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Accepts time step `step` for the account only if it is later than every
/// step accepted before (RFC 6238 §5.2: a code is good once). The
/// conditional UPDATE is the check, so two requests racing with one code
/// cannot both win.
pub fn accept_step(conn: &mut DbConnection, user_id: i64, step: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        two_factor::table
            .find(user_id)
            .filter(two_factor::enabled_at.is_not_null())
            .filter(two_factor::last_step.lt(step)),
    )
    .set(two_factor::last_step.eq(step))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Removes the account's second factor and its recovery codes; whether it
/// had one enabled.
pub fn remove(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    let enabled = is_enabled(conn, user_id)?;
    diesel::delete(two_factor::table.find(user_id)).execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
    close_challenges_for(conn, user_id)?;
    Ok(enabled)
}

/// Every sealed secret, for re-encryption under a new key.
pub fn all_secrets(conn: &mut DbConnection) -> QueryResult<Vec<(i64, Vec<u8>)>> {
    two_factor::table.select((two_factor::user_id, two_factor::secret)).load(conn)
}

/// Replaces a sealed secret with the same secret sealed anew, if the row
/// still holds `old` (it may have changed meanwhile).
pub fn reseal(conn: &mut DbConnection, user_id: i64, old: &[u8], new: &[u8]) -> QueryResult<bool> {
    let updated = diesel::update(two_factor::table.find(user_id).filter(two_factor::secret.eq(old)))
        .set(two_factor::secret.eq(new))
        .execute(conn)?;
    Ok(updated == 1)
}

/// One stored recovery code: its id, salt and hash.
#[derive(Queryable, Clone, Debug)]
pub struct StoredCode {
    pub id: i64,
    pub salt: Vec<u8>,
    pub code_hash: Vec<u8>,
}

/// Replaces the account's recovery codes with these `(salt, hash)` pairs.
pub fn replace_recovery_codes(conn: &mut DbConnection, user_id: i64, codes: &[(Vec<u8>, Vec<u8>)]) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
    let rows: Vec<_> = codes
        .iter()
        .map(|(salt, hash)| {
            (recovery_codes::user_id.eq(user_id), recovery_codes::salt.eq(salt), recovery_codes::code_hash.eq(hash))
        })
        .collect();
    for row in rows {
        diesel::insert_into(recovery_codes::table).values(row).execute(conn)?;
    }
    Ok(())
}

/// The account's recovery codes not yet used.
pub fn unused_codes(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<StoredCode>> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .select((recovery_codes::id, recovery_codes::salt, recovery_codes::code_hash))
        .order(recovery_codes::id)
        .load(conn)
}

/// Names the account's current set of recovery codes (its newest id), so
/// that a form renewing it acts only on the set it was shown with.
pub fn codes_generation(conn: &mut DbConnection, user_id: i64) -> QueryResult<i64> {
    let newest: Option<i64> = recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .select(diesel::dsl::max(recovery_codes::id))
        .first(conn)?;
    Ok(newest.unwrap_or(0))
}

/// How many of the account's recovery codes are left.
pub fn codes_left(conn: &mut DbConnection, user_id: i64) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// Marks code `id` used, only if it was not: true for the one request
/// that used it.
pub fn use_code(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<bool> {
    let updated = diesel::update(recovery_codes::table.find(id).filter(recovery_codes::used_at.is_null()))
        .set(recovery_codes::used_at.eq(now))
        .execute(conn)?;
    Ok(updated == 1)
}

/// A right password waiting for its second factor.
#[derive(Queryable, Clone, Debug)]
pub struct Challenge {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    /// "Keep me signed in" was ticked with the password.
    pub remember: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Records a challenge; the account's older ones end (one browser at a
/// time completes a sign-in with a second factor).
pub fn open_challenge(conn: &mut DbConnection, challenge: &Challenge) -> QueryResult<()> {
    diesel::delete(second_factor_challenges::table.filter(second_factor_challenges::user_id.eq(challenge.user_id)))
        .execute(conn)?;
    diesel::insert_into(second_factor_challenges::table)
        .values((
            second_factor_challenges::id_hash.eq(&challenge.id_hash),
            second_factor_challenges::user_id.eq(challenge.user_id),
            second_factor_challenges::remember.eq(challenge.remember),
            second_factor_challenges::created_at.eq(challenge.created_at),
            second_factor_challenges::expires_at.eq(challenge.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The challenge with this hash, if it has not expired.
pub fn live_challenge(conn: &mut DbConnection, id_hash: &[u8], now: i64) -> QueryResult<Option<Challenge>> {
    second_factor_challenges::table
        .find(id_hash)
        .filter(second_factor_challenges::expires_at.gt(now))
        .first(conn)
        .optional()
}

/// Takes the row lock of a live challenge (an UPDATE that changes
/// nothing), so that two submissions of one challenge run one after the
/// other; false when it is gone or expired.
pub fn lock_challenge(conn: &mut DbConnection, id_hash: &[u8], now: i64) -> QueryResult<bool> {
    let live = second_factor_challenges::table.find(id_hash).filter(second_factor_challenges::expires_at.gt(now));
    let locked = diesel::update(live)
        .set(second_factor_challenges::expires_at.eq(second_factor_challenges::expires_at))
        .execute(conn)?;
    Ok(locked == 1)
}

/// Ends every challenge of the account: its password changed, or it may
/// no longer sign in.
pub fn close_challenges_for(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(second_factor_challenges::table.filter(second_factor_challenges::user_id.eq(user_id))).execute(conn)
}

/// Ends a challenge; true for the one request that ended it.
pub fn close_challenge(conn: &mut DbConnection, id_hash: &[u8]) -> QueryResult<bool> {
    Ok(diesel::delete(second_factor_challenges::table.find(id_hash)).execute(conn)? == 1)
}

/// Deletes up to `batch` expired challenges.
pub fn delete_expired_challenges(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = second_factor_challenges::table
        .select(second_factor_challenges::id_hash)
        .filter(second_factor_challenges::expires_at.le(now))
        .limit(batch)
        .load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(second_factor_challenges::table.filter(second_factor_challenges::id_hash.eq_any(expired)))
        .execute(conn)
}
