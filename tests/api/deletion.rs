use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{audit_events, email_changes, email_tokens, outbox, sessions, users};

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, session_id, sha256, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    deleting_needs_a_recent_password_and_the_address_typed_again,
    deletion_removes_what_it_says_and_keeps_a_tombstone_for_the_log,
    the_address_can_sign_up_again_at_once_as_a_new_account,
    an_administrator_deletes_a_user_after_a_confirmation_page,
    the_last_administrator_cannot_delete_their_account,
    a_sign_in_or_mail_racing_the_deletion_brings_nothing_back,
    a_goodbye_that_cannot_be_delivered_forgets_its_recipient,
    cleanup_keeps_tombstones,
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

async fn a_sign_in_or_mail_racing_the_deletion_brings_nothing_back(backend: Backend) {
    // Without required verification, only the tombstone itself can stop a session.
    let app = spawn_app_with(backend, &[("--require-email-verification", "false")]).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    let phone = app.browser();
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let sessions_before: Vec<usher::db::sessions::SessionRow> =
        sessions::table.filter(sessions::user_id.eq(id)).load(&mut app.db()).unwrap();

    delete_own_account(&ann, "ann@example.com").await.assert_redirects_to("/");
    app.mail.wait_for_subject("ann@example.com", "account was deleted").await;
    app.mail_settled().await;
    // What a sign-in whose password check straddled the deletion would
    // write after it: its session, and a new-browser notice.
    let mut conn = app.db();
    for row in &sessions_before {
        diesel::insert_into(sessions::table)
            .values((
                sessions::id_hash.eq(&row.id_hash),
                sessions::user_id.eq(id),
                sessions::public_id.eq(&row.public_id),
                sessions::state.eq(&row.state),
                sessions::remember.eq(row.remember),
                sessions::created_at.eq(row.created_at),
                sessions::last_seen_at.eq(row.last_seen_at),
                sessions::idle_expires_at.eq(row.idle_expires_at),
                sessions::absolute_expires_at.eq(row.absolute_expires_at),
                sessions::user_agent.eq(&row.user_agent),
                sessions::ip.eq(&row.ip),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let late = usher::db::outbox::NewMail {
        kind: "new_sign_in",
        recipient: "ann@example.com",
        user_id: Some(id),
        send_before: usher::db::now() + 3600,
        password_hash: None,
        event: None,
        email_change_id: None,
        invitation_id: None,
    };
    let late_id = usher::db::outbox::enqueue(&mut conn, late, "example.com", usher::db::now()).unwrap();

    let phone_hash = sha256(&session_id(&phone).unwrap());
    phone.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    let left: i64 = sessions::table.filter(sessions::id_hash.eq(&phone_hash)).count().get_result(&mut conn).unwrap();
    assert_eq!((sessions_before.len(), left), (2, 0), "the session is dropped on its first request");
    app.mail_settled().await;
    // (The phone's own sign-in notice may have gone out before the deletion.)
    let late: (String, String) =
        outbox::table.find(late_id).select((outbox::state, outbox::recipient)).first(&mut conn).unwrap();
    assert_eq!(late, ("skipped".to_owned(), String::new()), "not sent, and the address forgotten");
    let last = app.mail.to("ann@example.com").pop().unwrap();
    assert!(last.subject.contains("account was deleted"), "nothing after the goodbye: {}", last.subject);
}

async fn a_goodbye_that_cannot_be_delivered_forgets_its_recipient(backend: Backend) {
    let app = spawn_app_with(backend, &[("--mail-max-attempts", "1")]).await;
    let root = app.signed_in_admin("root@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;
    app.mail.reject_all_permanently(true);

    delete_own_account(&ann, "ann@example.com").await.assert_redirects_to("/");
    app.mail_settled().await;

    let (state, recipient, error): (String, String, Option<String>) = outbox::table
        .filter(outbox::kind.eq("account_deleted"))
        .select((outbox::state, outbox::recipient, outbox::last_error))
        .first(&mut app.db())
        .unwrap();
    assert_eq!((state.as_str(), recipient.as_str()), ("dead", ""));
    assert!(!error.unwrap_or_default().contains("ann@"), "no address in the kept error");
    let dashboard = root.get("/admin").await;
    let failed = dashboard.texts("#failed-mail li");
    assert!(
        failed[0].starts_with("Goodbye notice of a deleted account to an address removed with its account"),
        "{failed:?}"
    );
    assert!(!dashboard.body.contains("Send again"), "nothing to send it to");
}

async fn cleanup_keeps_tombstones(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    delete_own_account(&ann, "ann@example.com").await.assert_redirects_to("/");
    // Signed up long ago, as far as the never-verified cleanup can tell.
    let long_ago = usher::db::now() - 365 * 24 * 3600;
    diesel::update(users::table.find(id)).set(users::created_at.eq(long_ago)).execute(&mut app.db()).unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["cleanup", "--database-url", &app.database.url, "--unverified-ttl", "1s"])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run usher cleanup");

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("unverified accounts: 0"));
    assert!(stored_account(&app, id).2.is_some(), "the tombstone stays, and the log's links with it");
}
