//! Storage: the connection pool, migrations, and one module per table.

pub mod audit;
mod connection;
pub mod email_changes;
pub mod email_tokens;
pub mod faults;
pub mod groups;
pub mod invitations;
pub mod leases;
mod migrations;
pub mod outbox;
pub mod readiness;
pub mod schema;
pub mod sessions;
#[cfg(test)]
pub(crate) mod testing;
pub mod throttle_hits;
pub mod two_factor;
pub mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use diesel::r2d2::R2D2Connection;
use diesel::result::Error as DieselError;
use tracing::Instrument;

use crate::clock::Clock;

pub(crate) use connection::on_backend;
pub use connection::{DatabaseUrl, DbConnection};
pub use migrations::run_migrations;

pub type Pool = r2d2::Pool<connection::ConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    #[error("database work panicked")]
    Panicked,
}

impl DbError {
    /// Outages (no connection, a closed or read-only server connection, a
    /// locked, unwritable or full SQLite file, an I/O error) are worth a 503
    /// and a retry; anything else is a bug.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(error) => faults::is_transient(error),
            Self::Panicked => false,
        }
    }
}

/// The handle every part of Usher uses to reach the database. Diesel is
/// synchronous, so all work runs on actix's blocking threads, never on the
/// async workers.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    url: DatabaseUrl,
    pub backend: Backend,
    /// Entered around every job, so its timestamps follow this server's clock.
    clock: Clock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Builds the pool without connecting, so a server can start while the
    /// database is briefly away (readiness reports it).
    pub fn new(url: &DatabaseUrl, max_connections: u32) -> Self {
        let backend = if url.is_postgres() { Backend::Postgres } else { Backend::Sqlite };
        let log = PoolLog::default();
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            // `checkout` tests PostgreSQL connections itself, except for
            // work that may simply be run again (`run_idempotent`).
            .test_on_check_out(false)
            .error_handler(Box::new(log.clone()))
            .event_handler(Box::new(log))
            .build_unchecked(connection::ConnectionManager::new(url.clone()));
        Self { pool, url: url.clone(), backend, clock: Clock::default() }
    }

    /// The same database, its jobs timed by `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The clock this database's jobs run by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A connection outside the pool, for migrations and other one-off work.
    pub fn connect_for_admin(&self) -> anyhow::Result<DbConnection> {
        self.url.connect().map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", self.url.redacted()))
    }

    /// Runs blocking database work off the async workers, on a connection
    /// known to be alive (see [`checkout`]).
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be had within 5 s;
    /// otherwise the work's own error.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let (pool, clock, backend) = (self.pool.clone(), self.clock.clone(), self.backend);
        let span = tracing::debug_span!("db");
        web::block(move || {
            let _entered = span.enter();
            let _clock = clock.enter();
            let mut conn = checkout(&pool, backend)?;
            work(&mut conn).map_err(DbError::from)
        })
        .instrument(tracing::Span::current())
        .await
        .map_err(|_| DbError::Panicked)?
    }

    /// Runs work that may safely run twice (reads, and writes that set
    /// rather than add) without testing the connection first: if the
    /// server had closed it, the work runs again on another one. Saves the
    /// test's round trip on the session lookup every signed-in request makes.
    ///
    /// # Errors
    /// As [`Db::run`].
    pub async fn run_idempotent<T, F>(&self, mut work: F) -> Result<T, DbError>
    where
        F: FnMut(&mut DbConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let (pool, clock, backend) = (self.pool.clone(), self.clock.clone(), self.backend);
        let span = tracing::debug_span!("db");
        web::block(move || {
            let _entered = span.enter();
            let _clock = clock.enter();
            // Each failed try drops its connection, so the pool runs out of
            // dead ones after at most its size.
            for _ in 0..pool.max_size() {
                let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
                match work(&mut conn) {
                    Err(error) if faults::is_lost_connection(&error) => {
                        tracing::info!(%error, "the server had closed a database connection; running again on another");
                    }
                    result => return result.map_err(DbError::from),
                }
            }
            let mut conn = checkout(&pool, backend)?;
            work(&mut conn).map_err(DbError::from)
        })
        .instrument(tracing::Span::current())
        .await
        .map_err(|_| DbError::Panicked)?
    }

    /// [`Db::run`] for code that is already on a blocking thread (the mail
    /// worker, the command-line tools).
    ///
    /// # Errors
    /// As [`Db::run`].
    pub fn run_blocking<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, DieselError>,
    ) -> Result<T, DbError> {
        let _clock = self.clock.enter();
        let mut conn = checkout(&self.pool, self.backend)?;
        work(&mut conn).map_err(DbError::from)
    }

    /// Readiness: whether the database takes a write now (one row of the
    /// `readiness` table), so a read-only, full or unwritable database is
    /// reported, not only an unreachable one.
    ///
    /// # Errors
    /// The outage or bug that stopped the write.
    pub async fn check_writable(&self) -> Result<(), DbError> {
        self.run_idempotent(|conn| readiness::touch(conn, now())).await
    }
}

/// A pooled connection that is alive. A PostgreSQL server may close
/// connections while they sit in the pool (a restart, a failover, a proxy's
/// idle timeout), and work that fails half-way cannot always be run again,
/// so each one is tested with a round trip (`SELECT 1`) first; one that
/// fails is dropped and the next tried. A SQLite connection cannot be
/// closed under Usher; one that met a fault is dropped when it comes back.
fn checkout(pool: &Pool, backend: Backend) -> Result<r2d2::PooledConnection<connection::ConnectionManager>, DbError> {
    for _ in 0..=pool.max_size() {
        let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
        if backend == Backend::Sqlite {
            return Ok(conn);
        }
        match conn.ping() {
            Ok(()) => return Ok(conn),
            Err(error) => {
                tracing::info!(%error, "replacing a database connection that failed its check");
                conn.mark_faulty(&error);
            }
        }
    }
    Err(DbError::Unavailable("every database connection tried was closed".into()))
}

/// Logs what the pool meets when it opens connections: a database that
/// refuses them is said once at WARN, then at DEBUG on every retry, until a
/// connection opens again (INFO). Usher answers 503 meanwhile.
#[derive(Clone, Debug, Default)]
struct PoolLog {
    refusing: Arc<AtomicBool>,
}

impl r2d2::HandleError<diesel::r2d2::Error> for PoolLog {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        match error {
            error if !self.refusing.swap(true, Ordering::SeqCst) => {
                tracing::warn!(%error, "cannot open database connections; will keep trying");
            }
            error => tracing::debug!(%error, "still cannot open database connections"),
        }
    }
}

impl r2d2::HandleEvent for PoolLog {
    fn handle_acquire(&self, _event: r2d2::event::AcquireEvent) {
        if self.refusing.swap(false, Ordering::SeqCst) {
            tracing::info!("database connections open again");
        }
    }
}

/// Seconds since the Unix epoch (UTC) by this thread's clock: every
/// timestamp Usher stores.
pub use crate::clock::now;

/// Makes transactions that take the lock named `name` run one after the
/// other, for a check-then-insert no unique index covers. SQLite's `BEGIN
/// IMMEDIATE` already serialises every writer; PostgreSQL takes a
/// transaction-scoped advisory lock on a hash of the name.
pub fn lock_named(conn: &mut DbConnection, name: &str) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    use sha2::Digest;
    if let DbConnection::Postgres(pg) = conn {
        let digest = sha2::Sha256::digest(name.as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        pg.batch_execute(&format!("SELECT pg_advisory_xact_lock({key})"))?;
    }
    Ok(())
}
