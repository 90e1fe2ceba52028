use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{audit_events, users};
use usher::db::users::{NewUser, User};

use crate::helpers::{Backend, PASSWORD, TestApp, html_unescape, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    create_admin_makes_a_new_administrator_or_promotes_an_existing_user,
    create_admin_refuses_a_weak_password_or_a_bad_email,
    create_admin_refuses_an_account_whose_address_was_never_confirmed,
    with_approval_required_a_verified_sign_up_waits,
    approving_emails_the_user_who_can_then_sign_in,
    rejecting_refuses_sign_in_and_can_be_undone,
    disabling_ends_live_sessions_and_enabling_restores_sign_in,
    an_admin_cannot_disable_themselves_or_the_last_admin,
    reject_is_only_for_waiting_sign_ups_and_never_leaves_no_approved_admin,
    two_admins_disabling_each_other_at_once_leave_one_enabled,
    only_admins_reach_admin_pages,
    a_demoted_admin_loses_the_admin_pages_at_once,
    admin_actions_need_the_csrf_token,
    the_user_list_searches_by_prefix_and_pages_through_everyone,
    security_events_are_recorded_and_shown_without_secrets,
    dead_mail_is_shown_and_can_be_sent_again,
    the_event_log_names_accounts_and_filters_by_kind_and_account,
    approving_an_unconfirmed_account_says_what_is_left_to_do,
    the_admin_pages_count_who_waits_mark_the_current_page_and_list_users_in_a_table,
    the_user_list_filters_by_state_through_search_paging_and_actions,
    the_user_list_shows_each_accounts_last_sign_in,
    the_waiting_count_stops_at_99_plus,
);

async fn approval_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("--require-admin-approval", "true")]).await
}

/// Presses an action's button as an admin would, from the user's page; a
/// destructive action goes through its confirmation page, whose refusal
/// (a redirect with the reason) is returned as it comes.
async fn act(app: &TestApp, admin: &crate::helpers::Browser, email: &str, action: &str) -> crate::helpers::Page {
    let id = app.user_id(email);
    let page = format!("/admin/users/{id}");
    let url = format!("/admin/users/{id}/{action}");
    if !matches!(action, "reject" | "disable") {
        return admin.submit(&page, &url, &[]).await;
    }
    let confirmation = admin.get(&format!("{url}?back=%2Fadmin%2Fusers%2F{id}")).await;
    if confirmation.status != StatusCode::OK {
        return confirmation;
    }
    admin.submit_form(&confirmation, &url, &[]).await
}

async fn create_admin_makes_a_new_administrator_or_promotes_an_existing_user(backend: Backend) {
    let app = spawn_app(backend).await;

    let admin = app.signed_in_admin("root@example.com").await;
    assert_eq!(admin.get("/admin").await.status, StatusCode::OK);
    assert!(admin.get("/account").await.body.contains("href=\"/admin\""), "a link to the admin pages");

    let bob = app.signed_in_user("bob@example.com").await;
    assert_eq!(bob.get("/admin").await.status, StatusCode::FORBIDDEN);
    let output = app.create_admin_command("bob@example.com", "");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("is now an administrator"));
    assert_eq!(bob.get("/admin").await.status, StatusCode::OK);
    app.sign_in(&app.browser(), "bob@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn create_admin_refuses_a_weak_password_or_a_bad_email(backend: Backend) {
    let app = spawn_app(backend).await;
    for (email, password, complaint) in
        [("root@example.com", "password1234", "too easy to guess"), ("not-an-email", PASSWORD, "--email")]
    {
        let output = app.create_admin_command(email, password);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{email}");
        assert!(stderr.contains(complaint), "{email}: {stderr}");
    }
    assert_eq!(app.row_counts().users, 0);
}

async fn create_admin_refuses_an_account_whose_address_was_never_confirmed(backend: Backend) {
    let app = spawn_app_with(backend, &[("--require-email-verification", "false")]).await;
    // Someone registered the operator's address first and chose its password.
    let squatter = app.browser();
    app.register(&squatter, "admin@example.com").await.assert_redirects_to("/verify");
    app.sign_in(&squatter, "admin@example.com", PASSWORD).await.assert_redirects_to("/account");

    let output = app.create_admin_command("admin@example.com", "operator chose this one 77");

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("was never confirmed"), "{output:?}");
    assert_eq!(squatter.get("/admin").await.status, StatusCode::FORBIDDEN, "no administrator rights");
    let user = User::find_by_email(&mut app.db(), "admin@example.com").unwrap().unwrap();
    assert!(!user.is_admin && user.email_verified_at.is_none());
}

