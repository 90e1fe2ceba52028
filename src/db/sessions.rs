//! The `sessions` table: server-side session state, keyed by a hash of the
//! id in the cookie.

use diesel::prelude::*;

use super::schema::{sessions, two_factor, users};
use super::users::User;
use super::{DbConnection, on_backend};

#[derive(Queryable, Clone, Debug)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    pub public_id: String,
    pub state: String,
    pub remember: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: String,
    pub ip: String,
    /// SHA-256 of the forward-auth cookie's id, once one was issued.
    pub forward_id_hash: Option<Vec<u8>>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id_hash: &'a [u8],
    pub user_id: i64,
    pub public_id: &'a str,
    pub state: &'a str,
    pub remember: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub forward_id_hash: Option<&'a [u8]>,
}

pub fn insert(conn: &mut DbConnection, session: &NewSession) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(session).execute(conn)?;
    Ok(())
}

/// A session that has not timed out, with its user and whether the user
/// has two-step sign-in on (`Some` time it was turned on).
pub fn find_live(
    conn: &mut DbConnection,
    id_hash: &[u8],
    now: i64,
) -> QueryResult<Option<(SessionRow, User, Option<i64>)>> {
    let query = sessions::table
        .inner_join(users::table.left_join(two_factor::table))
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .select((sessions::all_columns, users::all_columns, two_factor::enabled_at.nullable()));
    on_backend!(conn, c => query.get_result(c).optional())
}

/// The live session whose forward-auth cookie id hashes to `forward_id_hash`,
/// with its user and when two-step sign-in was turned on, as `find_live`.
pub fn find_live_by_forward_id(
    conn: &mut DbConnection,
    forward_id_hash: &[u8],
    now: i64,
) -> QueryResult<Option<(SessionRow, User, Option<i64>)>> {
    let query = sessions::table
        .inner_join(users::table.left_join(two_factor::table))
        .filter(sessions::forward_id_hash.eq(forward_id_hash))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .select((sessions::all_columns, users::all_columns, two_factor::enabled_at.nullable()));
    on_backend!(conn, c => query.get_result(c).optional())
}

/// Slides the idle timeout.
pub fn touch(conn: &mut DbConnection, id_hash: &[u8], now: i64, idle_expires_at: i64) -> QueryResult<()> {
    let query = diesel::update(sessions::table.find(id_hash))
        .set((sessions::last_seen_at.eq(now), sessions::idle_expires_at.eq(idle_expires_at)));
    on_backend!(conn, c => query.execute(c))?;
    Ok(())
}

/// Stores the session's state, and with `Some`, a new forward-auth id hash
/// (`Some(None)`: none).
pub fn update_state(
    conn: &mut DbConnection,
    id_hash: &[u8],
    state: &str,
    forward_id_hash: Option<Option<&[u8]>>,
) -> QueryResult<usize> {
    let row = sessions::table.find(id_hash);
    match forward_id_hash {
        Some(forward) => {
            diesel::update(row).set((sessions::state.eq(state), sessions::forward_id_hash.eq(forward))).execute(conn)
        }
        None => diesel::update(row).set(sessions::state.eq(state)).execute(conn),
    }
}

pub fn delete(conn: &mut DbConnection, id_hash: &[u8]) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id_hash)).execute(conn)
}

/// The user's live sessions, most recently used first.
pub fn list_live_for_user(conn: &mut DbConnection, user_id: i64, now: i64) -> QueryResult<Vec<SessionRow>> {
    let query = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .order(sessions::last_seen_at.desc());
    on_backend!(conn, c => query.load(c))
}

pub fn delete_all_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Ends the user's session named `public_id`; 0 when the user has none
/// of that name.
pub fn delete_by_public_id(conn: &mut DbConnection, user_id: i64, public_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::public_id.eq(public_id)))
        .execute(conn)
}

/// Ends every session of the user but the one named `keep`, and every way
/// into guarded apps: `keep` loses its forward-auth id too (a copy of that
/// cookie may be what someone else holds), and gets a new one on its next
/// way to a guarded app.
pub fn delete_others(conn: &mut DbConnection, user_id: i64, keep: &str) -> QueryResult<usize> {
    let mine = sessions::table.filter(sessions::user_id.eq(user_id));
    diesel::update(mine.filter(sessions::public_id.eq(keep)))
        .set(sessions::forward_id_hash.eq(None::<Vec<u8>>))
        .execute(conn)?;
    diesel::delete(mine.filter(sessions::public_id.ne(keep))).execute(conn)
}

/// Keeps the user's `keep` newest sessions and deletes the rest.
pub fn evict_oldest(conn: &mut DbConnection, user_id: i64, keep: i64) -> QueryResult<usize> {
    let surplus: Vec<Vec<u8>> = sessions::table
        .select(sessions::id_hash)
        .filter(sessions::user_id.eq(user_id))
        .order((sessions::created_at.desc(), sessions::last_seen_at.desc()))
        .limit(i64::MAX)
        .offset(keep)
        .load(conn)?;
    if surplus.is_empty() {
        return Ok(0);
    }
    diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(surplus))).execute(conn)
}

/// Deletes up to `batch` timed-out sessions. The idle deadline is never
/// later than the absolute one (every write caps it), so its index finds
/// both kinds.
pub fn delete_expired_batch(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> =
        sessions::table.select(sessions::id_hash).filter(sessions::idle_expires_at.le(now)).limit(batch).load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(expired))).execute(conn)
}
