//! Deleting what is no longer needed: spent tokens, timed-out sessions,
//! finished mail, accounts never verified, invitations that ended a month
//! ago; then the query planner's statistics are brought up to date. Runs in
//! batches, so no single
//! statement holds a write lock for long; `usher cleanup` runs it once, and
//! every server runs it periodically on a thread of its own, one instance
//! at a time under a lease.

use std::fmt;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::db::users::User;
use crate::db::{Db, DbError, email_tokens, invitations, leases, now, outbox, sessions, throttle_hits, two_factor};
use crate::domain::random_secret;

const BATCH: i64 = 1000;
/// Sent, dead, expired or skipped mail is kept this long for admins to see.
const FINISHED_MAIL_KEPT_SECS: i64 = 7 * 24 * 3600;
const LEASE_NAME: &str = "cleanup";
/// Counted attempts are kept this long; rate-limit windows should be shorter.
const THROTTLE_RECORDS_KEPT_SECS: i64 = 7 * 24 * 3600;

/// How many rows a run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub tokens: usize,
    pub sessions: usize,
    pub mail: usize,
    pub unverified_accounts: usize,
    pub throttle_records: usize,
    /// Invitations that ended (accepted, withdrawn, expired) long ago.
    pub invitations: usize,
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deleted {} expired or used tokens, {} expired sessions, {} finished mails, {} accounts never verified, \
             {} old throttle records, {} old invitations",
            self.tokens, self.sessions, self.mail, self.unverified_accounts, self.throttle_records, self.invitations
        )
    }
}

/// Deletes everything that has expired, batch after batch.
pub fn run_cleanup(db: &Db, unverified_ttl: Duration) -> Result<CleanupReport, DbError> {
    let now = now();
    let unverified_before = now - unverified_ttl.as_secs() as i64;
    let report = CleanupReport {
        // Accounts first: their tokens, sessions and mail go with them.
        unverified_accounts: in_batches(db, |conn| User::delete_unverified_batch(conn, unverified_before, BATCH))?,
        tokens: in_batches(db, |conn| email_tokens::delete_spent_batch(conn, now, BATCH))?,
        sessions: in_batches(db, |conn| sessions::delete_expired_batch(conn, now, BATCH))?
            + in_batches(db, |conn| two_factor::delete_expired_challenges(conn, now, BATCH))?,
        mail: in_batches(db, |conn| outbox::delete_finished_batch(conn, now - FINISHED_MAIL_KEPT_SECS, BATCH))?,
        throttle_records: in_batches(db, |conn| {
            throttle_hits::delete_older_batch(conn, now - THROTTLE_RECORDS_KEPT_SECS, BATCH)
        })?,
        invitations: in_batches(db, |conn| {
            invitations::delete_ended_batch(conn, now - invitations::ENDED_KEPT_SECS, BATCH)
        })?,
    };
    db.run_blocking(|conn| conn.refresh_planner_statistics())?;
    Ok(report)
}

/// The longest pause between two batches.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Runs `delete_batch` until a batch finds less than a full one. After
/// each full batch it pauses as long as the batch took (at most
/// `MAX_PAUSE`): SQLite's other writers wait for the write lock by polling
/// it, up to 100 ms apart, and a batch begun the instant the last one
/// committed would take the lock again before they look, for the whole run
/// (a request waited out the 5 s busy timeout, and failed, while a million
/// sessions were deleted). So the cleanup holds the lock at most half the
/// time, and leaves it free long enough for a waiting writer to find.
fn in_batches(
    db: &Db,
    mut delete_batch: impl FnMut(&mut crate::db::DbConnection) -> diesel::QueryResult<usize>,
) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let deleted = db.run_blocking(&mut delete_batch)?;
        total += deleted;
        if deleted < BATCH as usize {
            return Ok(total);
        }
        std::thread::sleep(started.elapsed().min(MAX_PAUSE));
    }
}

/// Stops the periodic cleanup thread.
#[derive(Clone)]
pub struct CleanupHandle {
    stop: Sender<()>,
}

impl CleanupHandle {
    pub fn stop(&self) {
        let _ = self.stop.try_send(());
    }
}

/// Runs the cleanup every `interval` on whichever instance takes the lease.
pub fn spawn_periodic(db: Db, unverified_ttl: Duration, interval: Duration) -> CleanupHandle {
    let (stop, stopped) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("usher-cleanup".into())
        .spawn(move || {
            db.clock().install();
            periodic(&db, unverified_ttl, interval, &stopped)
        })
        .expect("spawn the cleanup thread");
    CleanupHandle { stop }
}

fn periodic(db: &Db, unverified_ttl: Duration, interval: Duration, stopped: &Receiver<()>) {
    let owner: String = random_secret::<8>().iter().map(|b| format!("{b:02x}")).collect();
    loop {
        let now = now();
        // The lease lasts one interval: whoever takes it runs, the others skip this round.
        let until = now + interval.as_secs().max(1) as i64 - 1;
        match db.run_blocking(|conn| leases::try_acquire(conn, LEASE_NAME, &owner, now, until)) {
            Ok(true) => match run_cleanup(db, unverified_ttl) {
                Ok(report) => tracing::info!(%report, "cleanup done"),
                Err(error) => tracing::warn!(%error, "cleanup failed; will retry"),
            },
            Ok(false) => tracing::debug!("cleanup runs on another instance"),
            Err(error) => tracing::warn!(%error, "cleanup cannot reach the database; will retry"),
        }
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
