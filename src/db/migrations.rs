//! Embedded migrations, one set per backend, run on start and by `usher migrate`,
//! followed by the conversion of stored addresses to their IDNA ASCII form.

mod idn;

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbConnection;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A fixed key so that several instances starting at once migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x7573_6865_725f_6d67; // "usher_mg"

/// Applies pending migrations, then converts stored addresses whose
/// domain is not yet in its ASCII form (see [`idn::convert_stored_addresses`]),
/// and returns how many migrations ran.
///
/// # Errors
/// A failed migration, a database error, or two accounts that are one
/// mailbox once their domains are converted (the message names both).
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConnection::Sqlite(sqlite) => apply(sqlite, SQLITE)?,
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            // Under the lock too, so instances starting together do not convert at once.
            let result = apply(pg, POSTGRES).and_then(|applied| {
                idn::convert_stored_addresses(conn)?;
                Ok(applied)
            });
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            return result;
        }
    };
    idn::convert_stored_addresses(conn)?;
    Ok(applied)
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> anyhow::Result<usize>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    let done = conn.run_pending_migrations(migrations).map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(done.len())
}
