//! The outbox worker: a thread that sends queued mail.
//!
//! Rows are leased with one conditional UPDATE, so several instances on one
//! database never send a message twice; a crashed worker's lease runs out
//! and another picks the row up. The request that queues mail wakes the
//! worker at once; mail queued by other instances is found by polling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::messages::Composer;
use super::transport::{SendError, Transport};
use crate::db::outbox::{self, FinalState, OutboxRow};
use crate::db::{Db, DbError, now};
use crate::domain::random_secret;

/// Longer than any SMTP conversation (its timeout is 20 s).
const LEASE_SECS: i64 = 120;
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

impl MailWorker {
    pub fn new(db: Db, transport: Transport, composer: Composer, settings: WorkerSettings) -> Self {
        let owner: String = random_secret::<8>().iter().map(|b| format!("{b:02x}")).collect();
        Self { db, transport, composer, settings, owner }
    }

    pub fn spawn(self) -> (MailWorkerHandle, JoinHandle<()>) {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let stopped = Arc::new(AtomicBool::new(false));
        let handle = MailWorkerHandle { wake, stopped: stopped.clone() };
        let thread = std::thread::Builder::new()
            .name("usher-mail".into())
            .spawn(move || self.run(&woken, &stopped))
            .expect("spawn the mail worker");
        (handle, thread)
    }

    fn run(self, woken: &Receiver<()>, stopped: &AtomicBool) {
        tracing::info!(owner = %self.owner, "mail worker started");
        while !stopped.load(Ordering::SeqCst) {
            if let Err(error) = self.send_due_mail() {
                tracing::warn!(%error, "mail worker cannot reach the database; will retry");
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
        let composed = match self.db.run_blocking(|conn| Ok(self.composer.compose(conn, &row)))? {
            Ok(Some(composed)) => composed,
            Ok(None) => return self.finish(&row, FinalState::Skipped, None),
            Err(error) => {
                return self.retry_or_give_up(&row, &format!("composing failed: {error:#}"));
            }
        };
        match self.transport.send(&composed.message) {
            Ok(()) => {
                if self.transport.is_files() {
                    // File mode is for a first run on a laptop: make the links clickable from the log.
                    for link in &composed.links {
                        tracing::info!(to = %row.recipient, kind = %row.kind, %link, "mail written to a file");
                    }
                } else {
                    tracing::info!(id = row.id, kind = %row.kind, "mail sent");
                }
                self.finish(&row, FinalState::Sent, None)
            }
            Err(SendError::Permanent(error)) => {
                tracing::error!(id = row.id, %error, "mail refused permanently; marked dead");
                self.finish(&row, FinalState::Dead, Some(&error))
            }
            Err(SendError::Temporary(error)) => self.retry_or_give_up(&row, &error),
        }
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
        self.db.run_blocking(|conn| outbox::retry_later(conn, row.id, &self.owner, error, at))
    }

    /// `retry_base`, doubling with each attempt, at most an hour.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.settings.retry_base.saturating_mul(factor).min(MAX_BACKOFF)
    }

    fn finish(&self, row: &OutboxRow, state: FinalState, error: Option<&str>) -> Result<(), DbError> {
        self.db.run_blocking(|conn| outbox::finish(conn, row.id, &self.owner, state, error, now()))
    }
}
