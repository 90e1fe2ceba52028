//! The outbox worker: a few sender threads that send queued mail.
//!
//! Rows are leased with one conditional UPDATE, so several instances on one
//! database never send a message twice. A lease is short (`--mail-lease`)
//! and renewed while its holder works on the row, so a worker that was
//! killed mid-send loses it within one lease period and another instance (or
//! the restarted one) sends the message then. The first attempt composes the message
//! (minting its link or code) and keeps it encrypted in the row, so every
//! retry sends the same bytes under the same Message-ID; the copy is wiped
//! once the row is finished. The request that queues mail wakes the worker
//! at once; mail queued by other instances is found by polling.
//!
//! Each instance runs `--mail-connections` senders, so at most that many
//! SMTP transactions are open at once; they share one connection pool of
//! that size. Every sender leases under a name of its own, so one can never
//! renew or finish a row another holds. A wake reaches one idle sender; a
//! sender that leases a row passes the wake on, so a backlog draws in the
//! idle others one by one. One account's mail still goes out in the order
//! it was queued (see `outbox::has_older_due`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lettre::address::Envelope;

use super::messages::{Composer, MailKind};
use super::sealer::Sealer;
use super::transport::{SendError, Transport};
use crate::db::outbox::{self, FinalState, OutboxRow};
use crate::db::{Db, DbError, email_tokens, now};
use crate::domain::random_secret;

const BATCH: i64 = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How the worker paces itself.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    /// First wait after a temporary failure; doubles per attempt.
    pub retry_base: Duration,
    /// Attempts before a row is marked dead.
    pub max_attempts: u32,
    /// How often to look for mail queued by other instances.
    pub poll_interval: Duration,
    /// How long a claim on a row lasts unless renewed; renewed every third
    /// of it while the row is worked on. Whole seconds, at least two.
    pub lease: Duration,
}

impl WorkerSettings {
    fn lease_secs(&self) -> i64 {
        i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX).max(2)
    }
}

/// One sender of the outbox worker; [`MailWorker::spawn`] starts the others
/// as copies that share its transport.
#[derive(Clone)]
pub struct MailWorker {
    db: Db,
    transport: Arc<Transport>,
    composer: Arc<Composer>,
    sealer: Sealer,
    settings: WorkerSettings,
    /// Names this sender's leases; no two senders share one.
    owner: String,
}

/// Wakes and stops the worker's senders. Cheap to clone.
#[derive(Clone)]
pub struct MailWorkerHandle {
    wake: Sender<()>,
    stopped: Arc<AtomicBool>,
}

impl MailWorkerHandle {
    /// Asks an idle sender to look at the outbox now (coalesces with a
    /// pending wake).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Stops every sender once it has finished the message in hand: the
    /// first to wake passes the wake on to the next (see `run`).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// A message ready to go out.
struct Prepared {
    envelope: Envelope,
    bytes: Vec<u8>,
    /// Shown in the log in file mode (only on the attempt that composed it).
    links: Vec<String>,
    minted_token_id: Option<i64>,
}

enum PrepareError {
    /// The database is away or failing: try again once it is back.
    Outage(DbError),
    /// The row can never become a message (e.g. an address lettre refuses).
    Invalid(String),
    /// Another worker took the row over.
    LeaseLost,
}

impl From<DbError> for PrepareError {
    fn from(error: DbError) -> Self {
        Self::Outage(error)
    }
}

impl MailWorker {
    /// A sender over `db` that sends through `transport`; [`MailWorker::spawn`]
    /// starts it with its copies.
    pub fn new(db: Db, transport: Transport, composer: Composer, sealer: Sealer, settings: WorkerSettings) -> Self {
        let (transport, composer) = (Arc::new(transport), Arc::new(composer));
        Self { db, transport, composer, sealer, settings, owner: new_owner() }
    }

