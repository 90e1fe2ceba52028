use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::groups::member_names;
use usher::db::schema::{audit_events, group_members, groups};

use crate::helpers::{Backend, Browser, Page, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    an_administrator_creates_groups_on_the_groups_page,
    bad_group_names_are_refused_in_plain_words_and_create_nothing,
    two_administrators_creating_one_name_at_once_get_a_group_and_a_clear_refusal,
    an_administrator_adds_and_removes_a_user_on_the_users_page,
    memberships_are_audited_with_the_administrator_and_the_group,
    the_admins_group_is_shown_but_read_only,
    unknown_groups_and_accounts_get_a_clear_page,
    only_administrators_reach_the_group_pages_and_forms,
    group_forms_need_the_csrf_token,
    the_export_lists_the_groups_and_deleting_the_account_leaves_them,
);

/// Creates a group from the groups page's form, as an administrator would.
async fn create_group(admin: &Browser, name: &str) -> Page {
    admin.submit("/admin/groups", "/admin/groups", &[("name", name)]).await
}

/// The groups page's table: (group, members) per row.
async fn listed_groups(admin: &Browser) -> Vec<(String, String)> {
    let page = admin.get("/admin/groups").await;
    page.table("#groups tbody tr").into_iter().map(|row| (row[0].clone(), row[1].clone())).collect()
}

fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn user_page(app: &TestApp, email: &str) -> String {
    format!("/admin/users/{}", app.user_id(email))
}

/// Puts `email` in `group` from its page's form.
async fn add(app: &TestApp, admin: &Browser, email: &str, group: &str) -> Page {
    let page = user_page(app, email);
    admin.submit(&page, &format!("{page}/groups"), &[("group", group)]).await
}

/// Takes `email` out of `group` with the button beside it on its page.
async fn remove(app: &TestApp, admin: &Browser, email: &str, group: &str) -> Page {
    let page = user_page(app, email);
    admin.submit(&page, &format!("{page}/groups/{group}/remove"), &[]).await
}

fn group_count(app: &TestApp) -> i64 {
    groups::table.count().get_result(&mut app.db()).unwrap()
}

fn membership_count(app: &TestApp) -> i64 {
    group_members::table.count().get_result(&mut app.db()).unwrap()
}

/// The stored events of `kind`: (user, actor, detail).
fn events_of(app: &TestApp, kind: &str) -> Vec<(Option<i64>, Option<i64>, String)> {
    audit_events::table
        .filter(audit_events::kind.eq(kind))
        .order(audit_events::id)
        .select((audit_events::user_id, audit_events::actor_id, audit_events::detail))
        .load(&mut app.db())
        .unwrap()
}

async fn an_administrator_creates_groups_on_the_groups_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let nav = admin.get("/admin").await;
    assert_eq!(nav.texts(".admin-nav a[href='/admin/groups']"), ["Groups"], "the admin pages link to it");

    let created = create_group(&admin, "wiki-editors").await;
    created.assert_redirects_to("/admin/groups");
    let page = admin.follow(&created).await;
    assert!(page.body.contains("Group wiki-editors was created."), "{}", page.body);
    assert_eq!(page.input_value("name").as_deref(), Some(""), "the form is empty again");
    create_group(&admin, " staff ").await.assert_redirects_to("/admin/groups");

    let page = admin.get("/admin/groups").await;
    assert!(page.body.contains("<a href=\"/admin/groups\" aria-current=\"page\">Groups</a>"), "the current page");
    let rows = listed_groups(&admin).await;
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["admins", "staff", "wiki-editors"], "admins first, then by name");
    assert!(rows[0].0.contains("built in, read-only"), "{rows:?}");
    assert_eq!(rows[0].1, "1 administrator", "the administrators: {rows:?}");
    assert_eq!(rows[1].1, "0");
    let created: Vec<String> = events_of(&app, "group created").into_iter().map(|(_, _, detail)| detail).collect();
    assert_eq!(created, ["wiki-editors", "staff"]);
    let log = admin.get("/admin/events?kind=group+created").await;
    assert_eq!(log.texts(".events li strong"), ["group created", "group created"], "{}", log.body);
}

