use std::process::Command;
use std::time::Duration;

use diesel::prelude::*;
use usher::db::invitations::{self, NewInvitation};
use usher::db::leases as lease;
use usher::db::schema::{leases, outbox, users};

use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    the_cleanup_command_deletes_what_expired_and_prints_counts,
    sessions_past_their_absolute_timeout_are_cleaned_up_while_still_fresh,
    the_server_cleans_up_periodically,
    one_instance_at_a_time_holds_the_cleanup_lease,
);

fn run_cleanup_command(app: &TestApp) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["cleanup", "--database-url", &app.database.url, "--unverified-ttl", "1s"])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run usher cleanup");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

async fn the_cleanup_command_deletes_what_expired_and_prints_counts(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-idle-ttl", "1s"), ("--cleanup-interval", "1h")]).await;
    // Ann: verified (her link used and her code voided), signed in once.
    app.signed_in_user("ann@example.com").await;
    // Bob: never verified (a live link and code, which go with his account).
    app.register(&app.browser(), "bob@example.com").await;
    app.mail.wait_for("bob@example.com", 1).await;
    // Make every sent mail look older than a week.
    let week_ago = usher::db::now() - 8 * 24 * 3600;
    diesel::update(outbox::table).set(outbox::finished_at.eq(Some(week_ago))).execute(&mut app.db()).unwrap();
    // An invitation that expired over a month ago goes; a pending one and
    // one that expired yesterday stay.
    let ann = app.user_id("ann@example.com");
    let now = usher::db::now();
    for (email, expires_at) in
        [("old@example.com", now - 31 * 24 * 3600), ("new@example.com", now + 3600), ("late@example.com", now - 3600)]
    {
        let invitation = NewInvitation { email, groups: &[], invited_by: ann, expires_at };
        invitations::insert(&mut app.db(), invitation, expires_at - 3600).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let printed = run_cleanup_command(&app);

    assert_eq!(
        printed, "tokens: 2\nsessions: 1\nmail: 1\nunverified accounts: 1\nthrottle records: 0\ninvitations: 1\n",
        "{printed}"
    );
    let kept: Vec<String> = usher::db::schema::invitations::table
        .select(usher::db::schema::invitations::email)
        .load(&mut app.db())
        .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&"old@example.com".to_owned()), "{kept:?}");
    let counts = app.row_counts();
    assert_eq!((counts.users, counts.email_tokens, counts.sessions, counts.outbox), (1, 0, 0, 0));
    let again = run_cleanup_command(&app);
    assert_eq!(again, "tokens: 0\nsessions: 0\nmail: 0\nunverified accounts: 0\nthrottle records: 0\ninvitations: 0\n");
}

async fn sessions_past_their_absolute_timeout_are_cleaned_up_while_still_fresh(backend: Backend) {
    let settings = [("--session-idle-ttl", "1h"), ("--session-absolute-ttl", "1s"), ("--cleanup-interval", "1h")];
    let app = spawn_app_with(backend, &settings).await;
    app.signed_in_user("ann@example.com").await;
    assert_eq!(app.row_counts().sessions, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let printed = run_cleanup_command(&app);

    assert!(printed.contains("sessions: 1\n"), "{printed}");
    assert_eq!(app.row_counts().sessions, 0);
}

async fn the_server_cleans_up_periodically(backend: Backend) {
    let app = spawn_app_with(backend, &[("--unverified-ttl", "1s"), ("--cleanup-interval", "1s")]).await;
    app.register(&app.browser(), "bob@example.com").await;
    app.mail.wait_for("bob@example.com", 1).await;

    for _ in 0..50 {
        let left: i64 = users::table.count().get_result(&mut app.db()).unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the unverified account was not cleaned up");
}

async fn one_instance_at_a_time_holds_the_cleanup_lease(backend: Backend) {
    let app = spawn_app_with(backend, &[("--cleanup-interval", "1h")]).await;
    let mut conn = app.db();
    for _ in 0..50 {
        let owner: Option<String> = leases::table.find("cleanup").select(leases::owner).first(&mut conn).unwrap();
        if owner.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = usher::db::now();

    // The server took the lease at start; nobody else gets it before it expires.
    assert!(!lease::try_acquire(&mut conn, "cleanup", "other", now, now + 60).unwrap());
    assert!(lease::try_acquire(&mut conn, "cleanup", "other", now + 3600, now + 3700).unwrap());
    assert!(!lease::try_acquire(&mut conn, "cleanup", "third", now + 3601, now + 3700).unwrap());
}

/// Without statistics SQLite may read the admin list's "waiting" filter
/// through the wrong index and sort; the cleanup keeps them current.
#[tokio::test]
async fn cleanup_keeps_sqlite_planner_statistics() {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let app = spawn_app_with(Backend::Sqlite, &[("--cleanup-interval", "1h")]).await;
    app.signed_in_user("ann@example.com").await;
    let stats = |app: &TestApp| {
        diesel::sql_query("SELECT count(*) AS count FROM sqlite_stat1 WHERE tbl = 'users'")
            .get_result::<Count>(&mut app.db())
            .map_or(0, |row| row.count)
    };
    assert_eq!(stats(&app), 0, "no statistics before");

    run_cleanup_command(&app);

    assert!(stats(&app) > 0, "statistics on the users table after a cleanup");
}
