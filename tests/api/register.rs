use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    sign_up_by_invitation_or_closed_shows_no_form_and_refuses_a_post,
    every_mistake_of_a_sign_up_is_shown_at_once_on_its_field,
    registration_sends_a_multipart_verification_mail_with_site_links,
    a_new_account_cannot_sign_in_before_verifying,
    registering_a_taken_address_answers_like_a_new_one_and_emails_the_owner,
    registering_an_unverified_address_again_sends_a_fresh_verification,
    whoever_verifies_a_pre_registered_address_gets_their_own_password,
    emails_are_unique_whatever_their_case,
    a_weak_password_is_refused_with_a_reason_and_nothing_is_stored,
);

async fn registration_sends_a_multipart_verification_mail_with_site_links(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();

    let page = app.register(&browser, "ann@example.com").await;

    page.assert_redirects_to("/verify");
    let next = browser.follow(&page).await;
    assert!(next.body.contains("Check your inbox"), "{}", next.body);
    assert_eq!(next.input_value("email").as_deref(), Some("ann@example.com"), "email pre-filled");
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    assert!(mail.raw.contains("multipart/alternative"), "{}", mail.raw);
    assert!(!mail.text.is_empty() && !mail.html.is_empty());
    let link = format!("{}/verify?token={}", app.address, mail.verify_token());
    assert!(mail.text.contains(&link), "text part links to the site:\n{}", mail.text);
    assert!(mail.html.contains(&link), "html part links to the site:\n{}", mail.html);
    assert_eq!(mail.code().len(), 6);
    assert!(mail.message_id.contains('@'), "has a Message-ID: {}", mail.message_id);
}

async fn a_new_account_cannot_sign_in_before_verifying(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;

    let page = app.sign_in(&browser, "ann@example.com", PASSWORD).await;

    page.assert_redirects_to("/verify/resend");
    let resend = browser.follow(&page).await;
    assert!(resend.body.contains("Confirm your email address first"), "{}", resend.body);
    assert_eq!(resend.input_value("email").as_deref(), Some("ann@example.com"));
    assert_eq!(app.row_counts().sessions, 0);
}

async fn registering_a_taken_address_answers_like_a_new_one_and_emails_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("owner@example.com").await;

    let taken_browser = app.browser();
    let taken = app.register(&taken_browser, "owner@example.com").await;
    let fresh_browser = app.browser();
    let fresh = app.register(&fresh_browser, "newcomer@example.com").await;

    assert_eq!(taken.status, fresh.status);
    assert_eq!(taken.location(), fresh.location());
    let taken_next = taken_browser.follow(&taken).await.body.replace("owner@example.com", "X");
    let fresh_next = fresh_browser.follow(&fresh).await.body.replace("newcomer@example.com", "X");
    assert_eq!(strip_csrf(&taken_next), strip_csrf(&fresh_next), "pages differ");
    let note = app.mail.wait_for("owner@example.com", 2).await;
    assert!(note.subject.contains("tried to sign up"), "{}", note.subject);
    assert!(note.text.contains(&format!("{}/password/reset?token=", app.address)), "{}", note.text);
    assert!(!note.text.contains("/verify?token="), "no verification link for a verified owner");
}

async fn registering_an_unverified_address_again_sends_a_fresh_verification(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let first = app.mail.wait_for("ann@example.com", 1).await;

    app.register(&app.browser(), "ann@example.com").await.assert_redirects_to("/verify");

    let second = app.mail.wait_for("ann@example.com", 2).await;
    app.mail_settled().await;
    assert_ne!(first.verify_token(), second.verify_token());
    assert_eq!(app.row_counts().users, 1);
    let old = browser.get(&format!("/verify?token={}", first.verify_token())).await;
    assert_eq!(old.status, StatusCode::GONE, "the older link is void");
}

