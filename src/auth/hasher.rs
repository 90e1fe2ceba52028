//! Argon2id on a dedicated pool: one thread per core and a bounded queue.
//!
//! Each hash needs 19 MiB and ~20 ms of a core. Running them on actix's
//! blocking pool (hundreds of threads) would let a flood of sign-ins take
//! gigabytes and starve every other page; here excess work waits in a
//! bounded queue and beyond that is refused at once with `Busy`.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::domain::random_secret;

/// OWASP's minimum for Argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

enum Job {
    /// Other CPU-heavy work that must not run on the async workers.
    Run(Box<dyn FnOnce() + Send>),
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: String,
        hash: Arc<str>,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    /// Verified against when the account does not exist, so that an unknown
    /// address costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on the calling thread: for the pool's threads, the command line and benchmarks.
pub fn hash_now(password: &str) -> Result<String, HashError> {
    argon2()
        .hash_password_with_salt(password.as_bytes(), &random_secret::<16>())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// Verifies on the calling thread; a malformed stored hash never matches.
pub fn verify_now(password: &str, hash: &str) -> bool {
    argon2().verify_password(password.as_bytes(), hash).is_ok()
}

impl PasswordHasher {
    pub fn start(threads: usize, queue: usize) -> Self {
        let (jobs, inbox) = crossbeam_channel::bounded(queue);
        for index in 0..threads.max(1) {
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("usher-argon2-{index}"))
                .spawn(move || work(inbox))
                .expect("spawn a password-hashing thread");
        }
        let dummy_hash = hash_now("usher: a password nobody has").expect("hash the dummy password");
        Self { jobs, dummy_hash: dummy_hash.into() }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer.await.map_err(|_| HashError::Failed("hashing thread stopped".into()))?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there
    /// is no account, which always fails after the same amount of work.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { password, hash, reply })?;
        let matched = answer.await.map_err(|_| HashError::Failed("hashing thread stopped".into()))?;
        Ok(matched && known)
    }

    /// Runs other CPU-heavy work (password strength estimation) on the same
    /// bounded pool, so a flood of it cannot stall cheap pages either.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Run(Box::new(move || {
            let _ = reply.send(work());
        })))?;
        answer.await.map_err(|_| HashError::Failed("hashing thread stopped".into()))
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => HashError::Busy,
            TrySendError::Disconnected(_) => HashError::Failed("hashing threads stopped".into()),
        })
    }
}

fn work(inbox: Receiver<Job>) {
    for job in inbox {
        match job {
            Job::Run(work) => work(),
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_now(&password));
            }
            Job::Verify { password, hash, reply } => {
                // The requester may have gone (client disconnected); skip the work then.
                if !reply.is_closed() {
                    let _ = reply.send(verify_now(&password, &hash));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_required_cost_and_verify() {
        let hash = hash_now("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_now("correct horse battery staple", &hash));
        assert!(!verify_now("correct horse battery stapel", &hash));
        assert!(!verify_now("anything", "not a hash"));
        let again = hash_now("correct horse battery staple").unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify_even_with_the_dummy_password() {
        let hasher = PasswordHasher::start(1, 4);
        let matched = hasher.verify("usher: a password nobody has".into(), None).await.unwrap();
        assert!(!matched);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let hasher = PasswordHasher::start(1, 1);
        let pending: Vec<_> = (0..8).map(|_| hasher.hash("x".repeat(20))).collect();
        let results = futures_util::future::join_all(pending).await;
        assert!(results.iter().any(|r| matches!(r, Err(HashError::Busy))));
        assert!(results.iter().any(|r| r.is_ok()));
    }
}
