use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing,
    an_anonymous_token_is_reusable_across_tabs_and_requests,
    a_token_without_its_cookie_is_refused,
    signed_in_forms_need_the_token_bound_to_the_session,
    a_post_from_another_site_is_refused,
);

async fn a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    browser.get("/register").await;
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("password_confirm", PASSWORD)];

    for token in [None, Some(""), Some("forged-token")] {
        let mut with_token: Vec<(&str, &str)> = fields.to_vec();
        if let Some(token) = token {
            with_token.push(("csrf_token", token));
        }
        let page = browser.post_raw("/register", &with_token).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "token {token:?}");
        assert!(page.body.contains("did not come from this site"), "{}", page.body);
    }
    assert_eq!(app.row_counts().users, 0);
}

async fn an_anonymous_token_is_reusable_across_tabs_and_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let first_tab = browser.get("/login").await.csrf_token();
    let second_tab = browser.get("/register").await.csrf_token();
    assert_eq!(first_tab, second_tab, "one token while the cookie lives");

    for _ in 0..3 {
        let page = browser
            .post_raw(
                "/login",
                &[("csrf_token", &first_tab), ("email", "ann@example.com"), ("password", "wrong password!!")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
}

async fn a_token_without_its_cookie_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.browser().get("/login").await.csrf_token();

    let other_browser = app.browser();
    let page = other_browser
        .post_raw("/login", &[("csrf_token", &token), ("email", "a@example.com"), ("password", "x")])
        .await;

    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

async fn signed_in_forms_need_the_token_bound_to_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let anonymous_token = app.browser().get("/login").await.csrf_token();

    let refused = browser.post_raw("/logout", &[("csrf_token", &anonymous_token)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "still signed in");

    let session_token = browser.get("/account").await.csrf_token();
    assert_ne!(session_token, anonymous_token);
    browser.post_raw("/logout", &[("csrf_token", &session_token)]).await.assert_redirects_to("/");
}

async fn a_post_from_another_site_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let token = browser.get("/login").await.csrf_token();
    let body = format!("csrf_token={token}&email=ann%40example.com&password=x");
    let site = app.address.clone();
    let cases = [
        ("origin", "https://evil.example", false),
        ("origin", "null", false),
        ("referer", "https://evil.example/page", false),
        ("sec-fetch-site", "cross-site", false),
        ("origin", site.as_str(), true),
        ("referer", &format!("{site}/login"), true),
    ];

    for (header, value, allowed) in cases {
        let page = browser.post_with_header("/login", (header, value), body.clone()).await;
        let expected = if allowed { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        assert_eq!(page.status, expected, "{header}: {value}");
    }
}
