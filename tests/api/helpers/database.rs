//! A fresh database per test, removed afterwards.

use std::io::Write;
use std::sync::Once;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tempfile::TempDir;

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The server URL (any database on it) where test databases are created.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `USHER_TEST_POSTGRES_URL` is set; otherwise `None`,
    /// after saying once on the terminal that those tests are skipped.
    pub fn postgres() -> Option<Self> {
        static SKIP_NOTICE: Once = Once::new();
        match std::env::var("USHER_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ => {
                SKIP_NOTICE.call_once(|| {
                    // Written past the test harness's capture, so it shows in every run.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nSKIPPED: PostgreSQL tests (set USHER_TEST_POSTGRES_URL=postgres://… to run them)\n"
                    );
                });
                None
            }
        }
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("usher.db").to_string_lossy().into_owned();
                Self { url, postgres: None, _dir: Some(dir) }
            }
            Backend::Postgres(server_url) => {
                let name = format!("usher_test_{}", random_suffix());
                let mut admin = PgConnection::establish(server_url).expect("connect to USHER_TEST_POSTGRES_URL");
                admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let mut url = url::Url::parse(server_url).expect("USHER_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Self { url: url.to_string(), postgres: Some((server_url.clone(), name)), _dir: None }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server_url, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(server_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn random_suffix() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..12).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect()
}
