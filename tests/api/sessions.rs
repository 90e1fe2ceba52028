use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::users;

use crate::helpers::{Backend, PASSWORD, session_id, sha256, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    a_form_posted_after_the_session_ended_leads_back_to_its_page_after_signing_in,
    an_admin_action_after_the_session_ended_leads_back_to_the_users_page,
    a_browser_whose_session_ended_is_told_so_once,
    signing_in_issues_a_new_session_id,
    a_planted_session_cookie_is_not_adopted,
    the_session_cookie_is_http_only_and_same_site_lax,
    logout_makes_the_old_cookie_useless,
    an_idle_session_times_out,
    activity_keeps_a_session_alive_until_the_absolute_timeout,
    remember_me_makes_the_cookie_outlive_the_browser,
    a_session_ends_when_its_account_is_disabled,
    anonymous_page_views_write_nothing,
);

async fn signing_in_issues_a_new_session_id(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    // One tab keeps the sign-in form open while another tab signs in.
    let stale_form = browser.get("/login").await;
    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let first = session_id(&browser).unwrap();
    assert_eq!(app.session_hashes(), vec![sha256(&first)], "only a hash of the id is stored");

    let again =
        browser.submit_form(&stale_form, "/login", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;

    again.assert_redirects_to("/account");
    let second = session_id(&browser).unwrap();
    assert_ne!(first, second);
    assert_eq!(app.session_hashes(), vec![sha256(&second)], "the old session was deleted");
}

async fn a_planted_session_cookie_is_not_adopted(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let attacker = app.signed_in_user("eve@example.com").await;
    let planted = attacker.cookie("usher_session").unwrap();
    let victim = app.browser();
    let sign_in_form = victim.get("/login").await;
    victim.set_cookie("usher_session", &planted);

    let fields = [("email", "ann@example.com"), ("password", PASSWORD)];
    let signed_in = victim.submit_form(&sign_in_form, "/login", &fields).await;

    signed_in.assert_redirects_to("/account");
    assert_ne!(victim.cookie("usher_session").unwrap(), planted, "a new id at sign-in");
    assert!(victim.get("/account").await.body.contains("ann@example.com"));
    assert_eq!(attacker.get("/account").await.status, StatusCode::SEE_OTHER, "the planted session is gone");
}

async fn the_session_cookie_is_http_only_and_same_site_lax(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;

    let page = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;

    let cookie = page.set_cookie("usher_session").expect("session cookie set");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Max-Age"), "a browser-session cookie without remember-me: {cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
}

async fn logout_makes_the_old_cookie_useless(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let stolen = browser.cookie("usher_session").unwrap();

    browser.submit("/account", "/logout", &[]).await.assert_redirects_to("/");

    let replay = app.browser();
    replay.set_cookie("usher_session", &stolen);
    assert_eq!(replay.get("/account").await.status, StatusCode::SEE_OTHER);
}

async fn an_idle_session_times_out(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-idle-ttl", "2s")]).await;
    let browser = app.signed_in_user("ann@example.com").await;
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);

    app.clock.advance(Duration::from_secs(3));

    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
}

async fn activity_keeps_a_session_alive_until_the_absolute_timeout(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-idle-ttl", "30m"), ("--session-absolute-ttl", "2h")]).await;
    let browser = app.signed_in_user("ann@example.com").await;

    for minutes in [20, 40, 60, 80, 100] {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(browser.get("/account").await.status, StatusCode::OK, "active at {minutes} minutes");
    }
    // Past 30 minutes of idleness had the activity not slid it; now past the absolute limit.
    app.clock.advance(Duration::from_secs(25 * 60));
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
}

async fn remember_me_makes_the_cookie_outlive_the_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();

    let page = browser
        .submit("/login", "/login", &[("email", "ann@example.com"), ("password", PASSWORD), ("remember_me", "on")])
        .await;

    page.assert_redirects_to("/account");
    let cookie = page.set_cookie("usher_session").unwrap();
    assert!(cookie.contains(&format!("Max-Age={}", 30 * 24 * 3600)), "{cookie}");
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
}

