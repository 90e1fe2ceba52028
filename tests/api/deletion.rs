use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{audit_events, email_changes, email_tokens, outbox, sessions, users};

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    deleting_needs_a_recent_password_and_the_address_typed_again,
    deletion_removes_what_it_says_and_keeps_a_tombstone_for_the_log,
    the_address_can_sign_up_again_at_once_as_a_new_account,
    an_administrator_deletes_a_user_after_a_confirmation_page,
    the_last_administrator_cannot_delete_their_account,
);

/// Deletes the account signed in in `browser` from its own page.
async fn delete_own_account(browser: &Browser, typed: &str) -> crate::helpers::Page {
    browser.submit("/account/delete", "/account/delete", &[("confirm", typed)]).await
}

/// The account's row, as stored: (email, password_hash, deleted_at).
fn stored_account(app: &TestApp, id: i64) -> (String, String, Option<i64>) {
    users::table
        .find(id)
        .select((users::email, users::password_hash, users::deleted_at))
        .first(&mut app.db())
        .expect("the row stays")
}

async fn deleting_needs_a_recent_password_and_the_address_typed_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    app.clock.advance(std::time::Duration::from_secs(11 * 60));

    let asked = ann.get("/account/delete").await;
    asked.assert_redirects_to("/account/reauth?next=%2Faccount%2Fdelete");
    let reauth = ann.follow(&asked).await;
    ann.submit_form(&reauth, "/account/reauth", &[("password", PASSWORD)]).await.assert_redirects_to("/account/delete");
    let link = ann.get("/account").await.texts("a[href='/account/delete']");
    assert_eq!(link, ["Delete your account"], "the account page links to it");

    let mistyped = delete_own_account(&ann, "anne@example.com").await;
    assert_eq!(mistyped.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        mistyped.texts("#confirm-error"),
        ["Error: That is not your account's address. Type it exactly as shown above."]
    );
    assert_eq!(mistyped.input_value("confirm").as_deref(), Some("anne@example.com"), "what was typed stays");
    assert_eq!(stored_account(&app, id).2, None, "nothing deleted");
    assert_eq!(ann.get("/account").await.status, StatusCode::OK, "still signed in");

    let deleted = delete_own_account(&ann, " Ann@Example.COM ").await;

    deleted.assert_redirects_to("/");
    let home = ann.follow(&deleted).await;
    assert!(home.body.contains("Your account was deleted. A last email went to ann@example.com."), "{}", home.body);
    assert!(stored_account(&app, id).2.is_some());
    ann.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
}

async fn deletion_removes_what_it_says_and_keeps_a_tombstone_for_the_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    let phone = app.browser();
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    app.sign_in(&app.browser(), "ann@example.com", "not the password at all").await;
    app.browser().submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let reset = app.mail.wait_for_subject("ann@example.com", "Reset your").await.link_token("/password/reset?token=");
    ann.submit("/account/email", "/account/email", &[("email", "ann.new@example.com")]).await;
    app.mail.wait_for_subject("ann.new@example.com", "Confirm").await;
    app.mail_settled().await;

    delete_own_account(&ann, "ann@example.com").await.assert_redirects_to("/");

    // Signed out everywhere, and no way back in.
    phone.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    let sign_in = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    assert_eq!(sign_in.status, StatusCode::UNAUTHORIZED);
    let reset_page = app.browser().get(&format!("/password/reset?token={reset}")).await;
    assert_eq!(reset_page.status, StatusCode::GONE, "the reset link died with the account");
    // The tombstone: the id stays, the address and password go.
    let (email, hash, deleted_at) = stored_account(&app, id);
    assert!(!email.contains('@') && hash.is_empty() && deleted_at.is_some(), "{email} {hash} {deleted_at:?}");
    let mut conn = app.db();
    let count_sessions: i64 = sessions::table.filter(sessions::user_id.eq(id)).count().get_result(&mut conn).unwrap();
    let count_tokens: i64 =
        email_tokens::table.filter(email_tokens::user_id.eq(id)).count().get_result(&mut conn).unwrap();
    let count_changes: i64 =
        email_changes::table.filter(email_changes::user_id.eq(id)).count().get_result(&mut conn).unwrap();
    assert_eq!((count_sessions, count_tokens, count_changes), (0, 0, 0));
    // The log keeps its events, linked to the tombstone, without the addresses.
    let events: Vec<(String, String)> = audit_events::table
        .filter(audit_events::user_id.eq(id))
        .select((audit_events::kind, audit_events::detail))
        .load(&mut conn)
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    for kind in ["registered", "signed in", "sign-in failed", "address change requested", "account deleted"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(events.iter().all(|(_, detail)| !detail.contains("ann")), "{events:?}");
    // The goodbye arrives, and then the outbox forgets the address too.
    let goodbye = app.mail.wait_for_subject("ann@example.com", "account was deleted").await;
    assert!(goodbye.text.contains("after its password was typed again"), "{}", goodbye.text);
    app.mail_settled().await;
    let recipients: Vec<String> = outbox::table.select(outbox::recipient).load(&mut app.db()).unwrap();
    assert!(recipients.iter().all(|to| !to.contains("ann")), "{recipients:?}");
    assert!(!app.dump_all_tables().contains("ann"), "no trace of the address");
    // Administrators see the tombstone by its number.
    let admin = app.signed_in_admin("root@example.com").await;
    let log = admin.get(&format!("/admin/events?user={id}")).await;
    assert!(log.body.contains("account deleted"), "{}", log.body);
    let tombstone = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(tombstone.texts("h1"), [format!("deleted account #{id}")]);
    assert_eq!(tombstone.texts(".actions a, .actions button"), Vec::<String>::new(), "no actions on a tombstone");
    let everyone = admin.get("/admin/users").await;
    assert!(!everyone.body.contains(&format!("/admin/users/{id}\"")), "not in the list");
}

