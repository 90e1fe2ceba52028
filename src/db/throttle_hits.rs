//! The `throttle_hits` table: attempts counted per bucket, shared by every
//! instance.

use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use super::DbConnection;
use super::schema::throttle_hits;

/// How many hits a bucket has since `since`, and when the oldest of them was.
pub fn count_since(conn: &mut DbConnection, bucket: &str, since: i64) -> QueryResult<(i64, Option<i64>)> {
    throttle_hits::table
        .filter(throttle_hits::bucket.eq(bucket))
        .filter(throttle_hits::at.gt(since))
        .select((count_star(), min(throttle_hits::at)))
        .first(conn)
}

/// Holds the bucket until the transaction ends, so concurrent
/// count-then-insert sequences on one bucket run one after the other.
/// SQLite's `BEGIN IMMEDIATE` already serialises every writer; PostgreSQL
/// takes a transaction-scoped advisory lock on a hash of the bucket.
pub fn lock_bucket(conn: &mut DbConnection, bucket: &str) -> QueryResult<()> {
    super::lock_named(conn, bucket)
}

/// Moves the hits counted in bucket `from` to bucket `to` (an account's
/// counts follow it to its new address).
pub fn move_hits(conn: &mut DbConnection, from: &str, to: &str) -> QueryResult<usize> {
    diesel::update(throttle_hits::table.filter(throttle_hits::bucket.eq(from)))
        .set(throttle_hits::bucket.eq(to))
        .execute(conn)
}

pub fn insert(conn: &mut DbConnection, bucket: &str, now: i64) -> QueryResult<i64> {
    diesel::insert_into(throttle_hits::table)
        .values((throttle_hits::bucket.eq(bucket), throttle_hits::at.eq(now)))
        .returning(throttle_hits::id)
        .get_result(conn)
}

pub fn delete(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::delete(throttle_hits::table.filter(throttle_hits::id.eq_any(ids))).execute(conn)
}

pub fn clear(conn: &mut DbConnection, bucket: &str) -> QueryResult<usize> {
    diesel::delete(throttle_hits::table.filter(throttle_hits::bucket.eq(bucket))).execute(conn)
}

/// Deletes up to `batch` hits older than `before`.
pub fn delete_older_batch(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let old: Vec<i64> =
        throttle_hits::table.filter(throttle_hits::at.lt(before)).select(throttle_hits::id).limit(batch).load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    delete(conn, &old)
}
