use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::users;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;
use crate::register::strip_csrf;

const NEW_PASSWORD: &str = "marble orchestra lantern 97";

on_both_backends!(
    forgot_password_answers_the_same_for_any_address,
    a_reset_sets_the_password_ends_sessions_and_sends_a_notice,
    a_reset_link_works_once,
    an_expired_reset_link_is_refused,
    a_newer_request_voids_the_older_link,
    of_twenty_concurrent_submissions_of_one_link_exactly_one_wins,
    a_weak_new_password_is_refused_and_the_link_stays_good,
    resetting_an_unverified_account_verifies_it,
    a_disabled_account_gets_no_reset_mail,
);

async fn request_reset(app: &TestApp, email: &str) -> String {
    let before = app.mail.to(email).len();
    let page = app.browser().submit("/password/forgot", "/password/forgot", &[("email", email)]).await;
    page.assert_redirects_to("/password/forgot");
    let token = app.mail.wait_for(email, before + 1).await.link_token("/password/reset?token=");
    app.mail_settled().await;
    token
}

/// Opens the link and submits its form. A dead link shows no form: then
/// the same fields go as from a reset page loaded while the link still
/// worked (its hidden token field included).
async fn reset_with(app: &TestApp, token: &str, password: &str) -> crate::helpers::Page {
    let browser = app.browser();
    let page = browser.get(&format!("/password/reset?token={token}")).await;
    let passwords = [("password", password), ("password_confirm", password)];
    if page.body.contains("action=\"/password/reset\"") {
        return browser.submit_form(&page, "/password/reset", &passwords).await;
    }
    let csrf = browser.get("/password/forgot").await.csrf_token();
    let fields = [("csrf_token", csrf.as_str()), ("token", token), passwords[0], passwords[1]];
    browser.post_raw("/password/reset", &fields).await
}

async fn forgot_password_answers_the_same_for_any_address(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;

    let mut answers = Vec::new();
    for email in ["ann@example.com", "nobody@example.com"] {
        let browser = app.browser();
        let page = browser.submit("/password/forgot", "/password/forgot", &[("email", email)]).await;
        let next = browser.follow(&page).await;
        answers.push((page.status, page.location().map(str::to_owned), strip_csrf(&next.body.replace(email, "X"))));
    }

    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].2.contains("If an account uses that address"));
    let mail = app.mail.wait_for("ann@example.com", 2).await;
    assert!(mail.subject.contains("Reset your"));
    let link = format!("{}/password/reset?token={}", app.address, mail.link_token("/password/reset?token="));
    assert!(mail.text.contains(&link) && mail.html.contains(&link));
    assert!(app.mail.to("nobody@example.com").is_empty());
}

async fn a_reset_sets_the_password_ends_sessions_and_sends_a_notice(backend: Backend) {
    let app = spawn_app(backend).await;
    let signed_in = app.signed_in_user("ann@example.com").await;
    let token = request_reset(&app, "ann@example.com").await;

    let form = app.browser().get(&format!("/password/reset?token={token}")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.input_value("token").as_deref(), Some(token.as_str()), "token kept in a hidden field");
    assert_eq!(form.headers["referrer-policy"], "same-origin");
    assert!(!form.body.contains("http://") && !form.body.contains("https://"), "loads nothing from other sites");
    let page = reset_with(&app, &token, NEW_PASSWORD).await;

    page.assert_redirects_to("/login");
    assert_eq!(signed_in.get("/account").await.status, StatusCode::SEE_OTHER, "old session ended");
    assert_eq!(app.row_counts().sessions, 0);
    let browser = app.browser();
    assert_eq!(app.sign_in(&browser, "ann@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.sign_in(&browser, "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
    let notice = app.mail.wait_for("ann@example.com", 3).await;
    assert!(notice.subject.contains("password was changed"), "{}", notice.subject);
}

async fn a_reset_link_works_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let token = request_reset(&app, "ann@example.com").await;
    reset_with(&app, &token, NEW_PASSWORD).await.assert_redirects_to("/login");

    let again = reset_with(&app, &token, "another fine password 11").await;
    let form_again = app.browser().get(&format!("/password/reset?token={token}")).await;

    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("/password/forgot"), "offers a new link");
    assert_eq!(form_again.status, StatusCode::GONE);
    app.sign_in(&app.browser(), "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
}

async fn an_expired_reset_link_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, &[("--reset-token-ttl", "2s")]).await;
    app.register_verified("ann@example.com").await;
    let token = request_reset(&app, "ann@example.com").await;

    app.clock.advance(Duration::from_secs(3));

    assert_eq!(reset_with(&app, &token, NEW_PASSWORD).await.status, StatusCode::GONE);
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn a_newer_request_voids_the_older_link(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let older = request_reset(&app, "ann@example.com").await;
    let newer = request_reset(&app, "ann@example.com").await;

    assert_eq!(reset_with(&app, &older, NEW_PASSWORD).await.status, StatusCode::GONE);
    reset_with(&app, &newer, NEW_PASSWORD).await.assert_redirects_to("/login");
}

async fn of_twenty_concurrent_submissions_of_one_link_exactly_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let token = request_reset(&app, "ann@example.com").await;
    let browser = app.browser();
    let csrf = browser.get(&format!("/password/reset?token={token}")).await.csrf_token();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("token", token.as_str()),
        ("password", NEW_PASSWORD),
        ("password_confirm", NEW_PASSWORD),
    ];

    let pages = futures_util::future::join_all((0..20).map(|_| browser.post_raw("/password/reset", &fields))).await;

    let winners = pages.iter().filter(|page| page.status == StatusCode::SEE_OTHER).count();
    let refused = pages.iter().filter(|page| page.status == StatusCode::GONE).count();
    assert_eq!((winners, refused), (1, 19), "{:?}", pages.iter().map(|p| p.status).collect::<Vec<_>>());
    app.mail.wait_for("ann@example.com", 3).await;
    app.mail.assert_no_more("ann@example.com", 3, Duration::from_millis(500)).await;
}

async fn a_weak_new_password_is_refused_and_the_link_stays_good(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let token = request_reset(&app, "ann@example.com").await;

    let weak = reset_with(&app, &token, "password1234").await;

    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.body.contains("too easy to guess"), "{}", weak.body);
    assert_eq!(weak.input_value("token").as_deref(), Some(token.as_str()));
    reset_with(&app, &token, NEW_PASSWORD).await.assert_redirects_to("/login");
}

async fn resetting_an_unverified_account_verifies_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&app.browser(), "ann@example.com").await;
    app.mail.wait_for("ann@example.com", 1).await;
    let token = request_reset(&app, "ann@example.com").await;

    reset_with(&app, &token, NEW_PASSWORD).await.assert_redirects_to("/login");

    app.sign_in(&app.browser(), "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
}

async fn a_disabled_account_gets_no_reset_mail(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    diesel::update(users::table).set(users::disabled_at.eq(Some(1_i64))).execute(&mut app.db()).unwrap();

    app.browser().submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;

    app.mail.assert_no_more("ann@example.com", 1, Duration::from_millis(1500)).await;
}