async fn whoever_verifies_a_pre_registered_address_gets_their_own_password(backend: Backend) {
    // Without required verification, an impostor could sign in before the owner shows up.
    let app = spawn_app_with(backend, &[("--require-email-verification", "false")]).await;
    let impostor = app.browser();
    let impostor_password = "impostor chose this one 55";
    let fields =
        [("email", "ann@example.com"), ("password", impostor_password), ("password_confirm", impostor_password)];
    impostor.submit("/register", "/register", &fields).await.assert_redirects_to("/verify");
    app.sign_in(&impostor, "ann@example.com", impostor_password).await.assert_redirects_to("/account");
    app.mail.wait_for("ann@example.com", 1).await;

    let owner = app.browser();
    app.register(&owner, "ann@example.com").await.assert_redirects_to("/verify");
    let token = app.mail.wait_for("ann@example.com", 2).await.verify_token();
    owner.submit(&format!("/verify?token={}", token), "/verify", &[]).await.assert_redirects_to("/login");

    assert_eq!(impostor.get("/account").await.status, StatusCode::SEE_OTHER, "the impostor's session ended");
    assert_eq!(
        app.sign_in(&app.browser(), "ann@example.com", impostor_password).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.sign_in(&owner, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn emails_are_unique_whatever_their_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;

    app.register(&app.browser(), "  ANN@Example.COM ").await.assert_redirects_to("/verify");

    assert_eq!(app.row_counts().users, 1);
    let note = app.mail.wait_for("ann@example.com", 2).await;
    assert!(note.subject.contains("tried to sign up"));
    let browser = app.browser();
    app.sign_in(&browser, "Ann@EXAMPLE.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn a_weak_password_is_refused_with_a_reason_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let cases = [
        ("short", "Use at least 12 characters"),
        ("password1234", "too easy to guess"),
        ("violet tractor umbrella 42 ", "do not match"),
    ];
    for (password, reason) in cases {
        let confirmation = if reason == "do not match" { PASSWORD } else { password };
        let fields = [("email", "ann@example.com"), ("password", password), ("password_confirm", confirmation)];

        let page = browser.submit("/register", "/register", &fields).await;

        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        assert!(page.body.contains(reason), "{password}: expected {reason:?} in\n{}", page.body);
        assert_eq!(page.input_value("email").as_deref(), Some("ann@example.com"), "input kept");
        assert_eq!(page.input_value("password"), None, "the password is never echoed");
    }
    assert_eq!(app.row_counts().users, 0);
}

pub fn strip_csrf(body: &str) -> String {
    body.lines().filter(|line| !line.contains("csrf_token")).collect::<Vec<_>>().join("\n")
}

async fn every_mistake_of_a_sign_up_is_shown_at_once_on_its_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let fields = [("email", "not an address"), ("password", "short"), ("password_confirm", "shorter")];

    let page = browser.submit("/register", "/register", &fields).await;

    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let summary =
        page.body.split("class=\"error-summary\"").nth(1).expect("an error summary").split("</div>").next().unwrap();
    for (field, message) in [
        ("email", "does not look like an email address"),
        ("password", "Use at least 12 characters"),
        ("password_confirm", "do not match"),
    ] {
        assert!(summary.contains(&format!("href=\"#{field}\"")), "the summary links to {field}: {summary}");
        let under_field = page.body.split(&format!("id=\"{field}-error\"")).nth(1).expect("a message under the field");
        assert!(under_field.split("</p>").next().unwrap().contains(message), "{field}: {message}");
    }
    assert_eq!(app.row_counts().users, 0);
}

async fn sign_up_by_invitation_or_closed_shows_no_form_and_refuses_a_post(backend: Backend) {
    use diesel::prelude::*;
    use usher::db::schema::users;
    for (mode, words) in [("invite", "made by invitation only"), ("closed", "does not take new accounts")] {
        let flags = [("--registration", mode), ("--support-email", "help@example.com")];
        let app = spawn_app_with(backend.clone(), &flags).await;
        let browser = app.browser();
        for start in ["/", "/login"] {
            assert!(!browser.get(start).await.body.contains("href=\"/register\""), "{mode}: {start} links no sign-up");
        }
        let page = browser.get("/register").await;
        assert_eq!(page.status, StatusCode::OK, "{mode}");
        assert!(!page.body.contains("action=\"/register\""), "{mode}: no sign-up form");
        assert!(page.texts("#sign-up-closed")[0].contains(words), "{mode}: {}", page.body);
        assert!(page.body.contains("mailto:help@example.com"), "{mode}: names the support address");

        // A POST, well formed or not, gets the same words and changes nothing.
        let fields = [("email", "new@example.com"), ("password", PASSWORD), ("password_confirm", PASSWORD)];
        let token = page.input_value("csrf_token").unwrap_or_default();
        let mut with_token = fields.to_vec();
        with_token.push(("csrf_token", &token));
        for refused in [browser.post_raw("/register", &with_token).await, browser.post_raw("/register", &[]).await] {
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{mode}");
            assert!(refused.texts("#sign-up-closed")[0].contains(words), "{mode}: {}", refused.body);
        }
        let count: i64 = users::table.count().get_result(&mut app.db()).unwrap();
        assert_eq!(count, 0, "{mode}: no account");
        app.mail_settled().await;
        assert!(app.mail.all().is_empty(), "{mode}: no mail");

        // Administrators still come from the command line.
        let output = app.create_admin_command("root@example.com", PASSWORD);
        assert!(output.status.success(), "{mode}: {}", String::from_utf8_lossy(&output.stderr));
        let admin = app.browser();
        app.sign_in(&admin, "root@example.com", PASSWORD).await.assert_redirects_to("/account");

        // Invitations are the way in where sign-up is by invitation; closed, there is none.
        let invited = admin.submit("/admin/invitations", "/admin/invitations", &[("email", "new@example.com")]).await;
        if mode == "invite" {
            invited.assert_redirects_to("/admin/invitations");
            let token = app.mail.wait_for("new@example.com", 1).await.link_token("/invite?token=");
            let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
            let person = app.browser();
            let accepted = person.submit(&format!("/invite?token={token}"), "/invite", &fields).await;
            accepted.assert_redirects_to("/account");
        } else {
            assert_eq!(invited.status, StatusCode::CONFLICT);
            assert!(invited.body.contains("Sign-up is closed"), "{}", invited.body);
            let link = browser.get("/invite?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
            assert!(link.texts("#sign-up-closed")[0].contains(words), "{}", link.body);
        }
    }
}
