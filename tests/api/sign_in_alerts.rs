use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    a_sign_in_from_a_new_browser_is_mailed_once_and_never_the_first_after_sign_up,
    the_known_browser_cookie_is_set_only_by_a_sign_in_and_names_no_account,
    alerts_can_be_turned_off,
    the_browser_that_reset_the_password_is_known,
);

/// Mail to `email` once the outbox is empty.
async fn mail_to(app: &TestApp, email: &str) -> Vec<crate::helpers::ReceivedMail> {
    app.mail_settled().await;
    app.mail.to(email)
}

async fn a_sign_in_from_a_new_browser_is_mailed_once_and_never_the_first_after_sign_up(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let (laptop, phone) = (app.browser(), app.browser());

    app.sign_in(&laptop, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    assert_eq!(mail_to(&app, "ann@example.com").await.len(), 1, "the first sign-in after sign-up tells nothing");
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let alert = app.mail.wait_for("ann@example.com", 2).await;
    assert!(alert.subject.contains("New sign-in"), "{}", alert.subject);
    assert!(alert.text.contains("(IP address 127.0.0.1)"), "{}", alert.text);
    assert!(alert.text.contains("/password/forgot") && alert.text.contains("/account"), "{}", alert.text);
    // Known browsers sign in again without a word, after signing out too.
    phone.submit("/account", "/logout", &[]).await;
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    laptop.submit("/account", "/logout", &[]).await;
    app.sign_in(&laptop, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    assert_eq!(mail_to(&app, "ann@example.com").await.len(), 2);
    // A wrong password is no sign-in to tell about.
    app.sign_in(&app.browser(), "ann@example.com", "not the password at all").await;
    assert_eq!(mail_to(&app, "ann@example.com").await.len(), 2);
    // After a new password every browser is new again: whoever knew the old one is told about.
    let new = "another long passphrase 31";
    let fields = [("current_password", PASSWORD), ("password", new), ("password_confirm", new)];
    laptop.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");
    // (The change signed the phone out.)
    app.sign_in(&phone, "ann@example.com", new).await.assert_redirects_to("/account");
    let again = app.mail.wait_for_subject("ann@example.com", "New sign-in").await;
    let alerts = |mails: Vec<crate::helpers::ReceivedMail>| mails.iter().filter(|m| m.subject == again.subject).count();
    assert_eq!(alerts(mail_to(&app, "ann@example.com").await), 2);
    // The browser that changed it stays known.
    laptop.submit("/account", "/logout", &[]).await;
    app.sign_in(&laptop, "ann@example.com", new).await.assert_redirects_to("/account");
    assert_eq!(alerts(mail_to(&app, "ann@example.com").await), 2);
}

async fn the_known_browser_cookie_is_set_only_by_a_sign_in_and_names_no_account(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();

    let login = browser.get("/login").await;
    assert_eq!(login.set_cookie("usher_known"), None, "not for an anonymous visitor");
    let wrong = app.sign_in(&browser, "ann@example.com", "not the password at all").await;
    assert_eq!(wrong.set_cookie("usher_known"), None, "not for a failed sign-in");
    let signed_in = app.sign_in(&browser, "ann@example.com", PASSWORD).await;

    let cookie = signed_in.set_cookie("usher_known").expect("set by a completed sign-in");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Max-Age=34560000"), "{cookie}");
    let value = browser.cookie("usher_known").unwrap();
    assert_eq!(value.len(), 22, "one 16-byte tag: {value}");
    assert!(!value.contains("ann"), "{value}");
}

async fn alerts_can_be_turned_off(backend: Backend) {
    let app = spawn_app_with(backend, &[("--sign-in-alerts", "off")]).await;
    app.register_verified("ann@example.com").await;
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let second = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;

    second.assert_redirects_to("/account");
    assert_eq!(mail_to(&app, "ann@example.com").await.len(), 1);
    assert_eq!(second.set_cookie("usher_known"), None, "no cookie without a use");
}

async fn the_browser_that_reset_the_password_is_known(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let browser = app.browser();
    browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let token = app.mail.wait_for_subject("ann@example.com", "Reset your").await.link_token("/password/reset?token=");
    let new = "a reset passphrase of 2026";
    let fields = [("password", new), ("password_confirm", new)];
    browser.submit(&format!("/password/reset?token={token}"), "/password/reset", &fields).await;

    app.sign_in(&browser, "ann@example.com", new).await.assert_redirects_to("/account");

    let subjects: Vec<String> = mail_to(&app, "ann@example.com").await.into_iter().map(|m| m.subject).collect();
    assert!(!subjects.iter().any(|s| s.contains("New sign-in")), "{subjects:?}");
}
