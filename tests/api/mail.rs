use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::join_all;
use usher::db::outbox::OutboxRow;
use usher::db::schema::outbox;

use crate::helpers::{Backend, MailSink, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    mail_leaves_at_once_after_the_request,
    mail_is_retried_when_the_smtp_server_was_down_at_first,
    a_resend_while_mail_is_down_keeps_the_delivered_link_working,
    a_permanent_smtp_error_marks_the_mail_dead,
    mail_whose_link_expired_is_never_sent,
    two_instances_send_each_mail_exactly_once,
    mail_goes_out_over_several_connections_at_once,
    one_mail_connection_sends_one_mail_at_a_time,
    one_account_s_mail_goes_out_in_order_and_the_newest_link_works,
    without_smtp_mail_goes_to_files,
);

fn outbox_rows(app: &TestApp) -> Vec<OutboxRow> {
    outbox::table.order(outbox::id).load(&mut app.db()).unwrap()
}

/// A loopback port with nothing listening on it (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn mail_leaves_at_once_after_the_request(backend: Backend) {
    // Polling is slowed to a minute: only the wake-up can deliver in time.
    let app = spawn_app_with(backend, &[("--mail-poll-interval", "60s")]).await;
    app.register(&app.browser(), "ann@example.com").await;
    app.mail.wait_for("ann@example.com", 1).await;
    wait_until("the row is marked sent", || outbox_rows(&app)[0].state == "sent").await;
}

async fn mail_is_retried_when_the_smtp_server_was_down_at_first(backend: Backend) {
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(backend, &[("--smtp-url", &smtp_url), ("--mail-retry-base", "1s")]).await;
    app.register(&app.browser(), "ann@example.com").await;
    wait_until("the first attempt failed", || {
        outbox_rows(&app)[0].attempts >= 1 && outbox_rows(&app)[0].last_error.is_some()
    })
    .await;
    assert!(outbox_rows(&app)[0].payload.is_some(), "the composed message waits, encrypted");

    let sink = MailSink::start_on(port).await;

    let mail = sink.wait_for("ann@example.com", 1).await;
    wait_until("the row is marked sent", || outbox_rows(&app)[0].state == "sent").await;
    let row = &outbox_rows(&app)[0];
    assert!(row.attempts >= 2);
    assert_eq!(row.payload, None, "wiped once sent");
    assert_eq!(mail.message_id, row.message_id.trim_matches(['<', '>']), "the Message-ID queued");
    assert_eq!(app.row_counts().email_tokens, 2, "one link and one code, minted once for all attempts");
    let browser = app.browser();
    let confirmed = browser.submit(&format!("/verify?token={}", mail.verify_token()), "/verify", &[]).await;
    confirmed.assert_redirects_to("/login");
}

async fn a_resend_while_mail_is_down_keeps_the_delivered_link_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let delivered = app.mail.wait_for("ann@example.com", 1).await;
    app.mail.fail_temporarily(true);

    browser.submit("/verify/resend", "/verify/resend", &[("email", "ann@example.com")]).await;
    wait_until("the resend failed once", || outbox_rows(&app).get(1).is_some_and(|row| row.last_error.is_some())).await;

    let confirmed = browser.submit(&format!("/verify?token={}", delivered.verify_token()), "/verify", &[]).await;
    confirmed.assert_redirects_to("/login");
}

async fn a_permanent_smtp_error_marks_the_mail_dead(backend: Backend) {
    let app = spawn_app(backend).await;
    app.mail.reject_all_permanently(true);

    app.register(&app.browser(), "ann@example.com").await;

    wait_until("the row is dead", || outbox_rows(&app)[0].state == "dead").await;
    let row = &outbox_rows(&app)[0];
    assert_eq!(row.attempts, 1, "no retry after a permanent error");
    assert!(row.last_error.as_deref().unwrap_or_default().contains("550"), "{row:?}");
}

async fn mail_whose_link_expired_is_never_sent(backend: Backend) {
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let overrides = [("--smtp-url", smtp_url.as_str()), ("--verify-token-ttl", "1h"), ("--mail-retry-base", "1s")];
    let app = spawn_app_with(backend, &overrides).await;
    app.register(&app.browser(), "ann@example.com").await;
    app.clock.advance(Duration::from_secs(3600));

    wait_until("the mail expired", || outbox_rows(&app)[0].state == "expired").await;
    let sink = MailSink::start_on(port).await;

    sink.assert_no_more("ann@example.com", 0, Duration::from_millis(1500)).await;
}

