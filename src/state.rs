//! What every handler can reach.

use std::sync::Arc;

use crate::auth::{HashError, KeyRing, PasswordHasher};
use crate::config::Config;
use crate::db::Db;
use crate::domain::{CodeHasher, EmailAddress, PasswordPolicy, PasswordProblems};
use crate::mail::MailWorkerHandle;
use crate::throttle::{Bucket, Throttle};
use crate::web::AppError;

pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub hasher: PasswordHasher,
    pub codes: CodeHasher,
    pub mail: MailWorkerHandle,
    pub throttle: Throttle,
    /// Seals and opens stored authenticator secrets.
    pub keys: KeyRing,
}

impl AppState {
    fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: usize::from(self.config.settings.password_min_length) }
    }

    /// Checks a new password against the policy on the hashing pool (the
    /// strength estimate takes milliseconds of CPU) and returns it
    /// normalised. The account's address, when known, counts as guessable.
    pub async fn check_new_password(
        &self,
        password: &str,
        confirmation: &str,
        email: Option<&EmailAddress>,
    ) -> Result<Result<String, PasswordProblems>, HashError> {
        let policy = self.password_policy();
        let local_part = email.map(|email| email.local_part().to_owned()).unwrap_or_default();
        let (password, confirmation) = (password.to_owned(), confirmation.to_owned());
        self.hasher.run(move || policy.check_each(&password, &confirmation, &[&local_part])).await
    }

    /// Counts one attempt against each bucket, in one transaction; refuses
    /// with a 429 (counting nothing more) once a bucket is full. Returns the
    /// hits, for `Throttle::release`.
    pub async fn rate_limit(&self, buckets: Vec<Bucket>) -> Result<Vec<i64>, AppError> {
        let throttle = self.throttle;
        let verdict = self
            .db
            .run(move |conn| {
                conn.write(|conn| {
                    let now = crate::db::now();
                    let mut hits = Vec::new();
                    for bucket in &buckets {
                        match throttle.take(conn, bucket, now)? {
                            Ok(hit) => hits.extend(hit),
                            Err(wait) => return Ok(Err(wait)),
                        }
                    }
                    Ok(Ok(hits))
                })
            })
            .await?;
        verdict.map_err(AppError::from)
    }
}
