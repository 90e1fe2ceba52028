//! Mail leases: a worker killed while sending loses its claim within one
//! lease period; a live one keeps it however slow the SMTP server is.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use usher::db::DatabaseUrl;
use usher::db::outbox::OutboxRow;
use usher::db::schema::outbox;

use crate::helpers::{
    Backend, Browser, ENCRYPTION_KEY, PASSWORD, SESSION_KEY, TestDatabase, spawn_app_on, spawn_app_with,
};
use crate::on_both_backends;

on_both_backends!(
    mail_held_by_a_killed_worker_is_sent_once_its_lease_runs_out,
    a_live_worker_keeps_its_lease_while_a_slow_server_takes_the_message,
);

fn outbox_rows(database_url: &str) -> Vec<OutboxRow> {
    let mut conn = DatabaseUrl::parse(database_url).connect().unwrap();
    outbox::table.order(outbox::id).load(&mut conn).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An SMTP server that accepts connections and then says nothing, so a
/// sender waits (for its timeout) in the middle of a send. Counts the
/// connections it took.
async fn silent_smtp_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// `usher serve` as a process of its own, so that it can be killed.
struct UsherProcess(Child);

impl Drop for UsherProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn mail_held_by_a_killed_worker_is_sent_once_its_lease_runs_out(backend: Backend) {
    let database = Arc::new(TestDatabase::create(&backend));
    let (silent_smtp, connections) = silent_smtp_server().await;
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "serve",
            "--database-url",
            &database.url,
            "--session-key",
            SESSION_KEY,
            "--encryption-key",
            ENCRYPTION_KEY,
        ])
        .args(["--bind", &format!("127.0.0.1:{port}"), "--smtp-url", &silent_smtp, "--mail-poll-interval", "1s"])
        // By environment, so that a server without the setting still starts.
        .env("USHER_MAIL_LEASE", "2s")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start usher serve");
    let mut first = UsherProcess(child);
    let browser = Browser::new(&format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let healthz = format!("{}/healthz", browser.base);
    let started = Instant::now();
    while !client.get(&healthz).send().await.is_ok_and(|response| response.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "usher serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("password_confirm", PASSWORD)];
    browser.submit("/register", "/register", &fields).await.assert_redirects_to("/verify");

    // The first server has composed the mail and is in the middle of sending it.
    wait_until("the first server is sending", Duration::from_secs(10), || {
        connections.load(Ordering::SeqCst) >= 1
            && outbox_rows(&database.url).first().is_some_and(|row| row.lease_owner.is_some() && row.payload.is_some())
    })
    .await;
    first.0.kill().expect("kill -9 the sending server");
    first.0.wait().unwrap();
    let row = outbox_rows(&database.url).remove(0);
    assert_eq!(row.state, "pending", "{row:?}");

    let second = spawn_app_on(database.clone(), &[]).await;

    // The sink waits 10 s at most: far less than a 10-minute lease, more
    // than the 2 s one plus a poll.
    let mail = second.mail.wait_for("ann@example.com", 1).await;
    assert_eq!(mail.message_id, row.message_id.trim_matches(['<', '>']), "the message the first server composed");
    let fresh = second.browser();
    let confirmed = fresh.submit(&format!("/verify?token={}", mail.verify_token()), "/verify", &[]).await;
    confirmed.assert_redirects_to("/login");
    wait_until("the row is marked sent", Duration::from_secs(10), || outbox_rows(&database.url)[0].state == "sent")
        .await;
    assert_eq!(second.mail.all().len(), 1);
}

async fn a_live_worker_keeps_its_lease_while_a_slow_server_takes_the_message(backend: Backend) {
    // Polling every 100 ms, the second instance would take over a lease
    // that was not renewed as soon as it ran out.
    let overrides = [("--mail-lease", "2s"), ("--mail-poll-interval", "100ms")];
    let first = spawn_app_with(backend, &overrides).await;
    let second = first.spawn_second_instance().await;
    // Three lease periods between the data and the server's answer.
    first.mail.delay_data_reply(Duration::from_secs(6));

    first.register(&first.browser(), "ann@example.com").await.assert_redirects_to("/verify");

    wait_until("the row is marked sent", Duration::from_secs(20), || {
        outbox_rows(&first.database.url)[0].state == "sent"
    })
    .await;
    let row = outbox_rows(&first.database.url).remove(0);
    assert_eq!(row.attempts, 1, "nobody else took the row: {row:?}");
    assert_eq!(first.mail.to("ann@example.com").len(), 1, "sent once");
    drop(second);
}
