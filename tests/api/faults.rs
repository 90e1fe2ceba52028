//! Server-side faults Usher rides out: PostgreSQL closing every connection
//! while it stays up, and a SQLite file that stops taking writes for a while.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, spawn_app};

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    found: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    gone: i64,
}

/// Terminates every server process of the app's database, as a restart, a
/// failover or a proxy's idle timeout would; each call waits (up to 5 s)
/// until its process is gone. Returns how many there were.
fn terminate_backends(server_url: &str, app: &TestApp) -> i64 {
    let name = app.database.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::establish(server_url).unwrap();
    let counts: Counts = sql_query(format!(
        "SELECT count(*) AS found, count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) AS gone \
         FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .get_result(&mut admin)
    .unwrap();
    assert_eq!(counts.gone, counts.found, "every server process of the database ended");
    counts.gone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_after_postgres_closed_every_connection() {
    let Some(backend) = Backend::postgres() else { return };
    let Backend::Postgres(server_url) = backend.clone() else { unreachable!() };
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;
    // Several pooled connections, all about to be closed under the pool.
    let pages = futures_util::future::join_all((0..6).map(|_| browser.get("/account"))).await;
    assert!(pages.iter().all(|page| page.status == StatusCode::OK));

    // Twice: once with an anonymous sign-in first, once with a signed-in
    // page first (its session lookup runs on an untested connection).
    for sign_in_first in [true, false] {
        let terminated = terminate_backends(&server_url, &app);
        assert!(terminated > 0, "the server held connections");
        for round in 0..3 {
            let other = app.browser();
            if sign_in_first {
                app.sign_in(&other, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
            }
            let account = browser.get("/account").await;
            assert_eq!(account.status, StatusCode::OK, "round {round}: GET /account\n{}", account.body);
            if !sign_in_first {
                app.sign_in(&other, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
            }
            let ready = other.get("/readyz").await;
            assert_eq!(ready.status, StatusCode::OK, "round {round}: /readyz {}", ready.body);
        }
    }
}

/// Files made immutable (`chattr +i`) until dropped: neither new nor open
/// descriptors can write them, as on a read-only remount. The shared-memory
/// index (`-shm`) stays writable: SQLite maps it, and a write to a mapped
/// immutable file kills the process with SIGBUS.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// None where `chattr +i` is not allowed (it needs root and a file
    /// system with the flag), after saying the test is skipped.
    fn files(paths: &[PathBuf]) -> Option<Self> {
        let mut frozen = Self(Vec::new());
        for path in paths {
            let done = Command::new("chattr").arg("+i").arg(path).output();
            if !done.as_ref().is_ok_and(|output| output.status.success()) {
                eprintln!("SKIPPED: cannot make {} immutable with chattr +i: {done:?}", path.display());
                return None;
            }
            frozen.0.push(path.clone());
        }
        Some(frozen)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

async fn sign_up(app: &TestApp, email: &str) -> StatusCode {
    app.register(&app.browser(), email).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_sqlite_file_gives_503s_until_it_is_writable_again() {
    let app = spawn_app(Backend::Sqlite).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let database = PathBuf::from(&app.database.url);
    let files = [database.clone(), with_suffix(&database, "-wal")];

    {
        let Some(_frozen) = Immutable::files(&files) else { return };
        // Twice each: a connection that met the fault must not be reused,
        // and new ones must not open read-only.
        for round in 0..2 {
            let status = sign_up(&app, &format!("bob{round}@example.com")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "round {round}: sign-up");
            let ready = app.browser().get("/readyz").await;
            assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "round {round}: /readyz {}", ready.body);
        }
    }

    for round in 0..3 {
        assert_eq!(sign_up(&app, &format!("carol{round}@example.com")).await, StatusCode::SEE_OTHER, "round {round}");
        let ready = app.browser().get("/readyz").await;
        assert_eq!(ready.status, StatusCode::OK, "round {round}: /readyz {}", ready.body);
        assert_eq!(browser.get("/account").await.status, StatusCode::OK, "round {round}: GET /account");
        let other: Browser = app.browser();
        app.sign_in(&other, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    }
    app.mail.wait_for("carol2@example.com", 1).await;
}
