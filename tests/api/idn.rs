//! Internationalised domains: `anna@bücher.example` and
//! `anna@xn--bcher-kva.example` are one mailbox, so one account, one
//! throttle key, and mail that any relay takes.

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{outbox, throttle_hits, users};

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    registering_the_punycode_form_of_a_taken_unicode_address_emails_the_owner,
    either_form_signs_in,
    failed_sign_ins_with_either_form_count_against_one_address,
    mail_to_an_idn_address_has_an_ascii_envelope_and_passes_a_relay_without_smtputf8,
    a_non_ascii_local_part_still_needs_a_relay_with_smtputf8,
    admin_pages_show_the_ascii_form_with_the_unicode_form_beside_it,
    start_up_converts_unicode_rows_to_their_ascii_form,
    start_up_stops_with_a_clear_message_when_a_unicode_row_has_a_punycode_twin,
);

const UNICODE: &str = "anna@bücher.example";
const PUNYCODE: &str = "anna@xn--bcher-kva.example";

/// Registers `typed` and confirms it by the emailed link, which reaches
/// the punycode form.
async fn register_verified(app: &TestApp, typed: &str) {
    let browser = app.browser();
    app.register(&browser, typed).await.assert_redirects_to("/verify");
    let token = app.mail.wait_for(PUNYCODE, 1).await.verify_token();
    browser
        .submit(&format!("/verify?token={token}"), "/verify", &[("token", &token)])
        .await
        .assert_redirects_to("/login");
}

fn stored_emails(app: &TestApp) -> Vec<String> {
    users::table.select(users::email).order(users::id).load(&mut app.db()).unwrap()
}

async fn registering_the_punycode_form_of_a_taken_unicode_address_emails_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    register_verified(&app, UNICODE).await;

    let second = app.register(&app.browser(), "Anna@XN--BCHER-KVA.example").await;

    second.assert_redirects_to("/verify");
    assert_eq!(stored_emails(&app), [PUNYCODE], "one account, stored in ASCII");
    let note = app.mail.wait_for(PUNYCODE, 2).await;
    assert!(note.subject.contains("tried to sign up"), "{}", note.subject);
    assert!(note.text.contains("/password/reset?token="), "{}", note.text);
}

async fn either_form_signs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    register_verified(&app, PUNYCODE).await;

    for typed in [UNICODE, PUNYCODE, "ANNA@BÜCHER.EXAMPLE"] {
        let browser = app.browser();
        app.sign_in(&browser, typed, PASSWORD).await.assert_redirects_to("/account");
        let account = browser.get("/account").await;
        assert!(account.body.contains(PUNYCODE), "{typed}: {}", account.body);
    }
}

async fn failed_sign_ins_with_either_form_count_against_one_address(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "2/15m")]).await;
    register_verified(&app, UNICODE).await;

    for typed in [UNICODE, PUNYCODE] {
        let page = app.sign_in(&app.browser(), typed, "not the password!").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{typed}");
    }

    let page = app.sign_in(&app.browser(), "anna@BÜCHER.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
}

async fn mail_to_an_idn_address_has_an_ascii_envelope_and_passes_a_relay_without_smtputf8(backend: Backend) {
    let app = spawn_app(backend).await;
    app.mail.without_smtputf8(true);
    let browser = app.browser();

    app.register(&browser, UNICODE).await.assert_redirects_to("/verify");

    let mail = app.mail.wait_for(PUNYCODE, 1).await;
    assert_eq!(mail.to, PUNYCODE, "RCPT TO");
    assert!(mail.envelope_from.is_ascii() && !mail.smtputf8, "{} {}", mail.envelope_from, mail.smtputf8);
    let header = mail.raw.lines().find(|line| line.starts_with("To:")).unwrap_or_default();
    assert!(header.contains(PUNYCODE), "{header}");
    let token = mail.verify_token();
    browser
        .submit(&format!("/verify?token={token}"), "/verify", &[("token", &token)])
        .await
        .assert_redirects_to("/login");
    app.mail_settled().await;
}

async fn a_non_ascii_local_part_still_needs_a_relay_with_smtputf8(backend: Backend) {
    // The local part keeps its rules: a non-ASCII one is accepted, its
    // domain still goes out in ASCII, and only a relay that offers
    // SMTPUTF8 takes it. (lettre keeps a pooled connection's extensions,
    // so each relay is its own app.)
    let with = spawn_app(backend.clone()).await;
    let without = spawn_app(backend).await;
    without.mail.without_smtputf8(true);

    for app in [&with, &without] {
        app.register(&app.browser(), "Jörg@bücher.example").await.assert_redirects_to("/verify");
    }

    let mail = with.mail.wait_for("jörg@xn--bcher-kva.example", 1).await;
    assert!(mail.smtputf8, "sent with SMTPUTF8");
    let error = wait_for_last_error(&without).await;
    assert!(error.contains("SMTPUTF8"), "{error}");
    assert!(without.mail.all().is_empty());
}

