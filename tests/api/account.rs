use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::sessions;

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, session_id, sha256, spawn_app};
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
    one_session_can_be_ended_from_the_list_which_shows_this_browser_first,
    a_session_of_another_account_cannot_be_ended,
    ending_sessions_after_the_reauth_window_asks_for_the_password_first,
    confirming_it_is_you_counts_wrong_passwords_like_failed_sign_ins,
    a_destructive_admin_action_asks_for_the_password_after_the_window,
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
    let flash = this.follow(&page).await.texts(".flash");
    assert_eq!(flash, ["Done: Your password was changed. Your other session was signed out."]);
    assert_ne!(this.cookie("usher_session").unwrap(), old_cookie, "new session id");
    assert_eq!(this.get("/account").await.status, StatusCode::OK, "this session continues");
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER, "the other one ended");
    let replay = app.browser();
    replay.set_cookie("usher_session", &old_cookie);
    assert_eq!(replay.get("/account").await.status, StatusCode::SEE_OTHER, "the old id is dead");
    let fresh = app.browser();
    assert_eq!(app.sign_in(&fresh, "ann@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.sign_in(&fresh, "ann@example.com", NEW_PASSWORD).await.assert_redirects_to("/account");
    let notice = app.mail.wait_for_subject("ann@example.com", "password was changed").await;
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

/// The public id naming `browser`'s session on the account page.
fn public_id(app: &TestApp, browser: &Browser) -> String {
    let hash = sha256(&session_id(browser).expect("a session cookie"));
    sessions::table.filter(sessions::id_hash.eq(hash)).select(sessions::public_id).first(&mut app.db()).unwrap()
}

async fn one_session_can_be_ended_from_the_list_which_shows_this_browser_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    let (phone, laptop) = (app.browser(), app.browser());
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    app.sign_in(&laptop, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let page = this.get("/account").await;
    let rows = page.table("#sessions li");
    assert_eq!(rows.len(), 3);
    let items = page.texts("#sessions li");
    assert!(items[0].contains("this browser"), "this browser first: {items:?}");
    let forms = crate::helpers::HtmlForm::all_on(&page.body);
    let own = format!("/account/sessions/{}/revoke", public_id(&app, &this));
    assert!(!forms.iter().any(|(_, action)| *action == own), "no button to end this one: {forms:?}");

    let ended = this.submit_form(&page, &format!("/account/sessions/{}/revoke", public_id(&app, &phone)), &[]).await;

    ended.assert_redirects_to("/account");
    assert!(this.follow(&ended).await.body.contains("That session was signed out."));
    assert_eq!(phone.get("/account").await.status, StatusCode::SEE_OTHER, "the phone is signed out");
    assert_eq!(laptop.get("/account").await.status, StatusCode::OK, "the laptop is not");
    assert_eq!(this.get("/account").await.status, StatusCode::OK);
    let events = this.get("/account").await;
    assert_eq!(events.table("#sessions li").len(), 2);
}

async fn a_session_of_another_account_cannot_be_ended(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let ann_phone = app.browser();
    app.sign_in(&ann_phone, "ann@example.com", PASSWORD).await;
    let bob = app.signed_in_user("bob@example.com").await;
    let page = ann.get("/account").await;
    // Ann's own form, aimed at Bob's session (as a forged request would be).
    let body = page.form(&format!("/account/sessions/{}/revoke", public_id(&app, &ann_phone))).encode();
    let origin = ("origin", ann.base.as_str());

    for id in [public_id(&app, &bob), "no-such-session".to_owned()] {
        let refused = ann.post_with_header(&format!("/account/sessions/{id}/revoke"), origin, body.clone()).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    }
    assert_eq!(bob.get("/account").await.status, StatusCode::OK, "Bob is still signed in");
    assert_eq!(ann_phone.get("/account").await.status, StatusCode::OK);
}

async fn ending_sessions_after_the_reauth_window_asks_for_the_password_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let this = app.signed_in_user("ann@example.com").await;
    let other = app.browser();
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    app.sign_in(&other, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let page = this.get("/account").await;

    let asked = this.submit_form(&page, "/account/sessions/revoke-others", &[]).await;

    asked.assert_redirects_to("/account/reauth?next=%2Faccount");
    assert_eq!(other.get("/account").await.status, StatusCode::OK, "nothing ended yet");
    let reauth = this.follow(&asked).await;
    assert!(
        reauth.body.contains("Confirm it&#x27;s you") || reauth.body.contains("Confirm it's you"),
        "{}",
        reauth.body
    );
    let wrong = this.submit_form(&reauth, "/account/reauth", &[("password", "not my password at all")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("That is not your password."));
    let confirmed = this.submit_form(&wrong, "/account/reauth", &[("password", PASSWORD)]).await;
    confirmed.assert_redirects_to("/account");

    let ended = this.submit("/account", "/account/sessions/revoke-others", &[]).await;
    ended.assert_redirects_to("/account");
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER, "ended after confirming");
    // The confirmation lasts USHER_REAUTH_TTL, then is asked for again.
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let again = this.submit("/account", "/account/sessions/revoke-others", &[]).await;
    again.assert_redirects_to("/account/reauth?next=%2Faccount");
}

async fn confirming_it_is_you_counts_wrong_passwords_like_failed_sign_ins(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, &[("--limit-sign-in-per-address", "3/15m")]).await;
    let this = app.signed_in_user("ann@example.com").await;
    let mut last = this.get("/account/reauth?next=%2Faccount").await;
    for _ in 0..4 {
        last = this.submit("/account/reauth", "/account/reauth", &[("password", "wrong password again")]).await;
        if last.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.body);
    let stranger = app.browser();
    let locked = app.sign_in(&stranger, "ann@example.com", PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "the same throttle as sign-in");
}

async fn a_destructive_admin_action_asks_for_the_password_after_the_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    let users = admin.get("/admin/users").await;
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    admin.get("/admin").await; // keeps the session from idling out

    let confirm_page = format!("/admin/users/{id}/disable?back=%2Fadmin%2Fusers");
    let asked = admin.get(&confirm_page).await;
    let next = serde_urlencoded::to_string([("next", confirm_page.as_str())]).unwrap();
    asked.assert_redirects_to(&format!("/account/reauth?{next}"));
    // A form left open past the window is not acted on either.
    let action = format!("/admin/users/{id}/disable");
    let posted = admin
        .post_with_header(
            &action,
            ("origin", admin.base.as_str()),
            format!("csrf_token={}&back=%2Fadmin%2Fusers", users.csrf_token()),
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert!(posted.location().unwrap().starts_with("/account/reauth?"), "{:?}", posted.location());
    let ann = app.browser();
    app.sign_in(&ann, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");

    let reauth = admin.follow(&asked).await;
    let back = admin.submit_form(&reauth, "/account/reauth", &[("password", PASSWORD)]).await;
    back.assert_redirects_to(&confirm_page);
    let confirmation = admin.follow(&back).await;
    admin.submit_form(&confirmation, &action, &[]).await.assert_redirects_to("/admin/users");
    assert_eq!(ann.get("/account").await.status, StatusCode::SEE_OTHER, "disabled after confirming");
}
