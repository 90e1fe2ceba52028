use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    every_page_family_sends_the_security_headers,
    https_sites_get_hsts_and_host_prefixed_secure_cookies,
    over_long_fields_and_headers_get_4xx_and_change_nothing,
);

async fn every_page_family_sends_the_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let anonymous = app.browser();
    let pages = [
        (&anonymous, "/"),
        (&anonymous, "/register"),
        (&anonymous, "/login"),
        (&anonymous, "/verify"),
        (&anonymous, "/verify/resend"),
        (&anonymous, "/password/forgot"),
        (&anonymous, "/no/such/page"),
        (&admin, "/account"),
        (&admin, "/admin"),
        (&admin, "/admin/users"),
    ];
    for (browser, path) in pages {
        let page = browser.get(path).await;
        let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        assert!(header("strict-transport-security").is_empty(), "{path}: no HSTS over plain http");
        assert!(!page.body.contains("<script") && !page.body.contains("style="), "{path}: nothing inline");
    }
}

async fn https_sites_get_hsts_and_host_prefixed_secure_cookies(backend: Backend) {
    // Tests speak plain http to it; the public URL is what makes the site https.
    let app = spawn_app_with(backend, &[("--public-url", "https://accounts.example.com")]).await;
    let page = app.browser().get("/login").await;

    assert_eq!(page.headers["strict-transport-security"], "max-age=31536000");
    let csrf = page.set_cookie("__Host-usher_csrf").expect("a __Host- CSRF cookie");
    assert!(csrf.contains("Secure") && csrf.contains("Path=/") && !csrf.contains("Domain"), "{csrf}");
}

async fn over_long_fields_and_headers_get_4xx_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let long = "x".repeat(2000);

    let page = browser.submit("/login", "/login", &[("email", "ann@example.com"), ("password", &long)]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("too long"), "{}", page.body);

    let huge_header = "y".repeat(64 * 1024);
    let response = reqwest::Client::new()
        .get(format!("{}/login", app.address))
        .header("x-filler", huge_header)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(response.text().await.unwrap().contains("headers are too large"));
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("password_confirm", &long)];
    assert_eq!(browser.submit("/register", "/register", &fields).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.row_counts().users, 0);
}