async fn wait_for_last_error(app: &TestApp) -> String {
    for _ in 0..100 {
        let errors: Vec<Option<String>> = outbox::table.select(outbox::last_error).load(&mut app.db()).unwrap();
        if let Some(error) = errors.into_iter().flatten().next() {
            return error;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail failed");
}

async fn admin_pages_show_the_ascii_form_with_the_unicode_form_beside_it(backend: Backend) {
    let app = spawn_app_with(backend, &[("--require-admin-approval", "true")]).await;
    let admin = app.signed_in_admin("admin@example.com").await;
    register_verified(&app, UNICODE).await;
    let beside = format!("({UNICODE})");

    let waiting = admin.get("/admin").await;
    let list = admin.get("/admin/users?q=anna@bücher").await;
    let user = admin.get(&format!("/admin/users/{}", app.user_id(PUNYCODE))).await;

    for page in [&waiting, &list, &user] {
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(PUNYCODE) && page.body.contains(&beside), "{}", page.body);
    }
    assert!(!list.body.contains("admin@example.com</a>"), "the search found only anna:\n{}", list.body);
    assert!(!waiting.body.contains("(admin@example.com)"), "no second form for an ASCII domain");
}

async fn start_up_converts_unicode_rows_to_their_ascii_form(backend: Backend) {
    let app = spawn_app(backend).await;
    // Rows as an older Usher stored them: the domain in Unicode.
    app.register_verified("old@example.com").await;
    app.mail_settled().await;
    let id = app.user_id("old@example.com");
    let mut db = app.db();
    diesel::update(users::table.find(id)).set(users::email.eq(UNICODE)).execute(&mut db).unwrap();
    diesel::update(outbox::table)
        .set((outbox::recipient.eq(UNICODE), outbox::state.eq("dead")))
        .execute(&mut db)
        .unwrap();
    let bucket = format!("signin-address:{UNICODE}");
    diesel::insert_into(throttle_hits::table)
        .values((throttle_hits::bucket.eq(&bucket), throttle_hits::at.eq(usher::db::now())))
        .execute(&mut db)
        .unwrap();

    let restarted = app.spawn_second_instance().await;

    assert_eq!(stored_emails(&app), [PUNYCODE]);
    let recipients: Vec<String> = outbox::table.select(outbox::recipient).load(&mut db).unwrap();
    assert!(recipients.iter().all(|recipient| recipient == PUNYCODE), "{recipients:?}");
    let buckets: Vec<String> = throttle_hits::table.select(throttle_hits::bucket).load(&mut db).unwrap();
    assert!(buckets.contains(&format!("signin-address:{PUNYCODE}")), "{buckets:?}");
    assert!(!buckets.iter().any(|bucket| bucket.contains(UNICODE)), "{buckets:?}");
    for typed in [UNICODE, PUNYCODE] {
        restarted.sign_in(&restarted.browser(), typed, PASSWORD).await.assert_redirects_to("/account");
    }
    let migrate = app.migrate_command();
    assert!(migrate.status.success(), "nothing left to convert: {}", String::from_utf8_lossy(&migrate.stderr));
}

async fn start_up_stops_with_a_clear_message_when_a_unicode_row_has_a_punycode_twin(backend: Backend) {
    let app = spawn_app(backend).await;
    register_verified(&app, PUNYCODE).await;
    app.register_verified("other@example.com").await;
    let twin = app.user_id("other@example.com");
    let owner = app.user_id(PUNYCODE);
    diesel::update(users::table.find(twin)).set(users::email.eq(UNICODE)).execute(&mut app.db()).unwrap();

    let refused = app.try_second_instance().await.err().expect("start-up stops");
    let migrate = app.migrate_command();

    let message = format!("{refused:#}");
    for named in [format!("account {owner} ({PUNYCODE})"), format!("account {twin} ({UNICODE})")] {
        assert!(message.contains(&named), "{named} not in: {message}");
    }
    assert!(message.contains("Keep one account"), "{message}");
    assert!(!message.to_lowercase().contains("unique"), "no constraint error: {message}");
    assert!(!migrate.status.success());
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert!(stderr.contains(&format!("account {twin} ({UNICODE})")), "{stderr}");
    assert_eq!(stored_emails(&app).len(), 2, "nothing changed");
    assert!(stored_emails(&app).contains(&UNICODE.to_owned()));
}