    /// Starts `senders` threads (at least one), each leasing under a name
    /// of its own. Give the SMTP transport a pool of the same size (see
    /// [`Transport::smtp`]) so every sender keeps its connection.
    ///
    /// # Panics
    /// If the operating system refuses a thread.
    pub fn spawn(self, senders: usize) -> (MailWorkerHandle, Vec<JoinHandle<()>>) {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let handle = MailWorkerHandle { wake, stopped: Arc::new(AtomicBool::new(false)) };
        let threads = (0..senders.max(1))
            .map(|i| {
                let sender = Self { owner: new_owner(), ..self.clone() };
                let (handle, woken) = (handle.clone(), woken.clone());
                std::thread::Builder::new()
                    .name(format!("usher-mail-{i}"))
                    .spawn(move || {
                        sender.db.clock().install();
                        sender.run(&woken, &handle)
                    })
                    .expect("spawn a mail sender")
            })
            .collect();
        (handle, threads)
    }

    fn run(self, woken: &Receiver<()>, handle: &MailWorkerHandle) {
        tracing::info!(owner = %self.owner, "mail sender started");
        // What stopped the last round, so a lasting outage is said once,
        // not on every poll.
        let mut failing: Option<String> = None;
        while !handle.is_stopped() {
            // A bug in one message must not stop the delivery of all the others.
            match catch_unwind(AssertUnwindSafe(|| self.send_due_mail(handle))) {
                Ok(Ok(())) => {
                    if failing.take().is_some() {
                        tracing::info!("mail worker reaches the database again; queued mail is being sent");
                    }
                }
                Ok(Err(error)) => {
                    let said = error.to_string();
                    if failing.as_deref() != Some(said.as_str()) {
                        if error.is_outage() {
                            tracing::warn!(%error, "mail waits in the outbox: the database is unavailable; will retry");
                        } else {
                            tracing::error!(%error, "mail worker stopped by a database error; will retry");
                        }
                    } else {
                        tracing::debug!(%error, "mail worker still cannot use the database");
                    }
                    failing = Some(said);
                }
                Err(_) => tracing::error!("mail worker panicked; its lease will run out and the mail will be retried"),
            }
            match woken.recv_timeout(self.settings.poll_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // The stop reached this sender: pass it on to an idle one.
        handle.wake();
        tracing::info!(owner = %self.owner, "mail sender stopped");
    }

    /// Sends everything due, batch after batch, until nothing is left that
    /// this sender can lease. Each lease wakes an idle sender, which joins
    /// in if more is due.
    fn send_due_mail(&self, others: &MailWorkerHandle) -> Result<(), DbError> {
        loop {
            let due = self.db.run_blocking(|conn| outbox::due(conn, now(), BATCH))?;
            let mut leased_any = false;
            for id in due {
                if others.is_stopped() {
                    return Ok(());
                }
                let now = now();
                let until = now + self.settings.lease_secs();
                let lease = self.db.run_blocking(|conn| outbox::lease(conn, id, &self.owner, now, until))?;
                let Some(row) = lease else { continue };
                // Checked once the lease is held, so of two senders taking
                // an account's rows at once, the newer one always sees the older.
                if let Some(user_id) = row.user_id
                    && self.db.run_blocking(|conn| outbox::has_older_due(conn, user_id, row.id, now))?
                {
                    self.db.run_blocking(|conn| outbox::release(conn, row.id, &self.owner))?;
                    continue;
                }
                leased_any = true;
                others.wake();
                self.deliver_keeping_lease(row)?;
            }
            if !leased_any {
                return Ok(());
            }
        }
    }

    /// Delivers a leased row while a second thread renews the lease every
    /// third of its period. The renewals stop when this returns or panics,
    /// or when the process dies: then the lease runs out within one period.
    fn deliver_keeping_lease(&self, row: OutboxRow) -> Result<(), DbError> {
        let (done, finished) = crossbeam_channel::bounded::<()>(0);
        let (db, owner, id) = (self.db.clone(), self.owner.clone(), row.id);
        let lease_secs = self.settings.lease_secs();
        std::thread::scope(|scope| {
            scope.spawn(move || keep_lease(&db, id, &owner, lease_secs, &finished));
            // Dropped on return and on unwinding: the keeper sees the
            // channel close and stops before the scope joins it.
            let _done = done;
            self.deliver(row)
        })
    }

    fn deliver(&self, row: OutboxRow) -> Result<(), DbError> {
        if now() >= row.send_before {
            tracing::warn!(id = row.id, kind = %row.kind, "mail not sent: its link would have expired");
            return self.finish(&row, FinalState::Expired, Some("not sent in time; its link would have expired"));
        }
        let prepared = match self.prepare(&row) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return self.finish(&row, FinalState::Skipped, None),
            Err(PrepareError::Outage(error)) => {
                // Not the message's fault: hand the row back without
                // counting the attempt, and stop this round (the caller
                // says so once). If the database refuses even that, the
                // lease runs out.
                let _ = self.db.run_blocking(|conn| outbox::release(conn, row.id, &self.owner));
                return Err(error);
            }
            Err(PrepareError::Invalid(error)) => {
                self.finish(&row, FinalState::Dead, Some(&error))?;
                tracing::error!(id = row.id, %error, "mail cannot be composed; marked dead");
                return Ok(());
            }
            Err(PrepareError::LeaseLost) => {
                tracing::warn!(id = row.id, "lost the lease on a mail; another worker has it");
                return Ok(());
            }
        };
        // Confirms the lease is still ours and gives the send a whole period.
        let until = now() + self.settings.lease_secs();
        if !self.db.run_blocking(|conn| outbox::renew_lease(conn, row.id, &self.owner, until))? {
            tracing::warn!(id = row.id, "lost the lease on a mail before sending it; another worker has it");
            return Ok(());
        }
        match self.transport.send_raw(&prepared.envelope, &prepared.bytes) {
            Ok(()) => {
                self.log_sent(&row, &prepared);
                self.mark_sent(&row, prepared.minted_token_id)
            }
            Err(SendError::Permanent(error)) => {
                self.finish(&row, FinalState::Dead, Some(&error))?;
                tracing::error!(id = row.id, %error, "mail refused permanently; marked dead");
                Ok(())
            }
            Err(SendError::Temporary(error)) => self.retry_or_give_up(&row, &error),
        }
    }

    /// The stored message, or a newly composed one that is stored (sealed)
    /// before it is first sent.
    fn prepare(&self, row: &OutboxRow) -> Result<Option<Prepared>, PrepareError> {
        let envelope = self.envelope(row)?;
        if let Some(bytes) = row.payload.as_deref().and_then(|sealed| self.sealer.open(sealed)) {
            return Ok(Some(Prepared { envelope, bytes, links: Vec::new(), minted_token_id: row.minted_token_id }));
        }
        let composed = match self.db.run_blocking(|conn| Ok(self.composer.compose(conn, row)))? {
            Ok(Some(composed)) => composed,
            Ok(None) => return Ok(None),
            Err(error) => return Err(classify_compose_error(error)),
        };
        let bytes = composed.message.formatted();
        let sealed = self.sealer.seal(&bytes);
        let minted_token_id = composed.minted_token_id;
        if !self.db.run_blocking(|conn| outbox::store_payload(conn, row.id, &self.owner, &sealed, minted_token_id))? {
            return Err(PrepareError::LeaseLost);
        }
        Ok(Some(Prepared { envelope, bytes, links: composed.links, minted_token_id }))
    }

    fn envelope(&self, row: &OutboxRow) -> Result<Envelope, PrepareError> {
        let to =
            row.recipient.parse().map_err(|e| PrepareError::Invalid(format!("recipient {:?}: {e}", row.recipient)))?;
        let from = self.composer.config.settings.mail_from.email.clone();
        Envelope::new(Some(from), vec![to]).map_err(|e| PrepareError::Invalid(e.to_string()))
    }

    fn log_sent(&self, row: &OutboxRow, prepared: &Prepared) {
        if self.transport.is_files() {
            // File mode is for a first run on a laptop: make the links clickable from the log.
            for link in &prepared.links {
                tracing::info!(to = %row.recipient, kind = %row.kind, %link, "mail written to a file");
            }
        } else {
            tracing::info!(id = row.id, kind = %row.kind, "mail sent");
        }
    }

    /// Finishes the row and, in the same transaction, voids the secrets
    /// that older mails of its kind carried.
    fn mark_sent(&self, row: &OutboxRow, minted_token_id: Option<i64>) -> Result<(), DbError> {
        let purposes = MailKind::parse(&row.kind).map_or(&[][..], MailKind::secret_purposes);
        let finished = self.db.run_blocking(|conn| {
            conn.write(|conn| {
                let now = now();
                let finished = outbox::finish(conn, row.id, &self.owner, FinalState::Sent, None, now)?;
                if let (true, Some(user_id), Some(newest)) = (finished, row.user_id, minted_token_id) {
                    email_tokens::void_older(conn, user_id, purposes, newest, now)?;
                }
                Ok(finished)
            })
        })?;
        if !finished {
            tracing::warn!(id = row.id, "sent a mail whose lease had run out");
        }
        Ok(())
    }

    fn retry_or_give_up(&self, row: &OutboxRow, error: &str) -> Result<(), DbError> {
        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        if attempts >= self.settings.max_attempts {
            self.finish(row, FinalState::Dead, Some(error))?;
            tracing::error!(id = row.id, attempts, %error, "mail failed too often; marked dead");
            return Ok(());
        }
        let wait = self.backoff(attempts);
        tracing::warn!(id = row.id, attempts, %error, retry_in = ?wait, "mail failed; will retry");
        let at = now() + wait.as_secs().max(1) as i64;
        self.db.run_blocking(|conn| outbox::retry_later(conn, row.id, &self.owner, error, at))?;
        Ok(())
    }

    /// `retry_base`, doubling with each attempt, at most an hour.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.settings.retry_base.saturating_mul(factor).min(MAX_BACKOFF)
    }

