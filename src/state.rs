//! What every handler can reach.

use std::sync::Arc;

use crate::auth::PasswordHasher;
use crate::config::Config;
use crate::db::Db;
use crate::domain::{CodeHasher, PasswordPolicy};
use crate::mail::MailWorkerHandle;

pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub hasher: PasswordHasher,
    pub codes: CodeHasher,
    pub mail: MailWorkerHandle,
}

impl AppState {
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: usize::from(self.config.settings.password_min_length) }
    }
}
