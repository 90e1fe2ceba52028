use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, spawn_app, spawn_app_with};
use crate::on_both_backends;
use crate::register::strip_csrf;

on_both_backends!(
    a_verified_user_signs_in_sees_the_account_and_signs_out,
    a_wrong_password_and_an_unknown_email_get_the_same_401,
    next_is_honoured_for_same_site_paths_only,
    the_account_page_sends_anonymous_visitors_to_sign_in,
    sign_in_without_required_verification_works_for_unverified_accounts,
    a_full_hashing_queue_answers_503_with_a_page,
);

async fn a_verified_user_signs_in_sees_the_account_and_signs_out(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();

    let signed_in = app.sign_in(&browser, "ann@example.com", PASSWORD).await;

    signed_in.assert_redirects_to("/account");
    assert_eq!(signed_in.set_cookie("usher_return"), None, "no return cookie to remove, none removed");
    let account = browser.follow(&signed_in).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("ann@example.com"));
    assert!(account.body.contains("active"));
    assert_eq!(browser.get("/").await.location(), Some("/account"), "home sends signed-in users on");

    let signed_out = browser.submit("/account", "/logout", &[]).await;

    signed_out.assert_redirects_to("/");
    assert!(browser.follow(&signed_out).await.body.contains("You are signed out"));
    assert_eq!(browser.get("/account").await.location(), Some("/login?next=%2Faccount"));
    assert_eq!(app.row_counts().sessions, 0);
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();

    let wrong_password = app.sign_in(&browser, "ann@example.com", "not the right password").await;
    let unknown_email = app.sign_in(&browser, "bob@example.com", "not the right password").await;

    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status, StatusCode::UNAUTHORIZED);
    assert!(wrong_password.body.contains("Invalid email or password."));
    assert_eq!(
        strip_csrf(&wrong_password.body.replace("ann@example.com", "X")),
        strip_csrf(&unknown_email.body.replace("bob@example.com", "X"))
    );
    assert_eq!(wrong_password.input_value("email").as_deref(), Some("ann@example.com"), "email kept");
    assert_eq!(wrong_password.input_value("password"), None, "password not echoed");
}

async fn next_is_honoured_for_same_site_paths_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let cases = [
        ("/account?tab=sessions", "/account?tab=sessions"),
        ("//evil.example/steal", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ];
    for (next, expected) in cases {
        let browser = app.browser();
        let login = format!("/login?{}", serde_urlencoded::to_string([("next", next)]).unwrap());

        let page = browser.submit(&login, "/login", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;

        page.assert_redirects_to(expected);
    }
}

async fn the_account_page_sends_anonymous_visitors_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.browser().get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login?next=%2Faccount"));
}

async fn sign_in_without_required_verification_works_for_unverified_accounts(backend: Backend) {
    let app = spawn_app_with(backend, &[("--require-email-verification", "false")]).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;

    let page = app.sign_in(&browser, "ann@example.com", PASSWORD).await;

    page.assert_redirects_to("/account");
    assert!(browser.follow(&page).await.body.contains("email not verified"));
}

/// The address has no account: that sign-ins are shed at all shows that an
/// unknown address costs an Argon2 check (against the dummy hash) like a
/// known one, so timing does not tell them apart.
async fn a_full_hashing_queue_answers_503_with_a_page(backend: Backend) {
    let app = spawn_app_with(backend, &[("--hash-queue", "1"), ("--limit-sign-in-per-address", "100/15m")]).await;
    let browser = app.browser();
    let token = browser.get("/login").await.csrf_token();

    let fields = [("csrf_token", token.as_str()), ("email", "ann@example.com"), ("password", "whatever it is")];
    let attempts = (0..16).map(|_| browser.post_raw("/login", &fields));
    let pages = futures_util::future::join_all(attempts).await;

    let shed: Vec<_> = pages.iter().filter(|page| page.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!shed.is_empty(), "some sign-ins are shed when the queue is full");
    assert!(shed[0].body.contains("try again"), "{}", shed[0].body);
    assert!(pages.iter().all(|p| matches!(p.status, StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE)));
    let counted: i64 = {
        use diesel::prelude::*;
        use usher::db::schema::throttle_hits;
        throttle_hits::table
            .filter(throttle_hits::bucket.like("signin-address:%"))
            .count()
            .get_result(&mut app.db())
            .unwrap()
    };
    let checked = pages.iter().filter(|page| page.status == StatusCode::UNAUTHORIZED).count();
    assert_eq!(counted as usize, checked, "a shed sign-in is not counted as a failure");
}
