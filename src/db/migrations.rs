//! Embedded migrations, one set per backend, run on start and by `usher migrate`.

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbConnection;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A fixed key so that several instances starting at once migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x7573_6865_725f_6d67; // "usher_mg"

/// Applies pending migrations and returns how many ran.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConnection::Sqlite(sqlite) => apply(sqlite, SQLITE)?,
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = apply(pg, POSTGRES);
            pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            result?
        }
    };
    Ok(applied)
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> anyhow::Result<usize>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    let done = conn.run_pending_migrations(migrations).map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(done.len())
}