    fn finish(&self, row: &OutboxRow, state: FinalState, error: Option<&str>) -> Result<(), DbError> {
        self.db
            .run_blocking(|conn| conn.write(|conn| outbox::finish(conn, row.id, &self.owner, state, error, now())))?;
        Ok(())
    }
}

/// A random name for one sender's leases: 16 hex digits.
fn new_owner() -> String {
    random_secret::<8>().iter().map(|b| format!("{b:02x}")).collect()
}

/// Renews the lease on row `id` every third of its period until `finished`
/// closes. A failed renewal is said once; the send goes on either way (it
/// cannot be called back), so it is the lease that bounds a dead worker.
fn keep_lease(db: &Db, id: i64, owner: &str, lease_secs: i64, finished: &Receiver<()>) {
    let every = Duration::from_millis(u64::try_from(lease_secs).unwrap_or(u64::MAX).saturating_mul(1000) / 3);
    // Lease times follow this server's clock, as the worker's do.
    db.clock().install();
    let mut warned = false;
    loop {
        match finished.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match db.run_blocking(|conn| outbox::renew_lease(conn, id, owner, now() + lease_secs)) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(id, "lost the lease on a mail while working on it; another worker may send it too");
                return;
            }
            Err(error) if !warned => {
                warned = true;
                tracing::warn!(id, %error, "cannot renew the lease on a mail being sent; will keep trying");
            }
            Err(_) => {}
        }
    }
}