async fn two_instances_send_each_mail_exactly_once(backend: Backend) {
    // Three senders each: six race for every row.
    let first = spawn_app_with(backend, &[("--mail-poll-interval", "100ms"), ("--mail-connections", "3")]).await;
    let second = first.spawn_second_instance().await;
    let addresses: Vec<String> = (0..12).map(|i| format!("user{i}@example.com")).collect();

    // Sign-ups arrive together, as under load, half on each instance.
    join_all(addresses.iter().enumerate().map(|(i, address)| {
        let instance = if i % 2 == 0 { &first } else { &second };
        async move { instance.register(&instance.browser(), address).await.assert_redirects_to("/verify") }
    }))
    .await;

    for address in &addresses {
        first.mail.wait_for(address, 1).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = first.mail.all();
    assert_eq!(all.len(), addresses.len(), "one mail per sign-up, no duplicates");
    let ids: HashSet<_> = all.iter().map(|mail| mail.message_id.clone()).collect();
    assert_eq!(ids.len(), addresses.len());
    assert!(outbox_rows(&first).iter().all(|row| row.state == "sent" && row.attempts == 1));
}

async fn mail_goes_out_over_several_connections_at_once(backend: Backend) {
    // Polling is slowed to a minute: the wakes alone must bring in the senders.
    let app = spawn_app_with(backend, &[("--mail-connections", "3"), ("--mail-poll-interval", "60s")]).await;
    // The sink answers no message until three are being sent at once (or
    // 15 s passed): only three connections in parallel get past it.
    app.mail.hold_data_until_together(3, Duration::from_secs(15));
    let addresses = ["ann@example.com", "bob@example.com", "cy@example.com"];

    for address in addresses {
        app.register(&app.browser(), address).await.assert_redirects_to("/verify");
    }

    for address in addresses {
        app.mail.wait_for(address, 1).await;
    }
    assert_eq!(app.mail.peak_in_data(), 3, "three mails were being sent at once");
    wait_until("every row is marked sent", || outbox_rows(&app).iter().all(|row| row.state == "sent")).await;
}

async fn one_mail_connection_sends_one_mail_at_a_time(backend: Backend) {
    let app = spawn_app_with(backend, &[("--mail-connections", "1")]).await;
    // Each message waits half a second for a second one to join it.
    app.mail.hold_data_until_together(2, Duration::from_millis(500));
    let addresses = ["ann@example.com", "bob@example.com", "cy@example.com"];

    for address in addresses {
        app.register(&app.browser(), address).await.assert_redirects_to("/verify");
    }

    for address in addresses {
        app.mail.wait_for(address, 1).await;
    }
    wait_until("every row is marked sent", || outbox_rows(&app).iter().all(|row| row.state == "sent")).await;
    assert_eq!(app.mail.peak_in_data(), 1, "never two mails at once");
}

async fn one_account_s_mail_goes_out_in_order_and_the_newest_link_works(backend: Backend) {
    let app = spawn_app_with(backend, &[("--mail-connections", "3")]).await;
    app.register_verified("ann@example.com").await;
    // Each message waits a second for another to join it: a sender that
    // took the second reset mail while the first is held would.
    app.mail.hold_data_until_together(2, Duration::from_secs(1));
    let browser = app.browser();
    for _ in 0..2 {
        let page = browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
        page.assert_redirects_to("/password/forgot");
    }

    let newest = app.mail.wait_for("ann@example.com", 3).await.link_token("/password/reset?token=");
    wait_until("every row is marked sent", || outbox_rows(&app).iter().all(|row| row.state == "sent")).await;
    assert_eq!(app.mail.peak_in_data(), 1, "one account's mails one after the other");
    let form = browser.get(&format!("/password/reset?token={newest}")).await;
    assert_eq!(form.status, reqwest::StatusCode::OK, "the newest link works: {}", form.body);
}

async fn without_smtp_mail_goes_to_files(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().to_string_lossy().into_owned();
    let app = spawn_app_with(backend, &[("--smtp-url", ""), ("--mail-dir", &mail_dir)]).await;

    app.register(&app.browser(), "ann@example.com").await;

    wait_until("a mail file is written", || std::fs::read_dir(dir.path()).unwrap().count() == 1).await;
    let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let raw = std::fs::read_to_string(file).unwrap();
    assert!(raw.contains("To: ann@example.com"), "{raw}");
    assert!(raw.contains("multipart/alternative"));
}