async fn bad_group_names_are_refused_in_plain_words_and_create_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    create_group(&admin, "staff").await.assert_redirects_to("/admin/groups");
    let too_long = "a".repeat(65);

    for (typed, status, complaint) in [
        ("Staff", StatusCode::UNPROCESSABLE_ENTITY, "only lowercase letters a to z, digits, '_' and '-'"),
        ("a,b", StatusCode::UNPROCESSABLE_ENTITY, "only lowercase letters a to z, digits, '_' and '-'"),
        ("wiki editors", StatusCode::UNPROCESSABLE_ENTITY, "only lowercase letters a to z, digits, '_' and '-'"),
        ("", StatusCode::UNPROCESSABLE_ENTITY, "Enter a group name."),
        ("   ", StatusCode::UNPROCESSABLE_ENTITY, "Enter a group name."),
        (&too_long, StatusCode::UNPROCESSABLE_ENTITY, "at most 64 characters"),
        ("admins", StatusCode::UNPROCESSABLE_ENTITY, "admins is the built-in group of administrators"),
        ("staff", StatusCode::CONFLICT, "There is already a group named staff."),
    ] {
        let page = create_group(&admin, typed).await;

        assert_eq!(page.status, status, "{typed:?}");
        let error = page.texts("#name-error").join(" ");
        assert!(error.contains(complaint), "{typed:?}: {error:?}");
        assert!(page.texts(".error-summary a")[0].contains(complaint), "the summary says it too");
        assert_eq!(page.input_value("name").as_deref(), Some(typed), "what was typed stays");
        assert!(page.texts("title")[0].starts_with("Error: "), "{typed:?}");
        // The form shown again works as served.
        page.form("/admin/groups");
    }
    assert_eq!(group_count(&app), 1, "only staff");
    assert_eq!(events_of(&app, "group created").len(), 1);
}

async fn two_administrators_creating_one_name_at_once_get_a_group_and_a_clear_refusal(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_admin("ann@example.com").await;
    let bob = app.signed_in_admin("bob@example.com").await;
    for round in 0..3 {
        let name = format!("team-{round}");
        let (ann_page, bob_page) = (ann.get("/admin/groups").await, bob.get("/admin/groups").await);

        let fields = [("name", name.as_str())];
        let (first, second) = tokio::join!(
            ann.submit_form(&ann_page, "/admin/groups", &fields),
            bob.submit_form(&bob_page, "/admin/groups", &fields),
        );

        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::CONFLICT], "round {round}");
        let refused = if first.status == StatusCode::CONFLICT { &first } else { &second };
        assert_eq!(refused.texts("#name-error"), [format!("Error: There is already a group named {name}.")]);
    }
    assert_eq!(group_count(&app), 3);
    assert_eq!(events_of(&app, "group created").len(), 3, "one event per group");
}

async fn an_administrator_adds_and_removes_a_user_on_the_users_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let (ann, page) = (app.user_id("ann@example.com"), user_page(&app, "ann@example.com"));
    let before = admin.get(&page).await;
    assert_eq!(before.texts("#no-groups"), ["Not in any group."]);
    assert!(before.texts("a[href='/admin/groups']").contains(&"Create a group".to_owned()), "no group yet");
    create_group(&admin, "staff").await;
    create_group(&admin, "wiki").await;

    let served = admin.get(&page).await;
    assert_eq!(served.texts("select#group option"), ["staff", "wiki"], "the groups to choose from");
    let added = admin.submit_form(&served, &format!("{page}/groups"), &[("group", "wiki")]).await;

    added.assert_redirects_to(&page);
    let after = admin.follow(&added).await;
    assert!(after.body.contains("Added to wiki."), "{}", after.body);
    assert_eq!(after.texts("#groups li"), ["wiki Remove ann@example.com from wiki"]);
    assert_eq!(after.texts("select#group option"), ["staff"], "only those not yet joined");
    assert_eq!(member_names(&mut app.db(), ann).unwrap(), ["wiki"]);
    add(&app, &admin, "ann@example.com", "staff").await.assert_redirects_to(&page);
    assert_eq!(member_names(&mut app.db(), ann).unwrap(), ["staff", "wiki"], "sorted");
    let all_in = admin.get(&page).await;
    assert!(all_in.body.contains("It is in every group there is."), "{}", all_in.body);
    assert_eq!(listed_groups(&admin).await[1..], pairs(&[("staff", "1"), ("wiki", "1")]));

    // The page left open in another tab: adding again changes nothing.
    let again = admin.submit_form(&served, &format!("{page}/groups"), &[("group", "wiki")]).await;
    again.assert_redirects_to(&page);
    assert!(admin.follow(&again).await.body.contains("Already in wiki; nothing changed."));
    assert_eq!(membership_count(&app), 2);

    let removed = remove(&app, &admin, "ann@example.com", "wiki").await;
    removed.assert_redirects_to(&page);
    assert!(admin.follow(&removed).await.body.contains("Removed from wiki."));
    assert_eq!(member_names(&mut app.db(), ann).unwrap(), ["staff"]);
    // Pressed again on the page as it was.
    let twice = admin.submit_form(&all_in, &format!("{page}/groups/wiki/remove"), &[]).await;
    assert!(admin.follow(&twice).await.body.contains("Not in wiki; nothing changed."));
    // A GET of a form's address (a reload after the redirect, say) shows the page.
    admin.get(&format!("{page}/groups")).await.assert_redirects_to(&page);
    admin.get(&format!("{page}/groups/staff/remove")).await.assert_redirects_to(&page);
    assert_eq!(member_names(&mut app.db(), ann).unwrap(), ["staff"], "a GET changes nothing");
}

