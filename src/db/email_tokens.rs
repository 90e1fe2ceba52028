//! The `email_tokens` table: hashes of the secrets sent by email (links and
//! codes). The secrets themselves are never stored.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::email_tokens;
use crate::domain::TokenHash;

/// A verification code is void after this many tries, right or wrong.
pub const MAX_CODE_ATTEMPTS: i32 = 5;

#[derive(Queryable, Clone, Debug)]
pub struct EmailTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub purpose: String,
    pub secret_hash: Vec<u8>,
    pub attempts: i32,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    VerifyLink,
    VerifyCode,
    ResetLink,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyLink => "verify_link",
            Self::VerifyCode => "verify_code",
            Self::ResetLink => "reset_link",
        }
    }
}

/// A secret about to be stored.
pub struct NewToken<'a> {
    pub user_id: i64,
    pub purpose: Purpose,
    pub hash: &'a TokenHash,
    /// A verification answering a registration sets that registration's password.
    pub password_hash: Option<&'a str>,
    pub expires_at: i64,
}

/// What using a secret yields.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub user_id: i64,
    pub password_hash: Option<String>,
}

pub fn insert(conn: &mut DbConnection, token: NewToken, now: i64) -> QueryResult<i64> {
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::user_id.eq(token.user_id),
            email_tokens::purpose.eq(token.purpose.as_str()),
            email_tokens::secret_hash.eq(&token.hash.0),
            email_tokens::password_hash.eq(token.password_hash),
            email_tokens::created_at.eq(now),
            email_tokens::expires_at.eq(token.expires_at),
        ))
        .returning(email_tokens::id)
        .get_result(conn)
}

/// Voids the live secrets of these purposes minted before `newest_id`:
/// once a newer mail went out, the older links stop working.
pub fn void_older(
    conn: &mut DbConnection,
    user_id: i64,
    purposes: &[Purpose],
    newest_id: i64,
    now: i64,
) -> QueryResult<usize> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq_any(purposes))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::id.lt(newest_id)),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)
}

/// Deletes every link and code of a user, used or not (a deleted account).
pub fn delete_all_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(email_tokens::table.filter(email_tokens::user_id.eq(user_id))).execute(conn)
}

/// Voids every live secret of these purposes for a user.
pub fn void_all(conn: &mut DbConnection, user_id: i64, purposes: &[Purpose], now: i64) -> QueryResult<usize> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq_any(purposes))
            .filter(email_tokens::used_at.is_null()),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)
}

/// Voids every live secret of a user that would set a password when used
/// (a verification answering a sign-up that chose one).
pub fn void_carrying_password(conn: &mut DbConnection, user_id: i64, now: i64) -> QueryResult<usize> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::password_hash.is_not_null())
            .filter(email_tokens::used_at.is_null()),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)
}

/// Claims a link token in one statement, so of many concurrent claims
/// exactly one wins.
pub fn claim_link(
    conn: &mut DbConnection,
    purpose: Purpose,
    hash: &TokenHash,
    now: i64,
) -> QueryResult<Option<Claimed>> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::secret_hash.eq(&hash.0))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(now)),
    )
    .set(email_tokens::used_at.eq(now))
    .returning((email_tokens::user_id, email_tokens::password_hash))
    .get_result(conn)
    .optional()
    .map(|claimed| claimed.map(|(user_id, password_hash)| Claimed { user_id, password_hash }))
}

/// Counts one try against the user's live code before it is compared, in
/// one statement: parallel guesses cannot get more than
/// `MAX_CODE_ATTEMPTS` comparisons. Returns the live codes' ids and hashes.
pub fn count_code_attempt(conn: &mut DbConnection, user_id: i64, now: i64) -> QueryResult<Vec<(i64, Vec<u8>)>> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(Purpose::VerifyCode.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(now))
            .filter(email_tokens::attempts.lt(MAX_CODE_ATTEMPTS)),
    )
    .set(email_tokens::attempts.eq(email_tokens::attempts + 1))
    .returning((email_tokens::id, email_tokens::secret_hash))
    .get_results(conn)
}

/// Uses a secret by id; `None` if another request used it first.
pub fn claim_by_id(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<Option<Claimed>> {
    diesel::update(email_tokens::table.find(id).filter(email_tokens::used_at.is_null()))
        .set(email_tokens::used_at.eq(now))
        .returning((email_tokens::user_id, email_tokens::password_hash))
        .get_result(conn)
        .optional()
        .map(|claimed| claimed.map(|(user_id, password_hash)| Claimed { user_id, password_hash }))
}

/// The user a live (unused, unexpired) link belongs to, without using it.
pub fn peek_link(conn: &mut DbConnection, purpose: Purpose, hash: &TokenHash, now: i64) -> QueryResult<Option<i64>> {
    email_tokens::table
        .select(email_tokens::user_id)
        .filter(email_tokens::secret_hash.eq(&hash.0))
        .filter(email_tokens::purpose.eq(purpose.as_str()))
        .filter(email_tokens::used_at.is_null())
        .filter(email_tokens::expires_at.gt(now))
        .first(conn)
        .optional()
}

/// Deletes up to `batch` secrets that were used, voided or have expired.
pub fn delete_spent_batch(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let spent: Vec<i64> = email_tokens::table
        .select(email_tokens::id)
        .filter(email_tokens::used_at.is_not_null().or(email_tokens::expires_at.le(now)))
        .limit(batch)
        .load(conn)?;
    if spent.is_empty() {
        return Ok(0);
    }
    diesel::delete(email_tokens::table.filter(email_tokens::id.eq_any(spent))).execute(conn)
}
