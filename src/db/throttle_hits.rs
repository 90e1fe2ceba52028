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

pub fn insert(conn: &mut DbConnection, bucket: &str, now: i64) -> QueryResult<()> {
    diesel::insert_into(throttle_hits::table)
        .values((throttle_hits::bucket.eq(bucket), throttle_hits::at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn clear(conn: &mut DbConnection, bucket: &str) -> QueryResult<usize> {
    diesel::delete(throttle_hits::table.filter(throttle_hits::bucket.eq(bucket))).execute(conn)
}

/// Deletes the oldest hits before `before`, about `batch` at a time.
pub fn delete_older_batch(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let oldest: Vec<i64> = throttle_hits::table
        .filter(throttle_hits::at.lt(before))
        .select(throttle_hits::at)
        .order(throttle_hits::at)
        .limit(batch)
        .load(conn)?;
    let Some(&upto) = oldest.last() else {
        return Ok(0);
    };
    diesel::delete(throttle_hits::table.filter(throttle_hits::at.lt(before)).filter(throttle_hits::at.le(upto)))
        .execute(conn)
}