/// Database trouble while composing (an outage, or a connection at fault)
/// is worth a retry; anything else (a template or an address lettre
/// refuses) will fail again.
fn classify_compose_error(error: anyhow::Error) -> PrepareError {
    match error.downcast::<diesel::result::Error>() {
        Ok(query_error) => {
            let error = DbError::from(query_error);
            if error.is_outage() { PrepareError::Outage(error) } else { PrepareError::Invalid(error.to_string()) }
        }
        Err(other) => PrepareError::Invalid(format!("{other:#}")),
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::{PrepareError, classify_compose_error};

    fn sqlite_error(message: &str) -> anyhow::Error {
        Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned())).into()
    }

    #[test]
    fn an_unwritable_database_while_composing_is_an_outage_not_a_dead_mail() {
        for message in ["attempt to write a readonly database", "disk I/O error", "database or disk is full"] {
            assert!(matches!(classify_compose_error(sqlite_error(message)), PrepareError::Outage(_)), "{message}");
        }
    }

    #[test]
    fn a_message_that_cannot_be_built_is_invalid() {
        assert!(matches!(classify_compose_error(anyhow::anyhow!("bad address")), PrepareError::Invalid(_)));
        assert!(matches!(classify_compose_error(sqlite_error("no such table: outbox")), PrepareError::Invalid(_)));
    }
}
