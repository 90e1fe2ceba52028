//! The outbox worker: a thread that sends queued mail.
//!
//! Rows are leased with one conditional UPDATE, so several instances on one
//! database never send a message twice; a crashed worker's lease runs out
//! and another picks the row up. The first attempt composes the message
//! (minting its link or code) and keeps it encrypted in the row, so every
//! retry sends the same bytes under the same Message-ID; the copy is wiped
//! once the row is finished. The request that queues mail wakes the worker
//! at once; mail queued by other instances is found by polling.

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

/// Far longer than one SMTP conversation (20 s per command), so a lease
/// never runs out while its holder is still sending.
const LEASE_SECS: i64 = 600;
const BATCH: i64 = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    pub retry_base: Duration,
    pub max_attempts: u32,
    pub poll_interval: Duration,
}

pub struct MailWorker {
    db: Db,
    transport: Transport,
    composer: Composer,
    sealer: Sealer,
    settings: WorkerSettings,
    /// Names this worker's leases.
    owner: String,
}

/// Wakes and stops the worker. Cheap to clone.
#[derive(Clone)]
pub struct MailWorkerHandle {
    wake: Sender<()>,
    stopped: Arc<AtomicBool>,
}

impl MailWorkerHandle {
    /// Asks the worker to look at the outbox now (coalesces with pending wakes).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
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
    /// The database is away: try again later.
    Outage(String),
    /// The row can never become a message (e.g. an address lettre refuses).
    Invalid(String),
    /// Another worker took the row over.
    LeaseLost,
}

impl From<DbError> for PrepareError {
    fn from(error: DbError) -> Self {
        Self::Outage(error.to_string())
    }
}

impl MailWorker {
    pub fn new(db: Db, transport: Transport, composer: Composer, sealer: Sealer, settings: WorkerSettings) -> Self {
        let owner: String = random_secret::<8>().iter().map(|b| format!("{b:02x}")).collect();
        Self { db, transport, composer, sealer, settings, owner }
    }

    pub fn spawn(self) -> (MailWorkerHandle, JoinHandle<()>) {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let stopped = Arc::new(AtomicBool::new(false));
        let handle = MailWorkerHandle { wake, stopped: stopped.clone() };
        let thread = std::thread::Builder::new()
            .name("usher-mail".into())
            .spawn(move || {
                self.db.clock().install();
                self.run(&woken, &stopped)
            })
            .expect("spawn the mail worker");
        (handle, thread)
    }

    fn run(self, woken: &Receiver<()>, stopped: &AtomicBool) {
        tracing::info!(owner = %self.owner, "mail worker started");
        while !stopped.load(Ordering::SeqCst) {
            // A bug in one message must not stop the delivery of all the others.
            match catch_unwind(AssertUnwindSafe(|| self.send_due_mail())) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "mail worker cannot reach the database; will retry"),
                Err(_) => tracing::error!("mail worker panicked; its lease will run out and the mail will be retried"),
            }
            match woken.recv_timeout(self.settings.poll_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        tracing::info!("mail worker stopped");
    }

    /// Sends everything due, batch after batch, until nothing is left that
    /// this worker can lease.
    pub fn send_due_mail(&self) -> Result<(), DbError> {
        loop {
            let due = self.db.run_blocking(|conn| outbox::due(conn, now(), BATCH))?;
            let mut leased_any = false;
            for id in due {
                let now = now();
                let lease = self.db.run_blocking(|conn| outbox::lease(conn, id, &self.owner, now, now + LEASE_SECS))?;
                if let Some(row) = lease {
                    leased_any = true;
                    self.deliver(row)?;
                }
            }
            if !leased_any {
                return Ok(());
            }
        }
    }

    fn deliver(&self, row: OutboxRow) -> Result<(), DbError> {
        if now() >= row.send_before {
            tracing::warn!(id = row.id, kind = %row.kind, "mail not sent: its link would have expired");
            return self.finish(&row, FinalState::Expired, Some("not sent in time; its link would have expired"));
        }
        let prepared = match self.prepare(&row) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return self.finish(&row, FinalState::Skipped, None),
            Err(PrepareError::Outage(error)) => return self.retry_or_give_up(&row, &error),
            Err(PrepareError::Invalid(error)) => {
                tracing::error!(id = row.id, %error, "mail cannot be composed; marked dead");
                return self.finish(&row, FinalState::Dead, Some(&error));
            }
            Err(PrepareError::LeaseLost) => {
                tracing::warn!(id = row.id, "lost the lease on a mail; another worker has it");
                return Ok(());
            }
        };
        match self.transport.send_raw(&prepared.envelope, &prepared.bytes) {
            Ok(()) => {
                self.log_sent(&row, &prepared);
                self.mark_sent(&row, prepared.minted_token_id)
            }
            Err(SendError::Permanent(error)) => {
                tracing::error!(id = row.id, %error, "mail refused permanently; marked dead");
                self.finish(&row, FinalState::Dead, Some(&error))
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
            tracing::error!(id = row.id, attempts, %error, "mail failed too often; marked dead");
            return self.finish(row, FinalState::Dead, Some(error));
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
        self.db.run_blocking(|conn| outbox::finish(conn, row.id, &self.owner, state, error, now()))?;
        Ok(())
    }
}

/// Database trouble while composing is worth a retry; anything else (a
/// template or an address lettre refuses) will fail again.
fn classify_compose_error(error: anyhow::Error) -> PrepareError {
    match error.downcast::<diesel::result::Error>() {
        Ok(query_error) => {
            let error = DbError::from(query_error);
            if error.is_outage() {
                PrepareError::Outage(error.to_string())
            } else {
                PrepareError::Invalid(error.to_string())
            }
        }
        Err(other) => PrepareError::Invalid(format!("{other:#}")),
    }
}
