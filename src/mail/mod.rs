//! Email: what is sent (messages), how (transport), and the outbox worker
//! that sends queued mail and never loses it.

pub mod messages;
mod sealer;
mod transport;
mod worker;

pub use messages::{MailKind, queue, queue_invitation, queue_verification_for_registration, requeue_dead};
pub use sealer::Sealer;
pub use transport::Transport;
pub use worker::{MailWorker, MailWorkerHandle, WorkerSettings};
