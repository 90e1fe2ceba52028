//! Which database errors mean the connection, not the query, is at fault,
//! and a watch on every connection that remembers such an error so the pool
//! drops that connection instead of handing it out again.
//!
//! SQLite reports its faults only as text: diesel keeps `sqlite3_errmsg`
//! and maps every code except constraint violations to `Unknown`. The texts
//! are SQLite's fixed strings for the primary result codes.

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// SQLite errors after which a connection cannot be trusted: the file became
/// read-only (`SQLITE_READONLY`; a connection opened meanwhile stays
/// read-only for good), I/O failed (`SQLITE_IOERR`), the disk is full
/// (`SQLITE_FULL`), the file cannot be opened (`SQLITE_CANTOPEN`) or is not
/// a database any more (`SQLITE_NOTADB`, `SQLITE_CORRUPT`).
const SQLITE_FAULTS: [&str; 6] = [
    "attempt to write a readonly database",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "file is not a database",
    "database disk image is malformed",
];

/// PostgreSQL messages of a lost server connection, for errors that reach
/// diesel before libpq marks the connection bad.
const POSTGRES_CONNECTION_LOST: [&str; 6] = [
    "terminating connection",
    "server closed the connection",
    "no connection to the server",
    "could not receive data from server",
    "connection to server was lost",
    "ssl connection has been closed unexpectedly",
];

/// SQLite is busy (`SQLITE_BUSY`, `SQLITE_LOCKED`): a retry later will do;
/// the connection itself is fine.
const SQLITE_BUSY: [&str; 2] = ["database is locked", "database table is locked"];

/// True when the connection that returned `error` must not be used again:
/// the server closed it, it reaches a read-only PostgreSQL (a standby after
/// a failover), or SQLite cannot write or read its files through it. These
/// are outages (503), never bugs.
pub fn is_connection_fault(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, info) => {
            matches!(
                kind,
                DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand
                    | DatabaseErrorKind::ReadOnlyTransaction
            ) || message_matches(info.message(), &SQLITE_FAULTS)
                || message_matches(info.message(), &POSTGRES_CONNECTION_LOST)
        }
        _ => false,
    }
}

/// True when the server closed the connection, or it could not send: work
/// that failed so can run again on another connection if it is idempotent.
pub fn is_lost_connection(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, info) => {
            matches!(kind, DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand)
                || message_matches(info.message(), &POSTGRES_CONNECTION_LOST)
        }
        _ => false,
    }
}

/// True for errors worth a 503 and a retry: connection faults, and a busy
/// SQLite file or a serialization failure, where the same work succeeds
/// later on the same connection.
pub fn is_transient(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) if message_matches(info.message(), &SQLITE_BUSY) => true,
        DieselError::BrokenTransactionManager => true,
        other => is_connection_fault(other),
    }
}

fn message_matches(message: &str, needles: &[&str]) -> bool {
    let message = message.to_ascii_lowercase();
    needles.iter().any(|needle| message.contains(needle))
}

/// Installed on every connection: notes the first error that shows the
/// connection itself is at fault. Diesel reports every statement's outcome
/// here, so a fault is noticed even when the work that met it swallowed the
/// error (the session store and the mail composer wrap theirs).
#[derive(Debug, Default)]
pub struct FaultWatch {
    fault: Option<String>,
}

impl FaultWatch {
    /// The error that made the connection unusable, if any.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// Marks the connection unusable for `reason` (e.g. a failed test).
    pub fn mark(&mut self, reason: String) {
        self.fault.get_or_insert(reason);
    }
}

impl Instrumentation for FaultWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(error), .. } = event
            && self.fault.is_none()
            && is_connection_fault(error)
        {
            self.fault = Some(error.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::{is_connection_fault, is_lost_connection, is_transient};

    fn unknown(message: &str) -> Error {
        Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn sqlite_file_faults_and_lost_servers_are_connection_faults() {
        for message in [
            "attempt to write a readonly database",
            "disk I/O error",
            "database or disk is full",
            "unable to open database file",
            "terminating connection due to administrator command",
            "server closed the connection unexpectedly",
        ] {
            assert!(is_connection_fault(&unknown(message)), "{message}");
            assert!(is_transient(&unknown(message)), "{message}");
        }
        let closed = Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::new()));
        assert!(is_connection_fault(&closed));
        let standby = Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, Box::new(String::new()));
        assert!(is_connection_fault(&standby));
    }

    #[test]
    fn only_a_closed_connection_is_lost() {
        let closed = Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::new()));
        assert!(is_lost_connection(&closed));
        assert!(is_lost_connection(&unknown("terminating connection due to administrator command")));
        let standby = Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, Box::new(String::new()));
        assert!(!is_lost_connection(&standby), "a standby answers: running again changes nothing");
        assert!(!is_lost_connection(&unknown("disk I/O error")));
    }

    #[test]
    fn busy_files_are_transient_but_keep_their_connection() {
        assert!(is_transient(&unknown("database is locked")));
        assert!(!is_connection_fault(&unknown("database is locked")));
    }

    #[test]
    fn bugs_and_constraint_violations_are_neither() {
        let unique = Error::DatabaseError(DatabaseErrorKind::UniqueViolation, Box::new("UNIQUE".to_owned()));
        for error in [unique, unknown("no such column: foo"), Error::NotFound] {
            assert!(!is_connection_fault(&error), "{error}");
            assert!(!is_transient(&error), "{error}");
        }
    }
}