async fn with_approval_required_a_verified_sign_up_waits(backend: Backend) {
    let app = approval_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();

    let right = app.sign_in(&browser, "ann@example.com", PASSWORD).await;
    let wrong = app.sign_in(&browser, "ann@example.com", "not the password").await;

    assert_eq!(right.status, StatusCode::FORBIDDEN);
    assert!(right.body.contains("Awaiting approval"), "{}", right.body);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.body.contains("approv"), "a wrong password learns nothing about approval");
    assert_eq!(app.row_counts().sessions, 0);
}

async fn approving_emails_the_user_who_can_then_sign_in(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    app.register(&app.browser(), "unverified@example.com").await;
    let dashboard = admin.get("/admin").await;
    assert!(dashboard.body.contains("ann@example.com"), "{}", dashboard.body);
    assert!(!dashboard.body.contains("unverified@example.com"), "only verified sign-ups wait for approval");

    let id = app.user_id("ann@example.com");
    let page = admin.submit("/admin", &format!("/admin/users/{id}/approve"), &[("back", "/admin")]).await;

    page.assert_redirects_to("/admin");
    let after = admin.follow(&page).await;
    assert!(after.body.contains("ann@example.com was approved."));
    assert!(!after.body.contains("href=\"/admin/users/"), "nobody waits any more");
    let mail = app.mail.wait_for("ann@example.com", 2).await;
    assert!(mail.subject.contains("approved"), "{}", mail.subject);
    assert!(mail.text.contains(&format!("{}/login", app.address)));
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn rejecting_refuses_sign_in_and_can_be_undone(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;

    act(&app, &admin, "ann@example.com", "reject").await;

    let refused = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Not approved"));
    assert!(app.mail.wait_for("ann@example.com", 2).await.subject.contains("not approved"));

    // Undone from the user list, whose rows carry the action buttons.
    let list = admin.get("/admin/users?q=ann").await;
    let id = app.user_id("ann@example.com");
    assert!(list.body.contains(&format!("action=\"/admin/users/{id}/approve\"")), "{}", list.body);
    let back = "/admin/users?q=ann";
    admin.submit(back, &format!("/admin/users/{id}/approve"), &[("back", back)]).await.assert_redirects_to(back);
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn disabling_ends_live_sessions_and_enabling_restores_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;

    let page = act(&app, &admin, "ann@example.com", "disable").await;

    assert!(admin.follow(&page).await.body.contains("ann@example.com was disabled."));
    assert_eq!(ann.get("/account").await.status, StatusCode::SEE_OTHER, "her live session ended");
    let refused = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    act(&app, &admin, "ann@example.com", "enable").await;
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn an_admin_cannot_disable_themselves_or_the_last_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.signed_in_admin("root@example.com").await;

    let own = act(&app, &root, "root@example.com", "disable").await;
    assert!(root.follow(&own).await.body.contains("You cannot reject, disable or delete your own account here."));

    let second = app.signed_in_admin("second@example.com").await;
    act(&app, &second, "root@example.com", "disable").await;
    // Root is disabled; second, the last enabled admin, cannot disable their own account.
    let last = act(&app, &second, "second@example.com", "disable").await;
    assert!(second.follow(&last).await.body.contains("You cannot reject, disable or delete your own account here."));
    assert_eq!(app.sign_in(&app.browser(), "root@example.com", PASSWORD).await.status, StatusCode::FORBIDDEN);
    let mut conn = app.db();
    let second_user = User::find_by_email(&mut conn, "second@example.com").unwrap().unwrap();
    assert!(second_user.disabled_at.is_none());
    assert_eq!(User::count_active_admins(&mut conn).unwrap(), 1);
}

async fn reject_is_only_for_waiting_sign_ups_and_never_leaves_no_approved_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.signed_in_admin("root@example.com").await;
    let second = app.signed_in_admin("second@example.com").await;
    let root_page = root.get(&format!("/admin/users/{}", app.user_id("root@example.com"))).await;
    assert!(
        !root_page.body.contains("/reject?") && !root_page.body.contains("/disable?"),
        "nothing destructive offered on one's own account"
    );

    let own = act(&app, &root, "root@example.com", "reject").await;
    assert!(root.follow(&own).await.body.contains("You cannot reject, disable or delete your own account here."));
    let approved = act(&app, &second, "root@example.com", "reject").await;
    assert!(second.follow(&approved).await.body.contains("Only sign-ups waiting for approval can be rejected."));
    // Root's approval withdrawn behind the admin pages' back: approval is not required here,
    // so root still signs in, but is no longer an approved administrator.
    let root_id = app.user_id("root@example.com");
    diesel::update(users::table.find(root_id)).set(users::approval.eq("rejected")).execute(&mut app.db()).unwrap();
    let last = act(&app, &root, "second@example.com", "disable").await;

    assert!(root.follow(&last).await.body.contains("without an enabled, approved administrator"));
    let mut conn = app.db();
    let second_user = User::find_by_email(&mut conn, "second@example.com").unwrap().unwrap();
    assert_eq!(second_user.approval, "approved");
    assert!(second_user.disabled_at.is_none());
    assert_eq!(User::count_active_admins(&mut conn).unwrap(), 1);
}

