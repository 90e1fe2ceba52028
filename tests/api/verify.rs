use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::email_tokens;

use crate::helpers::{Backend, PASSWORD, session_id, sha256, spawn_app, spawn_app_with};
use crate::on_both_backends;
use crate::register::strip_csrf;

on_both_backends!(
    opening_the_link_shows_a_button_and_does_not_verify,
    pressing_the_button_verifies_and_the_link_works_once,
    an_expired_link_is_refused,
    the_emailed_code_verifies_the_address,
    five_wrong_codes_void_the_code,
    parallel_wrong_codes_get_no_more_than_five_tries,
    a_wrong_code_for_an_unknown_address_looks_like_a_wrong_code,
    resend_voids_older_links_and_codes,
    resend_answers_the_same_for_any_address,
    no_raw_token_or_code_is_stored_anywhere,
);

async fn opening_the_link_shows_a_button_and_does_not_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let token = app.mail.wait_for("ann@example.com", 1).await.verify_token();

    for _ in 0..3 {
        let page = browser.get(&format!("/verify?token={token}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Confirm my email address"));
        assert_eq!(page.input_value("token").as_deref(), Some(token.as_str()));
    }

    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/verify/resend");
}

async fn pressing_the_button_verifies_and_the_link_works_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let token = app.mail.wait_for("ann@example.com", 1).await.verify_token();
    let link = format!("/verify?token={token}");

    let second_tab = browser.get(&link).await;
    let confirmed = browser.submit(&link, "/verify", &[]).await;
    confirmed.assert_redirects_to("/login");
    assert!(browser.follow(&confirmed).await.body.contains("Your address is confirmed"));

    let reused = browser.submit_form(&second_tab, "/verify", &[]).await;

    assert_eq!(reused.status, StatusCode::GONE);
    assert!(reused.body.contains("used or has expired"), "{}", reused.body);
    assert_eq!(browser.get(&link).await.status, StatusCode::GONE, "the link itself says so too");
    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn an_expired_link_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, &[("--verify-token-ttl", "1h")]).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let link = format!("/verify?token={}", app.mail.wait_for("ann@example.com", 1).await.verify_token());
    let opened_in_time = browser.get(&link).await;

    app.clock.advance(Duration::from_secs(3601));
    let page = browser.submit_form(&opened_in_time, "/verify", &[]).await;

    assert_eq!(page.status, StatusCode::GONE);
    assert_eq!(browser.get(&link).await.status, StatusCode::GONE);
    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/verify/resend");
}

async fn the_emailed_code_verifies_the_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let code = app.mail.wait_for("ann@example.com", 1).await.code();

    let page = browser.submit("/verify", "/verify", &[("email", "ANN@example.com"), ("code", &code)]).await;

    page.assert_redirects_to("/login");
    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

/// A code that is certainly not `code`.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

async fn five_wrong_codes_void_the_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let code = app.mail.wait_for("ann@example.com", 1).await.code();

    for attempt in 1..=5 {
        let page = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &wrong(&code))]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {attempt}");
        assert!(page.body.contains("That code is wrong or has expired"));
    }
    let right_too_late = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &code)]).await;

    assert_eq!(right_too_late.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/verify/resend");
}

async fn parallel_wrong_codes_get_no_more_than_five_tries(backend: Backend) {
    // Without the per-address limit on typed codes, which would answer 429 first.
    let app = spawn_app_with(backend, &[("--throttle", "off")]).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let code = app.mail.wait_for("ann@example.com", 1).await.code();
    let token = browser.get("/verify").await.csrf_token();
    let bad = wrong(&code);

    let fields = [("csrf_token", token.as_str()), ("email", "ann@example.com"), ("code", bad.as_str())];
    let guesses = (0..12).map(|_| browser.post_raw("/verify", &fields));
    let pages = futures_util::future::join_all(guesses).await;

    assert!(pages.iter().all(|page| page.status == StatusCode::UNPROCESSABLE_ENTITY));
    let attempts: Vec<i32> = email_tokens::table
        .filter(email_tokens::purpose.eq("verify_code"))
        .select(email_tokens::attempts)
        .load(&mut app.db())
        .unwrap();
    assert_eq!(attempts, vec![5], "tries counted atomically and capped");
    let right = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &code)]).await;
    assert_eq!(right.status, StatusCode::UNPROCESSABLE_ENTITY, "the code is void");
}

async fn a_wrong_code_for_an_unknown_address_looks_like_a_wrong_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let code = app.mail.wait_for("ann@example.com", 1).await.code();

    let known = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &wrong(&code))]).await;
    let unknown = browser.submit("/verify", "/verify", &[("email", "bob@example.com"), ("code", &wrong(&code))]).await;

    assert_eq!(known.status, unknown.status);
    assert_eq!(
        strip_csrf(&known.body.replace("ann@example.com", "X")),
        strip_csrf(&unknown.body.replace("bob@example.com", "X"))
    );
}

async fn resend_voids_older_links_and_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let first = app.mail.wait_for("ann@example.com", 1).await;

    browser
        .submit("/verify/resend", "/verify/resend", &[("email", "ann@example.com")])
        .await
        .assert_redirects_to("/verify");
    let second = app.mail.wait_for("ann@example.com", 2).await;
    app.mail_settled().await;

    let old_code = browser.submit("/verify", "/verify", &[("email", "ann@example.com"), ("code", &first.code())]).await;
    let old_link = browser.get(&format!("/verify?token={}", first.verify_token())).await;
    assert!(first.code() == second.code() || old_code.status == StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(old_link.status, StatusCode::GONE);
    let new_link = browser.submit(&format!("/verify?token={}", second.verify_token()), "/verify", &[]).await;
    new_link.assert_redirects_to("/login");
}

async fn resend_answers_the_same_for_any_address(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("verified@example.com").await;
    app.register(&app.browser(), "waiting@example.com").await;
    app.mail.wait_for("waiting@example.com", 1).await;

    let mut answers = Vec::new();
    for email in ["verified@example.com", "waiting@example.com", "nobody@example.com"] {
        let browser = app.browser();
        let page = browser.submit("/verify/resend", "/verify/resend", &[("email", email)]).await;
        let next = browser.follow(&page).await;
        answers.push((page.status, page.location().map(str::to_owned), strip_csrf(&next.body.replace(email, "X"))));
    }

    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    app.mail.wait_for("waiting@example.com", 2).await;
    app.mail.assert_no_more("verified@example.com", 1, Duration::from_millis(500)).await;
    assert!(app.mail.to("nobody@example.com").is_empty());
}

async fn no_raw_token_or_code_is_stored_anywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    let session_browser = app.signed_in_user("bob@example.com").await;

    let stored = app.dump_all_tables();

    assert!(!stored.contains(&mail.verify_token()), "link token stored");
    assert!(!stored.contains(&mail.code()), "code stored");
    let session_id = session_id(&session_browser).expect("session cookie");
    assert!(!stored.contains(&session_id), "session id stored");
    assert_eq!(app.session_hashes(), vec![sha256(&session_id)], "only its hash is");
}
