//! Argon2id on a dedicated pool: one thread per core and a bounded queue.
//!
//! Each hash needs 19 MiB and ~15 ms of a core. Running them on actix's
//! blocking threads, which serve the database, would let a flood of
//! sign-ins hold up every page; here excess work waits in a bounded queue
//! and beyond that is refused at once with `Busy`.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::domain::random_secret;

/// OWASP's minimum for Argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;
const OUTPUT_BYTES: usize = 32;

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
        hash: String,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
}

/// Verified against when the account does not exist, so that an unknown
/// address costs the same time as a wrong password. Made once with Usher's
/// parameters (a test checks that they still match); its password is no
/// secret, since `verify` never reports a match against it.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$y8Pp/20VnSkZyJaHr5lHhA$AResJ4qole3//Jn7kTwA/C2NYCyxV6a9E2i4FLjXSno";

fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_BYTES)).expect("valid Argon2 parameters")
}

/// Argon2's work memory (19 MiB), kept by each hashing thread and reused by
/// every hash. Allocating it per hash cost a page fault per 4 KiB on every
/// sign-in, and freed blocks made the allocator's heaps grow.
#[derive(Default)]
pub struct WorkMemory(Vec<Block>);

impl WorkMemory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }

    /// Gives back what a costlier stored hash (imported, or made before the
    /// parameters were lowered) needed beyond Usher's own.
    fn shrink_to_own_size(&mut self) {
        let own = params().block_count();
        if self.0.len() > own {
            self.0.truncate(own);
            self.0.shrink_to_fit();
        }
    }

    /// Hashes with Usher's parameters and a new salt, as a PHC string.
    pub fn hash(&mut self, password: &str) -> Result<String, HashError> {
        let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
        let params = params();
        let salt = random_secret::<16>();
        let mut output = [0u8; OUTPUT_BYTES];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, self.blocks(&params))
            .map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
            hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Checks a password against a PHC string with that hash's own
    /// algorithm, version and parameters; a malformed hash never matches.
    pub fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Ok(stored) = PasswordHash::new(phc) else { return false };
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else { return false };
        let (Ok(algorithm), Ok(version), Ok(params)) = (
            Algorithm::try_from(stored.algorithm.as_str()),
            stored.version.map_or(Ok(Version::default()), Version::try_from),
            Params::try_from(&stored),
        ) else {
            return false;
        };
        let mut output = vec![0u8; expected.len()];
        let hashed = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut output,
            self.blocks(&params),
        );
        self.shrink_to_own_size();
        // `Output`'s equality is constant-time.
        hashed.is_ok() && Output::new(&output).is_ok_and(|computed| &computed == expected)
    }
}

/// Hashes on the calling thread: for the command line and tests.
pub fn hash_now(password: &str) -> Result<String, HashError> {
    WorkMemory::default().hash(password)
}

/// Verifies on the calling thread; a malformed stored hash never matches.
pub fn verify_now(password: &str, hash: &str) -> bool {
    WorkMemory::default().verify(password, hash)
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
        Self { jobs }
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
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
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
    let mut memory = WorkMemory::default();
    for job in inbox {
        match job {
            Job::Run(work) => work(),
            Job::Hash { password, reply } => {
                let _ = reply.send(memory.hash(&password));
            }
            Job::Verify { password, hash, reply } => {
                // The requester may have gone (client disconnected); skip the work then.
                if !reply.is_closed() {
                    let _ = reply.send(memory.verify(&password, &hash));
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

    #[test]
    fn reused_work_memory_agrees_with_the_argon2_crate_whatever_it_held_before() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = WorkMemory::default();
        let hash_with = |params: Params, password: &[u8]| {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(password).unwrap().to_string()
        };
        let cheaper = hash_with(Params::new(4096, 3, 1, None).unwrap(), b"older password");
        let costlier = hash_with(Params::new(24_576, 2, 1, None).unwrap(), b"imported password");

        // Each check runs on memory another hash left dirty, and larger or
        // smaller than it needs.
        assert!(memory.verify("older password", &cheaper));
        let ours = memory.hash("correct horse battery staple").unwrap();
        assert!(memory.verify("imported password", &costlier));
        assert_eq!(memory.0.len(), params().block_count(), "a costlier hash's memory is given back");
        assert!(!memory.verify("imported passwore", &costlier));
        assert!(memory.verify("older password", &cheaper));
        assert!(!memory.verify("older passwore", &cheaper));

        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery staple", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"correct horse battery stapel", &parsed).is_err());
        let theirs = hash_with(params(), b"correct horse battery staple");
        assert!(memory.verify("correct horse battery staple", &theirs));
        assert!(!memory.verify("correct horse battery stapel", &theirs));
        assert!(!memory.verify("correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$bm90IGEgaGFzaA"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_hash = hash_now("a password").unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(Params::try_from(&dummy).unwrap(), Params::try_from(&real).unwrap());
        assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify_even_with_the_dummy_password() {
        let hasher = PasswordHasher::start(1, 4);
        assert!(verify_now("usher: a password nobody has", DUMMY_HASH));
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