async fn a_session_ends_when_its_account_is_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;

    diesel::update(users::table.filter(users::email.eq("ann@example.com")))
        .set(users::disabled_at.eq(Some(1_i64)))
        .execute(&mut app.db())
        .unwrap();

    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.row_counts().sessions, 0, "the session row is dropped");
    let again = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.body.contains("disabled"));
}

async fn anonymous_page_views_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let before = app.dump_all_tables();
    let browser = app.browser();
    let token = "A".repeat(43);

    for path in [
        "/",
        "/register",
        "/login",
        "/verify",
        "/verify/resend",
        &format!("/verify?token={token}"),
        "/account",
        "/nowhere",
        "/healthz",
        "/readyz",
    ] {
        let page = browser.get(path).await;
        assert!(page.status.as_u16() < 500, "{path}: {}", page.status);
    }

    assert_eq!(app.dump_all_tables(), before, "no row added or changed");
    assert!(browser.cookie("usher_session").is_none(), "no session for anonymous visitors");
    assert!(browser.cookie("usher_csrf").is_some(), "the CSRF cookie carries the state");
}

/// Signs in again from where a guard sent the browser, and returns where that
/// sign-in led.
async fn sign_in_again(browser: &crate::helpers::Browser, refused: &crate::helpers::Page, email: &str) -> String {
    let login = browser.follow(refused).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("You were signed out. Sign in again to continue."), "{}", login.body);
    let signed_in = browser.submit_form(&login, "/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    let target = signed_in.location().unwrap().to_owned();
    assert_eq!(browser.get(&target).await.status, StatusCode::OK, "{target} answers GET");
    target
}

async fn a_form_posted_after_the_session_ended_leads_back_to_its_page_after_signing_in(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-idle-ttl", "30m")]).await;
    let browser = app.signed_in_user("ann@example.com").await;
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    let account = browser.get("/account").await;
    app.clock.advance(Duration::from_secs(31 * 60));

    let refused = browser.submit_form(&account, "/account/sessions/revoke-others", &[]).await;

    assert_eq!(refused.location(), Some("/login?next=%2Faccount"), "the page the form was on, not the action");
    assert_eq!(sign_in_again(&browser, &refused, "ann@example.com").await, "/account");
}

async fn an_admin_action_after_the_session_ended_leads_back_to_the_users_page(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-idle-ttl", "30m")]).await;
    app.register_verified("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    diesel::update(users::table.find(id)).set(users::disabled_at.eq(Some(0_i64))).execute(&mut app.db()).unwrap();
    let admin = app.signed_in_admin("root@example.com").await;
    let users = admin.get("/admin/users?q=ann%40example.com").await;
    app.clock.advance(Duration::from_secs(31 * 60));

    let refused = admin.submit_form(&users, &format!("/admin/users/{id}/enable"), &[]).await;

    let target = sign_in_again(&admin, &refused, "root@example.com").await;
    assert_eq!(target, "/admin/users?q=ann%40example.com", "a target with escapes survives the cookie");
    // Nothing was done: she is still disabled.
    assert_eq!(app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.status, StatusCode::FORBIDDEN);
}

async fn a_browser_whose_session_ended_is_told_so_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let other = app.browser();
    app.sign_in(&other, "ann@example.com", PASSWORD).await;
    other.submit("/account", "/account/sessions/revoke-others", &[]).await.assert_redirects_to("/account");

    let told = browser.get("/").await;
    let again = browser.get("/").await;

    assert!(told.body.contains("You were signed out. Sign in again to continue."), "{}", told.body);
    assert!(!again.body.contains("You were signed out"), "said once");
    let fresh = app.browser().get("/").await;
    assert!(!fresh.body.contains("You were signed out"), "not to a first-time visitor");
}
