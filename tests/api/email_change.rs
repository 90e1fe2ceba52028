use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{email_changes, outbox};

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_new_address_takes_effect_only_once_its_link_is_used,
    the_undo_link_restores_the_old_address_and_ends_every_session,
    a_newer_request_replaces_the_older_and_a_change_can_be_cancelled,
    changing_the_address_needs_a_recent_password,
    an_address_of_another_account_is_refused_at_confirmation,
    a_bad_new_address_is_refused_in_plain_words,
);

const CONFIRM: &str = "/account/email/confirm?token=";
const REVERT: &str = "/account/email/revert?token=";

/// Asks, from the account's own page, for the address to become `new`.
async fn request_change(browser: &Browser, new: &str) -> crate::helpers::Page {
    browser.submit("/account/email", "/account/email", &[("email", new)]).await
}

/// Opens a link from a mail and presses its button, as a person would.
async fn use_link(browser: &Browser, marker: &str, token: &str) -> crate::helpers::Page {
    let path = format!("{marker}{token}");
    let action = marker.trim_end_matches("?token=");
    browser.submit(&path, action, &[]).await
}

/// What opening a link from a mail answers.
async fn link_status(marker: &str, token: &str, app: &TestApp) -> StatusCode {
    app.browser().get(&format!("{marker}{token}")).await.status
}

async fn sign_in_works(app: &TestApp, email: &str) -> bool {
    app.sign_in(&app.browser(), email, PASSWORD).await.location() == Some("/account")
}

async fn a_new_address_takes_effect_only_once_its_link_is_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;

    let asked = request_change(&ann, "ann@new.example").await;

    asked.assert_redirects_to("/account");
    let account = ann.follow(&asked).await;
    assert!(account.body.contains("We sent a link to ann@new.example."), "{}", account.body);
    assert_eq!(account.texts("#account-email"), ["ann@example.com"], "nothing changed yet");
    assert!(account.texts("#pending-change")[0].contains("ann@new.example"));
    let notice = app.mail.wait_for("ann@example.com", 2).await;
    assert!(notice.subject.contains("change of your"), "{}", notice.subject);
    assert!(notice.text.contains("ann@new.example"));
    assert!(!notice.text.contains("token="), "the old address gets no link to complete it");
    let token = app.mail.wait_for("ann@new.example", 1).await.link_token(CONFIRM);

    // Opening the link (a mail scanner, say) changes nothing; its button does.
    let scanner = app.browser();
    let opened = scanner.get(&format!("{CONFIRM}{token}")).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(sign_in_works(&app, "ann@example.com").await);
    let done = use_link(&ann, CONFIRM, &token).await;

    done.assert_redirects_to("/account");
    let account = ann.follow(&done).await;
    assert_eq!(account.texts("#account-email"), ["ann@new.example"]);
    assert!(account.texts("#pending-change").is_empty());
    assert!(sign_in_works(&app, "ann@new.example").await);
    assert!(!sign_in_works(&app, "ann@example.com").await);
    assert_eq!(ann.get("/account").await.status, StatusCode::OK, "this session goes on");
    let changed = app.mail.wait_for("ann@example.com", 3).await;
    assert!(changed.subject.contains("was changed"), "{}", changed.subject);
    assert!(changed.text.contains(REVERT), "an undo link to the old address");
    // Single use: the page says so, and its button pressed again changes nothing.
    assert_eq!(link_status(CONFIRM, &token, &app).await, StatusCode::GONE);
    assert_eq!(scanner.submit_form(&opened, "/account/email/confirm", &[]).await.status, StatusCode::GONE);
}

