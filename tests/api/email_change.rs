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
    an_address_with_an_account_gets_a_note_and_the_asker_the_same_answer,
    an_unverified_sign_up_holding_the_address_does_not_block_the_change,
    of_two_accounts_racing_for_one_address_one_wins,
    counted_sign_in_failures_follow_the_account_to_its_new_address,
    a_bad_new_address_is_refused_in_plain_words,
    an_undo_link_also_undoes_later_changes_whose_own_links_stop_working,
    a_new_password_cancels_a_pending_change,
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

/// What opening a link from a mail in `browser` answers.
async fn link_status(browser: &Browser, marker: &str, token: &str) -> StatusCode {
    browser.get(&format!("{marker}{token}")).await.status
}

async fn sign_in_works(app: &TestApp, email: &str) -> bool {
    app.sign_in(&app.browser(), email, PASSWORD).await.location() == Some("/account")
}

async fn a_new_address_takes_effect_only_once_its_link_is_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let phone = app.browser();
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let asked = request_change(&ann, "ann@new.example").await;

    asked.assert_redirects_to("/account");
    let account = ann.follow(&asked).await;
    assert!(account.body.contains("We sent a link to ann@new.example."), "{}", account.body);
    assert_eq!(account.texts("#account-email"), ["ann@example.com"], "nothing changed yet");
    assert!(account.texts("#pending-change")[0].contains("ann@new.example"));
    let notice = app.mail.wait_for_subject("ann@example.com", "change of your").await;
    assert!(notice.text.contains("ann@new.example"));
    assert!(!notice.text.contains("token="), "the old address gets no link to complete it");
    let token = app.mail.wait_for("ann@new.example", 1).await.link_token(CONFIRM);

    // Opening the link changes nothing: a mail scanner (signed in as no
    // one) is sent to sign in, another account is refused, and the account
    // that asked gets a page whose button completes the change.
    let scanner = app.browser().get(&format!("{CONFIRM}{token}")).await;
    assert!(scanner.location().unwrap().starts_with("/login?next=%2Faccount%2Femail%2Fconfirm"), "{scanner:?}");
    let bob = app.signed_in_user("bob@example.com").await;
    let other = bob.get(&format!("{CONFIRM}{token}")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.body.contains("This link is for another account."), "{}", other.body);
    let opened = ann.get(&format!("{CONFIRM}{token}")).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(sign_in_works(&app, "ann@example.com").await);
    let done = ann.submit_form(&opened, "/account/email/confirm", &[]).await;

    done.assert_redirects_to("/account");
    let account = ann.follow(&done).await;
    assert_eq!(account.texts("#account-email"), ["ann@new.example"]);
    assert!(account.texts("#pending-change").is_empty());
    assert!(sign_in_works(&app, "ann@new.example").await);
    assert!(!sign_in_works(&app, "ann@example.com").await);
    assert_eq!(ann.get("/account").await.status, StatusCode::OK, "this session goes on");
    assert_eq!(phone.get("/account").await.status, StatusCode::SEE_OTHER, "the others end");
    let changed = app.mail.wait_for_subject("ann@example.com", "address was changed").await;
    assert!(changed.text.contains(REVERT), "an undo link to the old address");
    // Single use: the page says so, and its button pressed again changes nothing.
    assert_eq!(link_status(&ann, CONFIRM, &token).await, StatusCode::GONE);
    assert_eq!(ann.submit_form(&opened, "/account/email/confirm", &[]).await.status, StatusCode::GONE);
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
    // Someone signs up with the freed old address to block the undo.
    app.register(&app.browser(), "ann@example.com").await;
    app.mail.wait_for("ann@example.com", 4).await;

    let stranger = app.browser();
    let opened = stranger.get(&format!("{REVERT}{undo}")).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(opened.body.contains("ann@example.com"));
    let undone = stranger.submit_form(&opened, "/account/email/revert", &[]).await;

    assert_eq!(undone.location(), Some("/login"));
    assert_eq!(mallory.get("/account").await.status, StatusCode::SEE_OTHER, "every session ended");
    assert_eq!(ann.get("/account").await.status, StatusCode::SEE_OTHER);
    assert!(sign_in_works(&app, "ann@example.com").await, "the unconfirmed sign-up did not block it");
    assert!(!sign_in_works(&app, "mallory@evil.example").await);
    let secure = app.mail.wait_for("ann@example.com", 5).await;
    assert!(secure.text.contains("/password/reset?token="), "a reset link to the restored address");
    let page = app.browser().get(&format!("/password/reset?token={reset}")).await;
    assert_ne!(page.status, StatusCode::OK, "the reset link sent to the other address is void");
    assert_eq!(link_status(&app.browser(), REVERT, &undo).await, StatusCode::GONE, "single use");
    assert_eq!(stranger.submit_form(&opened, "/account/email/revert", &[]).await.status, StatusCode::GONE);
}

