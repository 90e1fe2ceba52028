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