async fn the_undo_link_restores_the_old_address_and_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    request_change(&ann, "mallory@evil.example").await.assert_redirects_to("/account");
    let token = app.mail.wait_for("mallory@evil.example", 1).await.link_token(CONFIRM);
    use_link(&ann, CONFIRM, &token).await.assert_redirects_to("/account");
    let undo = app.mail.wait_for("ann@example.com", 3).await.link_token(REVERT);
    // The new address asks for a reset link before the undo.
    app.browser().submit("/password/forgot", "/password/forgot", &[("email", "mallory@evil.example")]).await;
    let reset = app.mail.wait_for("mallory@evil.example", 2).await.link_token("/password/reset?token=");
    let mallory = app.browser();
    app.sign_in(&mallory, "mallory@evil.example", PASSWORD).await.assert_redirects_to("/account");

    let stranger = app.browser();
    let opened = stranger.get(&format!("{REVERT}{undo}")).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(opened.body.contains("ann@example.com"));
    let undone = stranger.submit_form(&opened, "/account/email/revert", &[]).await;

    assert_eq!(undone.location(), Some("/login"));
    assert_eq!(mallory.get("/account").await.status, StatusCode::SEE_OTHER, "every session ended");
    assert_eq!(ann.get("/account").await.status, StatusCode::SEE_OTHER);
    assert!(sign_in_works(&app, "ann@example.com").await);
    assert!(!sign_in_works(&app, "mallory@evil.example").await);
    let page = app.browser().get(&format!("/password/reset?token={reset}")).await;
    assert_ne!(page.status, StatusCode::OK, "the reset link sent to the other address is void");
    assert_eq!(link_status(REVERT, &undo, &app).await, StatusCode::GONE, "single use");
    assert_eq!(stranger.submit_form(&opened, "/account/email/revert", &[]).await.status, StatusCode::GONE);
}

async fn a_newer_request_replaces_the_older_and_a_change_can_be_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    request_change(&ann, "first@new.example").await;
    let first = app.mail.wait_for("first@new.example", 1).await.link_token(CONFIRM);
    request_change(&ann, "second@new.example").await;
    let second = app.mail.wait_for("second@new.example", 1).await.link_token(CONFIRM);

    assert_eq!(link_status(CONFIRM, &first, &app).await, StatusCode::GONE, "replaced");
    let cancelled = ann.submit("/account", "/account/email/cancel", &[]).await;
    cancelled.assert_redirects_to("/account");
    assert!(ann.follow(&cancelled).await.body.contains("The change of address was cancelled"));
    assert_eq!(link_status(CONFIRM, &second, &app).await, StatusCode::GONE, "cancelled");
    assert_eq!(ann.get("/account").await.texts("#account-email"), ["ann@example.com"]);
    let states: Vec<String> =
        email_changes::table.select(email_changes::state).order(email_changes::id).load(&mut app.db()).unwrap();
    assert_eq!(states, ["replaced", "cancelled"]);
    let hashes: Vec<Option<Vec<u8>>> =
        email_changes::table.select(email_changes::confirm_hash).load(&mut app.db()).unwrap();
    assert!(hashes.iter().flatten().all(|hash| hash.len() == 32 && *hash != first.as_bytes()), "only hashes kept");
}

async fn changing_the_address_needs_a_recent_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let form = ann.get("/account/email").await;
    app.clock.advance(std::time::Duration::from_secs(11 * 60));

    let late = ann.submit_form(&form, "/account/email", &[("email", "ann@new.example")]).await;
    let page = ann.get("/account/email").await;

    assert_eq!(late.location(), Some("/account/reauth?next=%2Faccount%2Femail"));
    page.assert_redirects_to("/account/reauth?next=%2Faccount%2Femail");
    let mails: i64 =
        outbox::table.filter(outbox::recipient.eq("ann@new.example")).count().get_result(&mut app.db()).unwrap();
    assert_eq!(mails, 0, "nothing sent");
    let reauth = ann.follow(&page).await;
    ann.submit_form(&reauth, "/account/reauth", &[("password", PASSWORD)]).await.assert_redirects_to("/account/email");
    request_change(&ann, "ann@new.example").await.assert_redirects_to("/account");
}

async fn an_address_of_another_account_is_refused_at_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("bob@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;

    // Asking says nothing about whether the address has an account.
    let asked = request_change(&ann, "bob@example.com").await;
    asked.assert_redirects_to("/account");
    let token = app.mail.wait_for("bob@example.com", 2).await.link_token(CONFIRM);
    let refused = use_link(&app.browser(), CONFIRM, &token).await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body.contains("bob@example.com belongs to another account"), "{}", refused.body);
    assert_eq!(ann.get("/account").await.texts("#account-email"), ["ann@example.com"]);
    assert!(sign_in_works(&app, "bob@example.com").await);
}

async fn a_bad_new_address_is_refused_in_plain_words(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;

    for (typed, expected) in [("not an address", "email address"), ("ann@example.com", "That is your address already.")]
    {
        let page = request_change(&ann, typed).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{typed}");
        assert!(page.texts("#email-error")[0].contains(expected), "{typed}: {:?}", page.texts("#email-error"));
    }
    let pending: i64 = email_changes::table.count().get_result(&mut app.db()).unwrap();
    assert_eq!(pending, 0);
}
