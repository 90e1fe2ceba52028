use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::sessions;

use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

const NEW_PASSWORD: &str = "marble orchestra lantern 97";

on_both_backends!(
    the_account_page_lists_sessions_and_marks_this_one,
    signing_out_other_sessions_keeps_this_one,
    changing_the_password_keeps_this_session_under_a_new_id_and_ends_the_others,
    a_wrong_current_password_changes_nothing,
    changing_the_password_voids_outstanding_reset_links,
    a_weak_new_password_is_refused_with_a_reason,
    a_user_has_at_most_fifty_sessions,
    the_account_loaded_with_a_session_is_never_stored_in_it,
);

async fn the_account_page_lists_sessions_and_marks_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in_user("ann@example.com").await;
    let second = app.browser();
    app.sign_in(&second, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let page = first.get("/account").await;

    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("Signed in ").count(), 2, "{}", page.body);
    assert_eq!(page.body.matches("this browser").count(), 1);
    assert!(page.body.contains("usher-tests/1.0"), "user agent shown");
    assert!(page.body.contains("127.0.0.1"), "address shown");
    assert!(page.body.contains(" UTC"), "times shown");
}

async fn signing_out_other_sessions_keeps_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    let other = app.browser();
    app.sign_in(&other, "ann@example.com", PASSWORD).await;

    let page = this.submit("/account", "/account/sessions/revoke-others", &[]).await;

    page.assert_redirects_to("/account");
    assert!(this.follow(&page).await.body.contains("Signed out 1 other session."));
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(this.get("/account").await.status, StatusCode::OK);
}

async fn changing_the_password_keeps_this_session_under_a_new_id_and_ends_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    let other = app.browser();
    app.sign_in(&other, "ann@example.com", PASSWORD).await;
    let old_cookie = this.cookie("usher_session").unwrap();

    let fields = [("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)];
    let page = this.submit("/account", "/account/password", &fields).await;

    page.assert_redirects_to("/account");
    assert!(this.follow(&page).await.body.contains("Your password was changed"));
    assert_ne!(this.cookie("usher_session").unwrap(), old_cookie, "new session id");
    assert_eq!(this.get("/account").await.status, StatusCode::OK, "this session continues");
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER, "the other one ended");
    let replay = app.browser();
    replay.set_cookie("usher_session", &old_cookie);
    assert_eq!(replay.get("/account").await.status, StatusCode::SEE_OTHER, "the old id is dead");
    let fresh = app.browser();
    assert_eq!(app.sign_in(&fresh, "ann@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.sign_in(&fresh, "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
    let notice = app.mail.wait_for("ann@example.com", 2).await;
    assert!(notice.subject.contains("password was changed"));
    let today = chrono::Utc::now().format("%-d %B %Y").to_string();
    for part in [&notice.text, &notice.html] {
        assert!(part.contains(&format!("was changed on {today} at ")), "when: {part}");
        assert!(part.contains("UTC, from an unknown browser (IP address 127.0.0.1)"), "how and from where: {part}");
    }
}

async fn a_wrong_current_password_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;

    let fields =
        [("current_password", "not my password"), ("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)];
    let page = this.submit("/account", "/account/password", &fields).await;

    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("current password is not right"));
    assert_eq!(this.get("/account").await.status, StatusCode::OK);
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn a_weak_new_password_is_refused_with_a_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;

    let fields = [("current_password", PASSWORD), ("password", "short"), ("password_confirm", "short")];
    let page = this.submit("/account", "/account/password", &fields).await;

    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Use at least 12 characters"));
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn a_user_has_at_most_fifty_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let oldest = app.signed_in_user("ann@example.com").await;
    // Sign-ins in one second share a timestamp; let the first one be older.
    app.clock.advance(std::time::Duration::from_secs(1));

    for _ in 0..50 {
        app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    }

    assert_eq!(app.row_counts().sessions, 50);
    assert_eq!(oldest.get("/account").await.status, StatusCode::SEE_OTHER, "the oldest was evicted");
}

async fn the_account_loaded_with_a_session_is_never_stored_in_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    assert!(this.get("/account").await.body.contains("ann@example.com"), "the page shows the loaded account");

    // A password change saves the loaded session again under a new id.
    let fields = [("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)];
    this.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");
    assert_eq!(this.get("/account").await.status, StatusCode::OK);

    let stored: Vec<String> = sessions::table.select(sessions::state).load(&mut app.db()).unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("user_id") && !stored[0].contains("\"account\""), "{}", stored[0]);
}

async fn changing_the_password_voids_outstanding_reset_links(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    let elsewhere = app.browser();
    elsewhere.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let token = app.mail.wait_for("ann@example.com", 2).await.link_token("/password/reset?token=");
    let reset_form = elsewhere.get(&format!("/password/reset?token={token}")).await;
    assert_eq!(reset_form.status, StatusCode::OK, "the link works before the change");

    let fields = [("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)];
    this.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");

    assert_eq!(elsewhere.get(&format!("/password/reset?token={token}")).await.status, StatusCode::GONE);
    let hijack = "someone else's password 55";
    let hijacked = [("password", hijack), ("password_confirm", hijack)];
    let late = elsewhere.submit_form(&reset_form, "/password/reset", &hijacked).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert_eq!(app.sign_in(&app.browser(), "ann@example.com", hijack).await.status, StatusCode::UNAUTHORIZED);
    app.sign_in(&app.browser(), "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
}