async fn two_admins_disabling_each_other_at_once_leave_one_enabled(backend: Backend) {
    let app = spawn_app(backend).await;
    // Several rounds: without the lock, both checks often pass before either write.
    for round in 0..3 {
        let (a, b) = (format!("ann{round}@example.com"), format!("bob{round}@example.com"));
        let (ann, bob) = (app.signed_in_admin(&a).await, app.signed_in_admin(&b).await);
        let (ann_id, bob_id) = (app.user_id(&a), app.user_id(&b));
        // Both confirmation pages are open before either button is pressed.
        let ann_page = ann.get(&format!("/admin/users/{bob_id}/disable")).await;
        let bob_page = bob.get(&format!("/admin/users/{ann_id}/disable")).await;

        let ann_action = format!("/admin/users/{bob_id}/disable");
        let bob_action = format!("/admin/users/{ann_id}/disable");
        tokio::join!(ann.submit_form(&ann_page, &ann_action, &[]), bob.submit_form(&bob_page, &bob_action, &[]));

        assert_eq!(User::count_active_admins(&mut app.db()).unwrap(), 1, "round {round}: exactly one was disabled");
        // The survivor ends the round as the only administrator; the next pair joins it.
        let survivor =
            if app.sign_in(&app.browser(), &a, PASSWORD).await.location() == Some("/account") { a } else { b };
        diesel::update(users::table.filter(users::email.eq(&survivor)))
            .set(users::is_admin.eq(false))
            .execute(&mut app.db())
            .unwrap();
    }
}

async fn only_admins_reach_admin_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_in_admin("root@example.com").await;
    let user = app.signed_in_user("ann@example.com").await;
    let anonymous = app.browser();
    let id = app.user_id("ann@example.com");
    let pages =
        ["/admin".to_owned(), "/admin/users".to_owned(), format!("/admin/users/{id}"), "/admin/events".to_owned()];
    let actions = ["approve", "reject", "disable", "enable"].map(|a| format!("/admin/users/{id}/{a}"));

    for page in &pages {
        assert_eq!(user.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
        let redirect = anonymous.get(page).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{page}");
        assert!(redirect.location().unwrap().starts_with("/login?next="), "{page}");
    }
    let token = user.get("/account").await.csrf_token();
    for action in actions.iter().chain([&"/admin/mail/1/retry".to_owned()]) {
        let page = user.post_raw(action, &[("csrf_token", &token)]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(user.get("/account").await.status, StatusCode::OK, "nothing happened to her");
}

async fn a_demoted_admin_loses_the_admin_pages_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    assert_eq!(admin.get("/admin").await.status, StatusCode::OK);

    let id = app.user_id("root@example.com");
    diesel::update(users::table.find(id)).set(users::is_admin.eq(false)).execute(&mut app.db()).unwrap();

    assert_eq!(admin.get("/admin").await.status, StatusCode::FORBIDDEN);
    assert!(!admin.get("/account").await.body.contains("href=\"/admin\""), "no link to the admin pages");
}

async fn admin_actions_need_the_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;
    let id = app.user_id("ann@example.com");

    let page = admin.post_raw(&format!("/admin/users/{id}/disable"), &[("back", "/admin")]).await;

    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(ann.get("/account").await.status, StatusCode::OK);
}

