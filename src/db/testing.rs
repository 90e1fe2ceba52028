//! What the storage modules' unit tests share: a migrated SQLite file and
//! accounts in it.

use super::users::{NewUser, User};
use super::{DatabaseUrl, DbConnection, run_migrations};

/// A connection to a new, migrated SQLite file, which lives as long as the
/// directory.
pub fn database() -> (tempfile::TempDir, DbConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usher.db");
    let mut conn = DatabaseUrl::parse(&path.to_string_lossy()).connect().unwrap();
    run_migrations(&mut conn).unwrap();
    (dir, conn)
}

/// A verified, approved account; its id.
pub fn user(conn: &mut DbConnection, email: &str) -> i64 {
    let new = NewUser {
        email,
        password_hash: "unused",
        email_verified_at: Some(1),
        approval: "approved",
        is_admin: false,
        created_at: 1,
        updated_at: 1,
    };
    User::insert(conn, &new).unwrap().unwrap()
}

/// The SQL of each statement `work` runs on `conn`, without its binds.
/// Leaves `conn` with a fresh fault watch (as a new connection has).
pub fn statements_of(conn: &mut DbConnection, work: impl FnOnce(&mut DbConnection)) -> Vec<String> {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Connection, InstrumentationEvent};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let sql = query.to_string();
            let sql = sql.split(" -- binds:").next().unwrap_or_default();
            record.lock().unwrap().push(sql.to_owned());
        }
    });
    work(conn);
    conn.set_instrumentation(super::faults::FaultWatch::default());
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// SQLite's plan for `sql`, its parameters left unbound: one line per step,
/// as `EXPLAIN QUERY PLAN` words them ("SEARCH s USING INDEX …").
pub fn query_plan(conn: &mut DbConnection, sql: &str) -> Vec<String> {
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let DbConnection::Sqlite(sqlite) = conn else { panic!("query plans are read on SQLite") };
    let steps: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(sqlite).unwrap();
    steps.into_iter().map(|step| step.detail).collect()
}
