//! Storage: the connection pool, migrations, and one module per table.

pub mod audit;
mod connection;
pub mod email_tokens;
pub mod faults;
pub mod leases;
mod migrations;
pub mod outbox;
pub mod readiness;
pub mod schema;
pub mod sessions;
pub mod throttle_hits;
pub mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
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
            // A PostgreSQL server may close idle connections (a restart, a
            // failover, a proxy's idle timeout): test each one on check-out
            // so no request gets a dead one. A SQLite connection cannot go
            // away like that; one that met a fault is dropped on return.
            .test_on_check_out(backend == Backend::Postgres)
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

    /// Runs blocking database work off the async workers.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let (pool, clock) = (self.pool.clone(), self.clock.clone());
        let span = tracing::debug_span!("db");
        web::block(move || {
            let _entered = span.enter();
            let _clock = clock.enter();
            let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            work(&mut conn).map_err(DbError::from)
        })
        .instrument(tracing::Span::current())
        .await
        .map_err(|_| DbError::Panicked)?
    }

    /// The same, for code that is already on a blocking thread (the mail
    /// worker, the command-line tools).
    pub fn run_blocking<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, DieselError>,
    ) -> Result<T, DbError> {
        let _clock = self.clock.enter();
        let mut conn = self.pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
        work(&mut conn).map_err(DbError::from)
    }

    /// Readiness: whether the database takes a write now (one row of the
    /// `readiness` table), so a read-only, full or unwritable database is
    /// reported, not only an unreachable one.
    ///
    /// # Errors
    /// The outage or bug that stopped the write.
    pub async fn check_writable(&self) -> Result<(), DbError> {
        self.run(|conn| readiness::touch(conn, now())).await
    }
}

/// Logs what the pool meets when it opens or tests connections. A
/// connection the server closed is replaced (INFO); a database that refuses
/// new connections is said once at WARN, then at DEBUG on every retry,
/// until a connection opens again (INFO). Usher answers 503 meanwhile.
#[derive(Clone, Debug, Default)]
struct PoolLog {
    refusing: Arc<AtomicBool>,
}

impl r2d2::HandleError<diesel::r2d2::Error> for PoolLog {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        match error {
            diesel::r2d2::Error::QueryError(error) => {
                tracing::info!(%error, "replacing a database connection that failed its check");
            }
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
