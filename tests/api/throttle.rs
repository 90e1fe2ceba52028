use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    failed_sign_ins_per_address_are_limited_whether_or_not_it_has_an_account,
    parallel_guesses_get_no_more_tries_than_the_limit,
    a_successful_sign_in_clears_the_failures,
    the_owner_of_a_throttled_address_can_still_reset_the_password,
    failed_sign_ins_per_client_are_limited_across_addresses,
    mail_sending_requests_per_address_are_limited,
    typed_codes_per_address_are_limited,
    sign_ups_per_client_are_limited,
    throttle_off_turns_every_limit_off,
    forwarded_addresses_count_only_behind_a_trusted_proxy,
);

async fn fail(app: &TestApp, email: &str) -> crate::helpers::Page {
    app.sign_in(&app.browser(), email, "not the password!").await
}

#[track_caller]
fn assert_throttled(page: &crate::helpers::Page) {
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.body.contains("Too many attempts. Try again in"), "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
}

async fn failed_sign_ins_per_address_are_limited_whether_or_not_it_has_an_account(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "3/15m")]).await;
    app.register_verified("ann@example.com").await;

    for email in ["ann@example.com", "nobody@example.com"] {
        for attempt in 1..=3 {
            assert_eq!(fail(&app, email).await.status, StatusCode::UNAUTHORIZED, "{email} attempt {attempt}");
        }
        assert_throttled(&fail(&app, email).await);
    }
    let locked_out = app.sign_in(&app.browser(), "ANN@example.com", PASSWORD).await;
    assert_throttled(&locked_out);
    assert!(locked_out.body.contains("href=\"/password/forgot\""), "a way out of the lockout: {}", locked_out.body);
}

async fn parallel_guesses_get_no_more_tries_than_the_limit(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "3/15m")]).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let token = browser.get("/login").await.csrf_token();
    let fields = [("csrf_token", token.as_str()), ("email", "ann@example.com"), ("password", "a guess, not it")];

    let pages = futures_util::future::join_all((0..20).map(|_| browser.post_raw("/login", &fields))).await;

    let tried = pages.iter().filter(|page| page.status == StatusCode::UNAUTHORIZED).count();
    let refused = pages.iter().filter(|page| page.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((tried, refused), (3, 17));
}

async fn a_successful_sign_in_clears_the_failures(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "3/15m")]).await;
    app.register_verified("ann@example.com").await;
    fail(&app, "ann@example.com").await;
    fail(&app, "ann@example.com").await;

    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    for _ in 0..3 {
        assert_eq!(fail(&app, "ann@example.com").await.status, StatusCode::UNAUTHORIZED);
    }
}

async fn the_owner_of_a_throttled_address_can_still_reset_the_password(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "2/15m")]).await;
    app.register_verified("ann@example.com").await;
    fail(&app, "ann@example.com").await;
    fail(&app, "ann@example.com").await;
    assert_throttled(&fail(&app, "ann@example.com").await);

    let browser = app.browser();
    browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let token = app.mail.wait_for("ann@example.com", 2).await.link_token("/password/reset?token=");
    let new_password = "marble orchestra lantern 97";
    let fields = [("password", new_password), ("password_confirm", new_password)];
    let reset = browser.submit(&format!("/password/reset?token={token}"), "/password/reset", &fields).await;
    reset.assert_redirects_to("/login");

    app.sign_in(&app.browser(), "ann@example.com", new_password).await.assert_redirects_to("/account");
}

async fn failed_sign_ins_per_client_are_limited_across_addresses(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-ip", "3/15m")]).await;
    for i in 0..3 {
        assert_eq!(fail(&app, &format!("user{i}@example.com")).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&fail(&app, "someone-else@example.com").await);
}

async fn mail_sending_requests_per_address_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-mail-per-address", "2/1h")]).await;
    app.register(&app.browser(), "ann@example.com").await.assert_redirects_to("/verify");
    let browser = app.browser();

    browser
        .submit("/verify/resend", "/verify/resend", &[("email", "ann@example.com")])
        .await
        .assert_redirects_to("/verify");
    assert_throttled(&browser.submit("/verify/resend", "/verify/resend", &[("email", "ann@example.com")]).await);
    let forgot = browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    assert_throttled(&forgot);
    assert!(!forgot.body.contains("href=\"/password/forgot\""), "no link back to the page that refused");
    assert_throttled(&app.register(&app.browser(), "ann@example.com").await);
    for _ in 0..2 {
        browser.submit("/password/forgot", "/password/forgot", &[("email", "nobody@example.com")]).await;
    }
    assert_throttled(&browser.submit("/password/forgot", "/password/forgot", &[("email", "nobody@example.com")]).await);
    app.mail.wait_for("ann@example.com", 2).await;
    app.mail.assert_no_more("ann@example.com", 2, std::time::Duration::from_millis(500)).await;
}

async fn typed_codes_per_address_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-codes-per-address", "3/1h")]).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let code = app.mail.wait_for("ann@example.com", 1).await.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for _ in 0..3 {
        let page = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", wrong)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_throttled(&browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &code)]).await);
}

async fn sign_ups_per_client_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-ups-per-ip", "2/1h")]).await;
    for i in 0..2 {
        app.register(&app.browser(), &format!("user{i}@example.com")).await.assert_redirects_to("/verify");
    }
    let refused = app.register(&app.browser(), "user2@example.com").await;

    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.body.contains("Too many attempts. Try again in"), "{}", refused.body);
    assert!(refused.form("/register").encode().contains("email=user2%40example.com"), "what was typed is kept");
    assert_eq!(refused.input_value("password"), None, "never the password");
    assert_eq!(app.row_counts().users, 2);
}

async fn throttle_off_turns_every_limit_off(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-sign-in-per-address", "2/15m"), ("--throttle", "off")]).await;
    for _ in 0..4 {
        assert_eq!(fail(&app, "ann@example.com").await.status, StatusCode::UNAUTHORIZED);
    }
}

async fn forwarded_addresses_count_only_behind_a_trusted_proxy(backend: Backend) {
    for (trusted, separate) in [(true, true), (false, false)] {
        let mut flags = vec![("--limit-sign-in-per-ip", "2/15m")];
        if trusted {
            flags.push(("--trusted-proxies", "127.0.0.1"));
        }
        let app = spawn_app_with(backend.clone(), &flags).await;
        let browser = app.browser();
        let token = browser.get("/login").await.csrf_token();
        let body = |i: usize| format!("csrf_token={token}&email=user{i}%40example.com&password=wrong");
        let from = |ip: &'static str, i: usize| browser.post_with_header("/login", ("x-forwarded-for", ip), body(i));

        from("10.0.0.1", 0).await;
        from("10.0.0.1", 1).await;
        assert_throttled(&from("10.0.0.1", 2).await);
        let other_client = from("10.0.0.2", 3).await;

        let expected = if separate { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(other_client.status, expected, "trusted proxy: {trusted}");
    }
}