fn seed_users(app: &TestApp, count: usize) {
    let emails: Vec<String> = (0..count).map(|i| format!("user{i:03}@example.com")).collect();
    insert_users(app, &emails, "approved");
}

/// Inserts verified accounts with these addresses and this approval state
/// straight into the database; their ids.
fn insert_users(app: &TestApp, emails: &[String], approval: &str) -> Vec<i64> {
    let mut conn = app.db();
    emails
        .iter()
        .map(|email| {
            let user = NewUser {
                email,
                password_hash: "unused",
                email_verified_at: Some(1),
                approval,
                is_admin: false,
                created_at: 1,
                updated_at: 1,
            };
            User::insert(&mut conn, &user).unwrap().unwrap()
        })
        .collect()
}

async fn the_user_list_searches_by_prefix_and_pages_through_everyone(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    seed_users(&app, 120);

    let search = admin.get("/admin/users?q=User11").await;
    let found = search.body.matches("@example.com</a>").count();
    assert_eq!(found, 10, "user110 to user119:\n{}", search.body);
    assert!(!search.body.contains("user012@"));

    let (seen, last_page) = walk(&admin, "/admin/users", "next").await;
    assert_eq!(seen.len(), 121, "every user once, the admin included");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in order, no repeats");

    // And back again from the last page, by "Previous page".
    let (mut back, first_page) = walk(&admin, &last_page, "prev").await;
    back.reverse();
    assert_eq!(back, seen, "the same users, page by page, backwards");
    assert_eq!(first_page, format!("/admin/users?before={}", seen[50].replace('@', "%40")), "back at the start");
    assert!(!admin.get(&first_page).await.body.contains("rel=\"prev\""), "nothing before the first page");
}

/// Follows the `rel` links from `start` to the end; the addresses seen in
/// page order (pages in the order visited), and the last page's address.
async fn walk(admin: &crate::helpers::Browser, start: &str, rel: &str) -> (Vec<String>, String) {
    let (mut seen, mut path, mut pages) = (Vec::new(), start.to_owned(), 0);
    loop {
        pages += 1;
        assert!(pages <= 5, "paging does not end");
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let mut on_page: Vec<String> = page
            .body
            .match_indices("@example.com</a>")
            .map(|(at, _)| {
                let start = page.body[..at].rfind('>').unwrap() + 1;
                format!("{}@example.com", &page.body[start..at])
            })
            .collect();
        if rel == "prev" {
            on_page.reverse();
        }
        seen.extend(on_page);
        let marker = format!("\" rel=\"{rel}\"");
        let Some(end) = page.body.find(&marker) else { return (seen, path) };
        let start = page.body[..end].rfind("href=\"").unwrap() + "href=\"".len();
        path = html_unescape(&page.body[start..end]);
    }
}