async fn a_newer_request_replaces_the_older_and_a_change_can_be_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    request_change(&ann, "first@new.example").await;
    let first = app.mail.wait_for("first@new.example", 1).await.link_token(CONFIRM);
    request_change(&ann, "second@new.example").await;
    let second = app.mail.wait_for("second@new.example", 1).await.link_token(CONFIRM);

    assert_eq!(link_status(&ann, CONFIRM, &first).await, StatusCode::GONE, "replaced");
    let cancelled = ann.submit("/account", "/account/email/cancel", &[]).await;
    cancelled.assert_redirects_to("/account");
    assert!(ann.follow(&cancelled).await.body.contains("The change of address was cancelled"));
    assert_eq!(link_status(&ann, CONFIRM, &second).await, StatusCode::GONE, "cancelled");
    // The page says why, and leads the signed-in person to the account page.
    let signed_in = ann.get(&format!("{CONFIRM}{second}")).await;
    assert!(signed_in.texts("main p").iter().any(|text| text.contains("cancelled")), "{}", signed_in.body);
    assert!(signed_in.attrs("main p a", "href").contains(&"/account".to_owned()));
    // The change page offers the same cancel.
    request_change(&ann, "third@new.example").await.assert_redirects_to("/account");
    ann.submit("/account/email", "/account/email/cancel", &[]).await.assert_redirects_to("/account");
    assert_eq!(ann.get("/account").await.texts("#account-email"), ["ann@example.com"]);
    let states: Vec<String> =
        email_changes::table.select(email_changes::state).order(email_changes::id).load(&mut app.db()).unwrap();
    assert_eq!(states, ["replaced", "cancelled", "cancelled"]);
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

async fn an_address_with_an_account_gets_a_note_and_the_asker_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("bob@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;

    let asked = request_change(&ann, "bob@example.com").await;

    asked.assert_redirects_to("/account");
    let account = ann.follow(&asked).await;
    assert!(account.body.contains("We sent a link to bob@example.com."), "the same answer as for a free address");
    assert!(account.texts("#pending-change")[0].contains("bob@example.com"));
    let note = app.mail.wait_for("bob@example.com", 2).await;
    assert!(note.subject.contains("Someone tried to use your address"), "{}", note.subject);
    assert!(!note.text.contains("token="), "no link: {}", note.text);
    assert!(!note.text.contains("ann@example.com"), "the asker's address is not told");
    assert_eq!(ann.get("/account").await.texts("#account-email"), ["ann@example.com"]);
    assert!(sign_in_works(&app, "bob@example.com").await);
}

async fn an_unverified_sign_up_holding_the_address_does_not_block_the_change(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&app.browser(), "carol@new.example").await;
    let squatter_link = app.mail.wait_for("carol@new.example", 1).await.verify_token();
    let ann = app.signed_in_user("ann@example.com").await;

    request_change(&ann, "carol@new.example").await.assert_redirects_to("/account");
    let token = app.mail.wait_for("carol@new.example", 2).await.link_token(CONFIRM);
    use_link(&ann, CONFIRM, &token).await.assert_redirects_to("/account");

    assert_eq!(ann.get("/account").await.texts("#account-email"), ["carol@new.example"]);
    let accounts: i64 = usher::db::schema::users::table.count().get_result(&mut app.db()).unwrap();
    assert_eq!(accounts, 1, "the unverified sign-up is gone");
    assert_eq!(app.browser().get(&format!("/verify?token={squatter_link}")).await.status, StatusCode::GONE);
}

