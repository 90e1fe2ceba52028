use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, session_id, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    the_export_holds_the_account_its_sessions_and_events_and_no_secret,
    the_export_needs_a_recent_password,
);

async fn the_export_holds_the_account_its_sessions_and_events_and_no_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let (id, page) = (app.user_id("ann@example.com"), format!("/admin/users/{}", app.user_id("ann@example.com")));
    let disable = format!("/admin/users/{id}/disable");
    admin.submit(&disable, &disable, &[]).await.assert_redirects_to("/admin");
    admin.submit(&page, &format!("/admin/users/{id}/enable"), &[]).await.assert_redirects_to(&page);
    let ann = app.browser();
    app.sign_in(&ann, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let phone = app.browser();
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    app.sign_in(&app.browser(), "ann@example.com", "not the password at all").await;
    app.browser().submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let reset = app.mail.wait_for_subject("ann@example.com", "Reset your").await;
    let reset_token = reset.link_token("/password/reset?token=");

    let account = ann.get("/account").await;
    let link = account.texts("a[href='/account/export']");
    assert_eq!(link, ["Download your data"], "the account page links to it");
    let page = ann.get("/account/export").await;
    assert_eq!(page.texts("h1"), ["Download your data"], "a page says what the file holds");
    let download = ann.submit_form(&page, "/account/export", &[]).await;

    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.headers["content-type"], "application/json");
    assert!(download.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"account-"));
    let export: serde_json::Value = serde_json::from_str(&download.body).expect("JSON");
    assert_eq!(export["format"], "usher-account-export");
    assert_eq!(export["version"], 1);
    assert_eq!(export["account"]["email"], "ann@example.com");
    assert_eq!(export["account"]["approval"], "approved");
    assert!(export["account"]["last_sign_in_at"].as_str().unwrap().ends_with("+00:00"), "RFC 3339, UTC");
    let sessions = export["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|session| session["this_browser"] == true).count(), 1);
    let events: Vec<&str> = export["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in ["registered", "email verified", "signed in", "sign-in failed", "password reset requested"] {
        assert!(events.contains(&kind), "{kind} in {events:?}");
    }
    let by = |kind: &str| {
        let event = export["events"].as_array().unwrap().iter().find(|e| e["event"] == kind).unwrap();
        (event["by"].as_str().unwrap().to_owned(), event["ip"].as_str().unwrap().to_owned())
    };
    assert_eq!(by("disabled"), ("an administrator".to_owned(), String::new()), "no administrator's IP");
    assert_eq!(by("sign-in failed").0, "someone using the address");
    assert_eq!(by("signed in"), ("you".to_owned(), "127.0.0.1".to_owned()));
    assert!(!download.body.contains("root@example.com"), "no other person's address");
    // No secret of any kind.
    for secret in [session_id(&ann).unwrap(), session_id(&phone).unwrap(), reset_token] {
        assert!(!download.body.contains(&secret), "a secret in the export");
    }
    assert!(!download.body.contains("$argon2"), "no password hash");
    assert!(!download.body.contains("public_id"));
}

async fn the_export_needs_a_recent_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    app.clock.advance(std::time::Duration::from_secs(11 * 60));

    let asked = ann.get("/account/export").await;

    asked.assert_redirects_to("/account/reauth?next=%2Faccount%2Fexport");
    let reauth = ann.follow(&asked).await;
    let back = ann.submit_form(&reauth, "/account/reauth", &[("password", PASSWORD)]).await;
    back.assert_redirects_to("/account/export");
    assert_eq!(ann.follow(&back).await.status, StatusCode::OK);
}