async fn the_address_can_sign_up_again_at_once_as_a_new_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let old_id = app.user_id("ann@example.com");
    delete_own_account(&ann, "ann@example.com").await.assert_redirects_to("/");
    app.mail.wait_for_subject("ann@example.com", "account was deleted").await;

    let again = app.browser();
    app.register(&again, "ann@example.com").await.assert_redirects_to("/verify");
    // Mail to ann: the first confirmation, the goodbye, the new confirmation.
    let token = app.mail.wait_for("ann@example.com", 3).await.verify_token();
    again
        .submit(&format!("/verify?token={token}"), "/verify", &[("token", &token)])
        .await
        .assert_redirects_to("/login");

    assert_ne!(app.user_id("ann@example.com"), old_id, "a new account");
    app.sign_in(&again, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn an_administrator_deletes_a_user_after_a_confirmation_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.signed_in_admin("root@example.com").await;
    let bob = app.signed_in_user("bob@example.com").await;
    let (id, root_id) = (app.user_id("bob@example.com"), app.user_id("root@example.com"));
    let page = format!("/admin/users/{id}");

    let user_page = root.get(&page).await;
    let delete_link = format!("/admin/users/{id}/delete?back=%2Fadmin%2Fusers%2F{id}");
    assert_eq!(user_page.texts(&format!("a[href='{delete_link}']")), ["Delete… bob@example.com"]);
    let confirm = root.get(&delete_link).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.texts("#consequences li").iter().any(|line| line.contains("cannot be undone")));
    let done = root.submit_form(&confirm, &format!("/admin/users/{id}/delete"), &[]).await;

    done.assert_redirects_to(&page);
    let after = root.follow(&done).await;
    assert!(after.body.contains("bob@example.com was deleted."), "{}", after.body);
    assert_eq!(after.texts("h1"), [format!("deleted account #{id}")]);
    bob.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    let (kind, actor): (String, Option<i64>) = audit_events::table
        .filter(audit_events::user_id.eq(id))
        .order(audit_events::id.desc())
        .select((audit_events::kind, audit_events::actor_id))
        .first(&mut app.db())
        .unwrap();
    assert_eq!((kind.as_str(), actor), ("account deleted", Some(root_id)));
    let goodbye = app.mail.wait_for_subject("bob@example.com", "account was deleted").await;
    assert!(goodbye.text.contains("An administrator of"), "{}", goodbye.text);
    assert!(!goodbye.text.contains("IP address"), "no administrator's IP: {}", goodbye.text);

    // Nobody deletes their own account from the admin pages.
    let own = root.get(&format!("/admin/users/{root_id}/delete?back=%2Fadmin")).await;
    own.assert_redirects_to("/admin");
    assert!(root.follow(&own).await.body.contains("You cannot reject, disable or delete your own account here."));
    let forced =
        root.post_raw(&format!("/admin/users/{root_id}/delete"), &[("csrf_token", &confirm.csrf_token())]).await;
    assert!(root.follow(&forced).await.body.contains("your own account"));
    assert_eq!(stored_account(&app, root_id).2, None);
}

async fn the_last_administrator_cannot_delete_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.signed_in_admin("root@example.com").await;
    let root_id = app.user_id("root@example.com");

    let refused = delete_own_account(&root, "root@example.com").await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.texts("#confirm-error")[0].contains("You are the site's only administrator"), "{}", refused.body);
    assert_eq!(stored_account(&app, root_id).2, None);
    assert_eq!(root.get("/account").await.status, StatusCode::OK);

    // With a second administrator, the first may go.
    let output = app.create_admin_command("second@example.com", "a second admin's password 42");
    assert!(output.status.success());
    delete_own_account(&root, "root@example.com").await.assert_redirects_to("/");
    assert!(stored_account(&app, root_id).2.is_some());
}
