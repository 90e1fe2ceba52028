//! The `readiness` table: one row that readiness checks write, so that
//! `/readyz` fails while the database cannot take writes.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::readiness;

/// Writes the check's time into the single row.
///
/// # Errors
/// Whatever stops the write: a lost connection, a read-only server, an
/// unwritable or full SQLite file.
pub fn touch(conn: &mut DbConnection, now: i64) -> QueryResult<()> {
    diesel::update(readiness::table.find(1)).set(readiness::checked_at.eq(now)).execute(conn).map(|_| ())
}
