//! The `leases` table: named leases so one instance at a time runs a job.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::leases;

/// Takes the lease `name` until `until` if it is free or expired (or
/// already ours); false if another instance holds it.
pub fn try_acquire(conn: &mut DbConnection, name: &str, owner: &str, now: i64, until: i64) -> QueryResult<bool> {
    let taken =
        diesel::update(leases::table.find(name).filter(leases::lease_until.lt(now).or(leases::owner.eq(owner))))
            .set((leases::owner.eq(owner), leases::lease_until.eq(until)))
            .execute(conn)?;
    Ok(taken == 1)
}