async fn security_events_are_recorded_and_shown_without_secrets(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let ann = app.browser();
    assert_eq!(app.sign_in(&ann, "ann@example.com", "a wrong password!").await.status, StatusCode::UNAUTHORIZED);
    act(&app, &admin, "ann@example.com", "reject").await;
    act(&app, &admin, "ann@example.com", "approve").await;
    app.sign_in(&ann, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    ann.submit("/account", "/logout", &[]).await;
    act(&app, &admin, "ann@example.com", "disable").await;
    act(&app, &admin, "ann@example.com", "enable").await;

    let id = app.user_id("ann@example.com");
    let page = admin.get(&format!("/admin/users/{id}")).await.body;
    for kind in [
        "registered",
        "email verified",
        "sign-in failed",
        "approved",
        "signed in",
        "signed out",
        "disabled",
        "enabled",
        "rejected",
    ] {
        assert!(page.contains(&format!("<strong>{kind}</strong>")), "{kind} missing:\n{page}");
    }
    let log = admin.get("/admin/events").await.body;
    assert!(log.contains("made administrator"), "{log}");
    let details: Vec<(String, String)> =
        audit_events::table.select((audit_events::kind, audit_events::detail)).load(&mut app.db()).unwrap();
    let stored = format!("{details:?}");
    assert!(!stored.contains(PASSWORD) && !stored.contains("a wrong password"), "{stored}");
}

async fn dead_mail_is_shown_and_can_be_sent_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.mail.reject_all_permanently(true);
    app.register(&app.browser(), "ann@example.com").await;
    for _ in 0..100 {
        if admin.get("/admin").await.body.contains("mailbox unavailable") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dashboard = admin.get("/admin").await;
    assert!(dashboard.body.contains("Confirmation of a new address"), "its purpose in words: {}", dashboard.body);
    assert!(!dashboard.body.contains("verify_email"), "no internal names");
    assert!(dashboard.body.contains("refused the message for good"), "the error in words");
    let retry = dashboard.body.split("action=\"").find_map(|rest| rest.strip_prefix("/admin/mail/")).unwrap();
    let action = format!("/admin/mail/{}", &retry[..retry.find('"').unwrap()]);

    // Sent again while the server still refuses it: the page tells the truth.
    admin.submit("/admin", &action, &[]).await.assert_redirects_to("/admin");
    let after = admin.get("/admin").await;
    assert!(!after.body.contains("All mail went out."), "{}", after.body);
    assert!(after.body.contains("ann@example.com"), "still listed until it has gone out");
    for _ in 0..100 {
        if admin.get("/admin").await.body.contains("Not sent, given up") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.mail.reject_all_permanently(false);
    admin.submit("/admin", &action, &[]).await.assert_redirects_to("/admin");

    let mail = app.mail.wait_for("ann@example.com", 1).await;
    let browser = app.browser();
    browser
        .submit(&format!("/verify?token={}", mail.verify_token()), "/verify", &[])
        .await
        .assert_redirects_to("/login");
}

async fn the_event_log_names_accounts_and_filters_by_kind_and_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.signed_in_user("ann@example.com").await;
    app.signed_in_user("bob@example.com").await;
    act(&app, &admin, "bob@example.com", "disable").await;
    let (ann, bob) = (app.user_id("ann@example.com"), app.user_id("bob@example.com"));

    let log = admin.get("/admin/events").await;
    assert!(log.body.contains(&format!("<a href=\"/admin/users/{bob}\">bob@example.com</a>")), "{}", log.body);
    assert!(log.body.contains("· by <a href=\"/admin/users/"), "the acting administrator by address");
    assert!(!log.body.contains("account 1"), "no bare numbers");
    assert!(log.body.contains("<time datetime=\""), "times as <time>");

    let disabled = admin.get("/admin/events?kind=disabled").await;
    assert_eq!(disabled.body.matches("<strong>").count(), 1, "{}", disabled.body);
    assert!(disabled.body.contains("<strong>disabled</strong>"));
    let anns = admin.get(&format!("/admin/events?user={ann}")).await;
    assert!(anns.body.contains("Only events about"), "{}", anns.body);
    assert!(!anns.body.contains(&format!("/admin/users/{bob}\"")), "nothing about bob");
    assert!(anns.body.contains("<strong>signed in</strong>"));
    assert_eq!(admin.get("/admin/events?kind=nonsense").await.status, StatusCode::NOT_FOUND);
}

async fn approving_an_unconfirmed_account_says_what_is_left_to_do(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register(&app.browser(), "carol@example.com").await;
    app.mail.wait_for("carol@example.com", 1).await;

    act(&app, &admin, "carol@example.com", "approve").await;

    let approved = app.mail.wait_for("carol@example.com", 2).await;
    assert!(approved.subject.contains("approved"));
    assert!(approved.text.contains("Confirm your email address"), "{}", approved.text);
    assert!(!approved.text.contains("You can sign in now"), "{}", approved.text);
}

async fn the_admin_pages_count_who_waits_mark_the_current_page_and_list_users_in_a_table(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    app.register_verified("bob@example.com").await;

    let users = admin.get("/admin/users").await;
    let dashboard = admin.get("/admin").await;

    assert!(users.body.contains("Waiting for approval <span class=\"count\">2<"), "{}", users.body);
    assert!(users.body.contains("<a href=\"/admin/users\" aria-current=\"page\">Users</a>"), "the current page marked");
    assert!(dashboard.body.contains("<a href=\"/admin\" aria-current=\"page\">Waiting for approval"));
    assert!(users.body.contains("<main id=\"main\" class=\"wide\">"), "a wide layout");
    let rows = users.body.split("<tbody>").nth(1).unwrap().split("</tbody>").next().unwrap();
    assert_eq!(rows.matches("<tr>").count(), 3, "one row per account");
    assert!(rows.contains("waiting for approval") && rows.contains("administrator"), "{rows}");
}

/// The addresses listed in the users table of `page`.
fn listed(page: &crate::helpers::Page) -> Vec<String> {
    page.table("#users tbody tr").into_iter().map(|row| row[0].clone()).collect()
}

async fn the_user_list_filters_by_state_through_search_paging_and_actions(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    app.register_verified("bob@example.com").await;
    app.register(&app.browser(), "carol@example.com").await;
    app.register_verified("dave@example.com").await;
    act(&app, &admin, "dave@example.com", "approve").await;
    act(&app, &admin, "dave@example.com", "disable").await;

    for (state, expected) in [
        ("waiting", vec!["ann@example.com", "bob@example.com"]),
        ("verified", vec!["ann@example.com", "bob@example.com", "dave@example.com", "root@example.com"]),
        ("unverified", vec!["carol@example.com"]),
        ("disabled", vec!["dave@example.com"]),
        ("admins", vec!["root@example.com"]),
    ] {
        let page = admin.get(&format!("/admin/users?state={state}")).await;
        assert_eq!(listed(&page), expected, "state={state}");
        let marked = format!("<a href=\"/admin/users?state={state}\" aria-current=\"page\">");
        assert!(page.body.contains(&marked), "the chosen filter is marked:\n{}", page.body);
    }
    let unknown = admin.get("/admin/users?state=everything").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("There is no such list of users."), "{}", unknown.body);

    // The search form searches within the filter.
    let waiting = admin.get("/admin/users?state=waiting").await;
    let searched = admin.submit_form(&waiting, "/admin/users", &[("q", "b")]).await;
    assert_eq!(listed(&searched), ["bob@example.com"]);

    // An action pressed on a filtered page returns to it.
    let approve = format!("/admin/users/{}/approve", app.user_id("ann@example.com"));
    admin.submit_form(&waiting, &approve, &[]).await.assert_redirects_to("/admin/users?state=waiting");
    assert_eq!(listed(&admin.get("/admin/users?state=waiting").await), ["bob@example.com"]);

    // Pages of a filter hold only its accounts, every one once.
    let emails: Vec<String> = (0..60).map(|i| format!("off{i:02}@example.com")).collect();
    for id in insert_users(&app, &emails, "approved") {
        User::set_disabled(&mut app.db(), id, true, 1).unwrap();
    }
    let (seen, last_page) = walk(&admin, "/admin/users?state=disabled", "next").await;
    let mut expected: Vec<String> = (0..60).map(|i| format!("off{i:02}@example.com")).collect();
    expected.insert(0, "dave@example.com".to_owned());
    assert_eq!(seen, expected);
    assert!(last_page.contains("state=disabled"), "{last_page}");
}