async fn memberships_are_audited_with_the_administrator_and_the_group(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let (root, ann) = (app.user_id("root@example.com"), app.user_id("ann@example.com"));
    create_group(&admin, "staff").await;

    add(&app, &admin, "ann@example.com", "staff").await;
    remove(&app, &admin, "ann@example.com", "staff").await;

    assert_eq!(events_of(&app, "added to group"), [(Some(ann), Some(root), "staff".to_owned())]);
    assert_eq!(events_of(&app, "removed from group"), [(Some(ann), Some(root), "staff".to_owned())]);
    let page = admin.get(&user_page(&app, "ann@example.com")).await;
    let events = page.texts(".events li");
    for kind in ["added to group", "removed from group"] {
        let event = events.iter().find(|text| text.starts_with(kind)).unwrap_or_else(|| panic!("{kind}: {events:?}"));
        assert!(event.ends_with("· by root@example.com · staff"), "{event}");
    }
    let filter = admin.get("/admin/events").await;
    assert!(filter.texts("option").iter().any(|kind| kind == "added to group"), "the log filters by it");
}

async fn the_admins_group_is_shown_but_read_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    create_group(&admin, "staff").await;
    let page = user_page(&app, "root@example.com");

    let served = admin.get(&page).await;

    let memberships = served.texts("#groups li");
    assert_eq!(memberships.len(), 1);
    assert!(memberships[0].starts_with("admins built in"), "{memberships:?}");
    assert!(!served.body.contains("/groups/admins/remove"), "no button takes an administrator out");
    assert_eq!(served.texts("select#group option"), ["staff"], "admins is not offered");
    let ann_page = admin.get(&user_page(&app, "ann@example.com")).await;
    assert!(ann_page.texts("#groups li").is_empty() && !ann_page.body.contains(">admins<"), "not an administrator");

    // Sent anyway, as a hand-made request would.
    let ann = user_page(&app, "ann@example.com");
    let joined = admin.submit(&ann, &format!("{ann}/groups"), &[("group", "admins")]).await;
    assert_eq!(joined.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(joined.texts("#group-error")[0].contains("admins is the built-in group of administrators"));
    assert!(joined.texts("#group-error")[0].contains("usher create-admin"));
    let token = served.csrf_token();
    let left = admin.post_raw(&format!("{page}/groups/admins/remove"), &[("csrf_token", &token)]).await;
    assert_eq!(left.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(left.body.contains("built-in group of administrators"), "{}", left.body);
    assert_eq!(membership_count(&app), 0);
    assert!(events_of(&app, "added to group").is_empty() && events_of(&app, "removed from group").is_empty());
}

async fn unknown_groups_and_accounts_get_a_clear_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    create_group(&admin, "staff").await;
    let page = user_page(&app, "ann@example.com");
    let served = admin.get(&page).await;
    let token = served.csrf_token();

    let unknown = admin.submit_form(&served, &format!("{page}/groups"), &[("group", "nobody")]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.texts("#group-error"),
        ["Error: There is no group named nobody. Create it on the groups page first."]
    );
    assert_eq!(unknown.texts("h1"), ["ann@example.com"], "the account's page, again");
    let malformed = admin.submit_form(&served, &format!("{page}/groups"), &[("group", "No Such")]).await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(malformed.texts("#group-error")[0].contains("only lowercase letters"), "{}", malformed.body);
    let gone = admin.post_raw(&format!("{page}/groups/nobody/remove"), &[("csrf_token", &token)]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body.contains("There is no group named nobody."), "{}", gone.body);

    for path in ["/admin/users/999999/groups", "/admin/users/999999/groups/staff/remove"] {
        let page = admin.post_raw(path, &[("csrf_token", &token), ("group", "staff")]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A deleted account is no account.
    let ann = app.user_id("ann@example.com");
    let delete = format!("{page}/delete");
    admin.submit(&delete, &delete, &[]).await;
    let deleted = admin.submit_form(&served, &format!("{page}/groups"), &[("group", "staff")]).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    assert!(member_names(&mut app.db(), ann).unwrap().is_empty());
    let tombstone = admin.get(&page).await;
    assert!(!tombstone.body.contains(&format!("{page}/groups")), "no group forms on a deleted account's page");
}

async fn only_administrators_reach_the_group_pages_and_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    create_group(&admin, "staff").await;
    let user = app.signed_in_user("ann@example.com").await;
    let anonymous = app.browser();
    let id = app.user_id("ann@example.com");
    let gets = [
        "/admin/groups".to_owned(),
        format!("/admin/users/{id}/groups"),
        format!("/admin/users/{id}/groups/staff/remove"),
    ];

    for page in &gets {
        assert_eq!(user.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
        let redirect = anonymous.get(page).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{page}");
        assert!(redirect.location().unwrap().starts_with("/login?next="), "{page}");
    }
    let token = user.get("/account").await.csrf_token();
    for (action, field) in [
        ("/admin/groups".to_owned(), ("name", "mine")),
        (format!("/admin/users/{id}/groups"), ("group", "staff")),
        (format!("/admin/users/{id}/groups/staff/remove"), ("group", "")),
    ] {
        let page = user.post_raw(&action, &[("csrf_token", &token), field]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{action}");
        assert_eq!(anonymous.post_raw(&action, &[field]).await.status, StatusCode::SEE_OTHER, "{action}");
    }
    assert_eq!(group_count(&app), 1, "nothing created");
    assert_eq!(membership_count(&app), 0, "nobody added");
}

async fn group_forms_need_the_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    create_group(&admin, "staff").await;
    let page = user_page(&app, "ann@example.com");
    add(&app, &admin, "ann@example.com", "staff").await.assert_redirects_to(&page);

    let created = admin.post_raw("/admin/groups", &[("name", "forged")]).await;
    let added = admin.post_raw(&format!("{page}/groups"), &[("group", "staff")]).await;
    let removed = admin.post_raw(&format!("{page}/groups/staff/remove"), &[]).await;
    let wrong = admin.post_raw(&format!("{page}/groups/staff/remove"), &[("csrf_token", "not the token")]).await;

    for refused in [created, added, removed, wrong] {
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.url);
    }
    assert_eq!(group_count(&app), 1);
    assert_eq!(member_names(&mut app.db(), app.user_id("ann@example.com")).unwrap(), ["staff"]);
}

async fn the_export_lists_the_groups_and_deleting_the_account_leaves_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;
    app.register_verified("bob@example.com").await;
    for group in ["wiki-editors", "staff", "ops"] {
        create_group(&admin, group).await;
    }
    for group in ["wiki-editors", "staff"] {
        add(&app, &admin, "ann@example.com", group).await;
    }
    add(&app, &admin, "bob@example.com", "staff").await;
    let id = app.user_id("ann@example.com");

    let export = ann.get("/account/export").await;
    assert!(export.body.contains("the groups an administrator put you in"), "the page says so");
    let download = ann.submit_form(&export, "/account/export", &[]).await;
    let export: serde_json::Value = serde_json::from_str(&download.body).expect("JSON");
    assert_eq!(export["groups"], serde_json::json!(["staff", "wiki-editors"]));
    let events: Vec<&str> = export["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"added to group"), "{events:?}");

    ann.submit("/account/delete", "/account/delete", &[("confirm", "ann@example.com")]).await.assert_redirects_to("/");

    assert!(member_names(&mut app.db(), id).unwrap().is_empty());
    let left: i64 =
        group_members::table.filter(group_members::user_id.eq(id)).count().get_result(&mut app.db()).unwrap();
    assert_eq!(left, 0, "no membership stays with the tombstone");
    assert_eq!(member_names(&mut app.db(), app.user_id("bob@example.com")).unwrap(), ["staff"], "others keep theirs");
    let counts = listed_groups(&admin).await;
    assert_eq!(counts[1..], pairs(&[("ops", "0"), ("staff", "1"), ("wiki-editors", "0")]));
    assert_eq!(group_count(&app), 3, "the groups stay");
}
