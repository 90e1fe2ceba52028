//! One connection type for both backends, picked by the database URL at run time.

use std::path::Path;

use diesel::Connection;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::result::{ConnectionError, QueryResult};
use diesel::sqlite::SqliteConnection;

use super::faults::FaultWatch;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs diesel work on the backend's own connection type: `on_backend!(conn,
/// c => query.load(c))`. The multi-backend connection renders a query's SQL
/// again on every run, even for a cached statement; the backend's own
/// connection finds the statement by the query's type. Worth it for the
/// queries every signed-in request makes.
macro_rules! on_backend {
    ($conn:expr, $backend_conn:ident => $work:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($backend_conn) => $work,
            $crate::db::DbConnection::Sqlite($backend_conn) => $work,
        }
    };
}
pub(crate) use on_backend;

/// Where the data lives, parsed from `DATABASE_URL`. Its `Debug` hides
/// any password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// `postgres://` and `postgresql://` select PostgreSQL; anything else is a
    /// SQLite file path, with a leading `sqlite://` stripped.
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Self::Postgres(raw.to_owned())
        } else {
            Self::Sqlite(raw.strip_prefix("sqlite://").unwrap_or(raw).to_owned())
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The URL without any password, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{path}"),
            Self::Postgres(raw) => match url::Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    // Parameters may carry a password too (`?password=`).
                    url.set_query(None);
                    url.to_string()
                }
                Err(_) => "postgres://(unparsable)".to_owned(),
            },
        }
    }

    /// Opens a connection that watches for faults: the pool drops it once
    /// it met one (see `super::faults::FaultWatch`).
    ///
    /// # Errors
    /// The database refuses or cannot be reached, or (SQLite) its file or
    /// write-ahead log cannot be written.
    pub fn connect(&self) -> Result<DbConnection, ConnectionError> {
        let mut conn = match self {
            Self::Postgres(url) => PgConnection::establish(url).map(DbConnection::Postgres)?,
            Self::Sqlite(path) => connect_sqlite(path).map(DbConnection::Sqlite)?,
        };
        conn.set_instrumentation(FaultWatch::default());
        Ok(conn)
    }
}

/// Refuses to open a SQLite file the process cannot write. SQLite would
/// open it read-only instead, and such a connection stays read-only after
/// the file is writable again. `access(2)` rather than a trial open: closing
/// any descriptor of the file would drop the locks SQLite holds on it.
#[cfg(unix)]
fn ensure_writable(path: &Path) -> Result<(), ConnectionError> {
    use std::os::unix::ffi::OsStrExt;
    let wal = {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    for file in [path, wal.as_path()] {
        let Ok(c_path) = std::ffi::CString::new(file.as_os_str().as_bytes()) else { continue };
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::NotFound {
                return Err(ConnectionError::BadConnection(format!("{} is not writable: {error}", file.display())));
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn ensure_writable(_path: &Path) -> Result<(), ConnectionError> {
    Ok(())
}

fn connect_sqlite(path: &str) -> Result<SqliteConnection, ConnectionError> {
    if let Some(dir) = Path::new(path).parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConnectionError::BadConnection(format!("cannot create {}: {e}", dir.display())))?;
    }
    ensure_writable(Path::new(path))?;
    let mut conn = SqliteConnection::establish(path)?;
    // WAL lets readers run beside the single writer; busy_timeout makes writers
    // queue instead of failing at once.
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
    )
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl DbConnection {
    /// Brings the query planner's statistics up to date where they have
    /// gone stale. SQLite keeps none until asked, and without them it may
    /// read the waiting sign-ups in email order by a poorer index and sort
    /// them instead of using `users_waiting`. `PRAGMA optimize` analyses only
    /// what changed: 0x2 runs ANALYZE where useful, 0x10 bounds it with a
    /// temporary `analysis_limit` (an unbounded ANALYZE of a million users
    /// holds the write lock for minutes), 0x10000 looks at every table, not
    /// only those this connection used. PostgreSQL's autovacuum does this
    /// by itself.
    pub fn refresh_planner_statistics(&mut self) -> diesel::QueryResult<()> {
        match self {
            Self::Sqlite(conn) => conn.batch_execute("PRAGMA optimize = 0x10012;"),
            Self::Postgres(_) => Ok(()),
        }
    }

    /// Runs `work` in a write transaction. On SQLite it starts with
    /// `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
    /// fails at once under concurrent writers, whatever the busy timeout.
    pub fn write<T, E>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        match self {
            Self::Sqlite(conn) => AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")?,
            Self::Postgres(conn) => AnsiTransactionManager::begin_transaction(conn)?,
        }
        match work(self) {
            Ok(value) => {
                self.end_transaction(true)?;
                Ok(value)
            }
            Err(error) => {
                // The work's error is the one worth reporting.
                let _ = self.end_transaction(false);
                Err(error)
            }
        }
    }

    fn end_transaction(&mut self, commit: bool) -> QueryResult<()> {
        match (self, commit) {
            (Self::Sqlite(conn), true) => AnsiTransactionManager::commit_transaction(conn),
            (Self::Sqlite(conn), false) => AnsiTransactionManager::rollback_transaction(conn),
            (Self::Postgres(conn), true) => AnsiTransactionManager::commit_transaction(conn),
            (Self::Postgres(conn), false) => AnsiTransactionManager::rollback_transaction(conn),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Makes the pool drop this connection when it comes back.
    pub fn mark_faulty(&mut self, reason: &dyn std::fmt::Display) {
        if let Some(watch) = self.instrumentation().downcast_mut::<FaultWatch>() {
            watch.mark(reason.to_string());
        }
    }

    /// Whether this connection met an error after which it must not be
    /// used again (the server closed it, its SQLite file became read-only…).
    fn has_fault(&mut self) -> bool {
        self.instrumentation().downcast_ref::<FaultWatch>().is_some_and(|watch| watch.fault().is_some())
    }
}

/// An r2d2 manager that keeps the real connection error (the derived
/// `establish` of a multi-connection hides it).
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.url.connect().map_err(diesel::r2d2::Error::ConnectionError)
    }

    /// Unused: the pool does not test connections; `Db` does, where needed.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken() || conn.has_fault()
    }
}