async fn the_user_list_shows_each_accounts_last_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.clock.advance(std::time::Duration::from_secs(20 * 60));
    app.signed_in_user("ann@example.com").await;

    let page = admin.get("/admin/users").await;

    let rows = page.table("#users tbody tr");
    assert_eq!(rows[0][0], "ann@example.com");
    assert_eq!(rows[0][3], "just now", "{rows:?}");
    assert_eq!(rows[1][0], "root@example.com");
    assert_eq!(rows[1][3], "20 minutes ago", "{rows:?}");
    app.register(&app.browser(), "carol@example.com").await;
    let rows = admin.get("/admin/users").await.table("#users tbody tr");
    assert_eq!((rows[1][0].as_str(), rows[1][3].as_str()), ("carol@example.com", "never"));
}

async fn the_waiting_count_stops_at_99_plus(backend: Backend) {
    let app = approval_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let emails: Vec<String> = (0..120).map(|i| format!("wait{i:03}@example.com")).collect();
    insert_users(&app, &emails, "pending");

    let page = admin.get("/admin/users").await;

    assert_eq!(page.texts(".admin-nav .count"), ["99+ waiting"], "counted no further than needed");
    assert_eq!(admin.get("/admin").await.texts("#waiting > li").len(), 100, "the queue shows the oldest 100");
}