async fn of_two_accounts_racing_for_one_address_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ann, bob) = (app.signed_in_user("ann@example.com").await, app.signed_in_user("bob@example.com").await);
    request_change(&ann, "shared@new.example").await.assert_redirects_to("/account");
    request_change(&bob, "shared@new.example").await.assert_redirects_to("/account");
    let mut first = app.mail.wait_for("shared@new.example", 1).await.link_token(CONFIRM);
    let mut second = app.mail.wait_for("shared@new.example", 2).await.link_token(CONFIRM);
    if ann.get(&format!("{CONFIRM}{first}")).await.status == StatusCode::FORBIDDEN {
        std::mem::swap(&mut first, &mut second);
    }
    let (one, other) = (&ann, &bob);
    let pages = (one.get(&format!("{CONFIRM}{first}")).await, other.get(&format!("{CONFIRM}{second}")).await);
    assert_eq!((pages.0.status, pages.1.status), (StatusCode::OK, StatusCode::OK));

    let (a, b) = tokio::join!(
        one.submit_form(&pages.0, "/account/email/confirm", &[]),
        other.submit_form(&pages.1, "/account/email/confirm", &[])
    );

    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::CONFLICT]);
    let loser = if a.status == StatusCode::CONFLICT { &a } else { &b };
    assert!(loser.body.contains("shared@new.example belongs to another account"), "{}", loser.body);
    let holders: i64 = usher::db::schema::users::table
        .filter(usher::db::schema::users::email.eq("shared@new.example"))
        .count()
        .get_result(&mut app.db())
        .unwrap();
    assert_eq!(holders, 1);
}

async fn counted_sign_in_failures_follow_the_account_to_its_new_address(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, &[("--limit-sign-in-per-address", "3/15m")]).await;
    let ann = app.signed_in_user("ann@example.com").await;
    for _ in 0..2 {
        let wrong = app.sign_in(&app.browser(), "ann@example.com", "not the password at all").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    request_change(&ann, "ann@new.example").await;
    let token = app.mail.wait_for("ann@new.example", 1).await.link_token(CONFIRM);
    use_link(&ann, CONFIRM, &token).await.assert_redirects_to("/account");

    let third = app.sign_in(&app.browser(), "ann@new.example", "not the password at all").await;
    let fourth = app.sign_in(&app.browser(), "ann@new.example", "not the password at all").await;

    assert_eq!(third.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS, "the two before the change still count");
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
    // Refused requests send no mail, so they use up none of the address's
    // mail allowance (5 an hour): a real one, and a reset, still go.
    for _ in 0..6 {
        assert_eq!(request_change(&ann, "ann@example.com").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    request_change(&ann, "ann.new@example.com").await.assert_redirects_to("/account");
    let forgot = app.browser().submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    assert_ne!(forgot.status, StatusCode::TOO_MANY_REQUESTS);
    app.mail.wait_for_subject("ann@example.com", "Reset your").await;
}

async fn an_undo_link_also_undoes_later_changes_whose_own_links_stop_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let taker = app.signed_in_user("ann@example.com").await;
    // Someone in the account moves it to B, then on to C.
    for (new, mails) in [("b@taker.example", 1), ("c@taker.example", 1)] {
        request_change(&taker, new).await.assert_redirects_to("/account");
        let token = app.mail.wait_for(new, mails).await.link_token(CONFIRM);
        use_link(&taker, CONFIRM, &token).await.assert_redirects_to("/account");
    }
    let to_a = app.mail.wait_for("ann@example.com", 3).await.link_token(REVERT);
    let to_b = app.mail.wait_for("b@taker.example", 3).await.link_token(REVERT);

    let stranger = app.browser();
    let opened = stranger.get(&format!("{REVERT}{to_a}")).await;
    stranger.submit_form(&opened, "/account/email/revert", &[]).await;

    assert!(sign_in_works(&app, "ann@example.com").await, "back to A, from C");
    assert_eq!(link_status(&app.browser(), REVERT, &to_b).await, StatusCode::GONE, "B's undo link is closed");
}

async fn a_new_password_cancels_a_pending_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    request_change(&ann, "intruder@evil.example").await.assert_redirects_to("/account");
    let token = app.mail.wait_for("intruder@evil.example", 1).await.link_token(CONFIRM);

    let fields = [
        ("current_password", PASSWORD),
        ("password", "a brand new passphrase 42"),
        ("password_confirm", "a brand new passphrase 42"),
    ];
    ann.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");

    assert_eq!(link_status(&ann, CONFIRM, &token).await, StatusCode::GONE);
    assert!(ann.get("/account").await.texts("#pending-change").is_empty());
}
