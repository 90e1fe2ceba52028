use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::groups::member_names;
use usher::db::schema::{audit_events, invitations, users};

use crate::helpers::{Backend, Browser, PASSWORD, Page, TestApp, sha256, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    an_invited_person_signs_up_from_the_mail_and_is_signed_in_verified_approved_and_in_the_groups,
    an_invitation_link_creates_one_account_however_often_it_is_submitted,
    an_expired_invitation_is_refused_and_changes_nothing,
    a_withdrawn_invitation_is_refused_and_changes_nothing,
    sending_again_voids_the_older_link_and_the_new_one_works,
    inviting_an_existing_user_says_so_and_sends_nothing,
    inviting_an_address_with_a_pending_invitation_offers_to_send_it_again,
    a_weak_or_mismatched_password_shows_the_form_again_in_plain_words,
    an_account_made_meanwhile_gets_a_page_that_points_to_sign_in,
    the_token_is_never_stored_in_clear,
    only_administrators_reach_the_invitation_pages_and_forms,
    invitation_forms_need_the_csrf_token,
    every_step_is_audited_and_deleting_the_account_forgets_the_invitation,
    unknown_and_malformed_links_get_a_clear_page,
    an_account_someone_made_for_the_address_without_proving_it_is_taken_over,
    an_invitation_from_an_administrator_no_longer_one_no_longer_stands,
);

const INVITED: &str = "new@example.com";

/// Invites `email` into `groups` from the invitations page's form.
async fn invite(admin: &Browser, email: &str, groups: &[&str]) -> Page {
    let mut fields = vec![("email", email)];
    fields.extend(groups.iter().map(|group| ("groups", *group)));
    admin.submit("/admin/invitations", "/admin/invitations", &fields).await
}

async fn create_groups(admin: &Browser, names: &[&str]) {
    for name in names {
        admin.submit("/admin/groups", "/admin/groups", &[("name", name)]).await.assert_redirects_to("/admin/groups");
    }
}

/// The token of the invitation link in mail number `nth` to `email`.
async fn invitation_token(app: &TestApp, email: &str, nth: usize) -> String {
    app.mail.wait_for(email, nth).await.link_token("/invite?token=")
}

/// Opens the link in a new browser and submits its form with `password`.
async fn accept(app: &TestApp, token: &str, password: &str) -> (Browser, Page) {
    let person = app.browser();
    let fields = [("password", password), ("password_confirm", password)];
    let page = person.submit(&format!("/invite?token={token}"), "/invite", &fields).await;
    (person, page)
}

/// The invitations list: (address, state) per row.
async fn listed(admin: &Browser) -> Vec<(String, String)> {
    let page = admin.get("/admin/invitations").await;
    page.table("#invitations tbody tr").into_iter().map(|row| (row[0].clone(), row[1].clone())).collect()
}

fn invitation_id(app: &TestApp, email: &str) -> i64 {
    invitations::table
        .filter(invitations::email.eq(email))
        .order(invitations::id.desc())
        .select(invitations::id)
        .first(&mut app.db())
        .unwrap()
}

fn accounts_with(app: &TestApp, email: &str) -> i64 {
    users::table.filter(users::email.eq(email)).count().get_result(&mut app.db()).unwrap()
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

async fn an_invited_person_signs_up_from_the_mail_and_is_signed_in_verified_approved_and_in_the_groups(
    backend: Backend,
) {
    // Approval required: the invitation is the approval.
    let app = spawn_app_with(backend, &[("--require-admin-approval", "true")]).await;
    let admin = app.signed_in_admin("root@example.com").await;
    create_groups(&admin, &["ops", "staff", "wiki-editors"]).await;
    let nav = admin.get("/admin").await;
    assert_eq!(nav.texts(".admin-nav a[href='/admin/invitations']"), ["Invitations"], "the admin pages link to it");
    let form = admin.get("/admin/invitations").await;
    assert_eq!(form.attrs("input[name=groups]", "value"), ["ops", "staff", "wiki-editors"], "no admins box");

    let sent = invite(&admin, INVITED, &["wiki-editors", "staff"]).await;

    sent.assert_redirects_to("/admin/invitations");
    let page = admin.follow(&sent).await;
    assert!(page.body.contains("new@example.com was invited."), "{}", page.body);
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "pending".to_owned())]);
    let mail = app.mail.wait_for(INVITED, 1).await;
    assert!(mail.subject.contains("invited"), "{}", mail.subject);
    assert!(mail.text.contains("root@example.com"), "who invites: {}", mail.text);
    assert!(mail.text.contains("staff, wiki-editors"), "the groups: {}", mail.text);
    assert!(mail.text.contains("for 7 days (until "), "when it expires: {}", mail.text);
    assert!(mail.text.contains(&format!("{}/invite?token=", app.address)), "an absolute link: {}", mail.text);
    assert!(mail.html.contains("/invite?token="), "the HTML part has the link too");
    let token = mail.link_token("/invite?token=");

    let person = app.browser();
    let form = person.get(&format!("/invite?token={token}")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.texts("#email"), [INVITED], "the address is shown");
    assert!(form.input_value("email").is_none(), "and not editable");
    assert_eq!(accounts_with(&app, INVITED), 0, "looking creates nothing");
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
    let accepted = person.submit_form(&form, "/invite", &fields).await;

    accepted.assert_redirects_to("/account");
    let account = person.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "signed in");
    assert!(account.body.contains(INVITED), "{}", account.body);
    let id = app.user_id(INVITED);
    let (verified, approval): (Option<i64>, String) =
        users::table.find(id).select((users::email_verified_at, users::approval)).first(&mut app.db()).unwrap();
    assert!(verified.is_some(), "the link proved the address");
    assert_eq!(approval, "approved");
    assert_eq!(member_names(&mut app.db(), id).unwrap(), ["staff", "wiki-editors"]);
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "accepted".to_owned())]);
    // The password works for a later sign-in.
    let later = app.browser();
    app.sign_in(&later, INVITED, PASSWORD).await.assert_redirects_to("/account");
}

async fn an_invitation_link_creates_one_account_however_often_it_is_submitted(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await.assert_redirects_to("/admin/invitations");
    let token = invitation_token(&app, INVITED, 1).await;
    let link = format!("/invite?token={token}");
    let (first, second) = (app.browser(), app.browser());
    let (first_form, second_form) = (first.get(&link).await, second.get(&link).await);
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];

    let (a, b) = tokio::join!(
        first.submit_form(&first_form, "/invite", &fields),
        second.submit_form(&second_form, "/invite", &fields)
    );

    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::GONE], "one wins: {} / {}", a.body, b.body);
    let lost = if a.status == StatusCode::GONE { &a } else { &b };
    assert!(lost.body.contains("This invitation was used already"), "{}", lost.body);
    assert_eq!(accounts_with(&app, INVITED), 1);
    // Submitted again later, from the tab that lost: the same clear page.
    let (loser, loser_form) =
        if a.status == StatusCode::GONE { (&first, &first_form) } else { (&second, &second_form) };
    let again = loser.submit_form(loser_form, "/invite", &fields).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("was used already"), "{}", again.body);
    assert_eq!(accounts_with(&app, INVITED), 1, "no second account");
    assert_eq!(app.browser().get(&link).await.status, StatusCode::GONE, "the link is spent");
}

async fn an_expired_invitation_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("--invitation-ttl", "1h")]).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let token = invitation_token(&app, INVITED, 1).await;
    let link = format!("/invite?token={token}");
    let person = app.browser();
    let form = person.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);

    app.clock.advance(Duration::from_secs(3601));

    let page = person.get(&link).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("This invitation has expired"), "{}", page.body);
    assert!(page.body.to_lowercase().contains("ask the administrator for a new one"), "{}", page.body);
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
    let refused = person.submit_form(&form, "/invite", &fields).await;
    assert_eq!(refused.status, StatusCode::GONE);
    assert!(refused.body.contains("has expired"), "{}", refused.body);
    assert_eq!(accounts_with(&app, INVITED), 0);
    let admin = app.browser();
    app.sign_in(&admin, "root@example.com", PASSWORD).await;
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "expired".to_owned())]);
}

async fn a_withdrawn_invitation_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let token = invitation_token(&app, INVITED, 1).await;
    let link = format!("/invite?token={token}");
    let person = app.browser();
    let form = person.get(&link).await;
    let id = invitation_id(&app, INVITED);

    let revoked = admin.submit("/admin/invitations", &format!("/admin/invitations/{id}/revoke"), &[]).await;

    revoked.assert_redirects_to("/admin/invitations");
    let list = admin.follow(&revoked).await;
    assert!(list.body.contains("was withdrawn"), "{}", list.body);
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "revoked".to_owned())]);
    let page = person.get(&link).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("This invitation was withdrawn"), "{}", page.body);
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
    let refused = person.submit_form(&form, "/invite", &fields).await;
    assert_eq!(refused.status, StatusCode::GONE);
    assert_eq!(accounts_with(&app, INVITED), 0);
    let list = admin.get("/admin/invitations").await;
    assert!(!list.body.contains(&format!("/admin/invitations/{id}/")), "no buttons for a withdrawn invitation");
    // The address can be invited again.
    invite(&admin, INVITED, &[]).await.assert_redirects_to("/admin/invitations");
    let token = invitation_token(&app, INVITED, 2).await;
    accept(&app, &token, PASSWORD).await.1.assert_redirects_to("/account");
}

async fn sending_again_voids_the_older_link_and_the_new_one_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let old = invitation_token(&app, INVITED, 1).await;
    let id = invitation_id(&app, INVITED);

    let resent = admin.submit("/admin/invitations", &format!("/admin/invitations/{id}/resend"), &[]).await;

    resent.assert_redirects_to("/admin/invitations");
    let list = admin.follow(&resent).await;
    assert!(list.body.contains("was sent again"), "{}", list.body);
    let new = invitation_token(&app, INVITED, 2).await;
    assert_ne!(old, new);
    let refused = app.browser().get(&format!("/invite?token={old}")).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(refused.body.contains("replaced by a newer invitation"), "{}", refused.body);
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "pending".to_owned())], "still one invitation");
    let (person, accepted) = accept(&app, &new, PASSWORD).await;
    accepted.assert_redirects_to("/account");
    assert_eq!(person.get("/account").await.status, StatusCode::OK);
}

async fn inviting_an_existing_user_says_so_and_sends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let id = app.user_id("ann@example.com");

    for typed in ["ann@example.com", " Ann@Example.COM "] {
        let page = invite(&admin, typed, &[]).await;

        assert_eq!(page.status, StatusCode::CONFLICT, "{typed:?}");
        assert!(page.texts("#email-error")[0].contains("ann@example.com is already a user."), "{}", page.body);
        assert_eq!(page.attrs("#existing-user a", "href"), [format!("/admin/users/{id}")]);
        page.form("/admin/invitations");
    }
    // An administrator too.
    let page = invite(&admin, "root@example.com", &[]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    app.mail.assert_no_more("ann@example.com", 1, Duration::from_millis(500)).await;
    assert!(listed(&admin).await.is_empty(), "no invitation stored");
    assert!(events_of(&app, "invitation sent").is_empty());
}

async fn inviting_an_address_with_a_pending_invitation_offers_to_send_it_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    app.mail.wait_for(INVITED, 1).await;
    let id = invitation_id(&app, INVITED);

    let page = invite(&admin, INVITED, &[]).await;

    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.texts("#email-error")[0].contains("has a pending invitation already"), "{}", page.body);
    let offered = admin.submit_form(&page, &format!("/admin/invitations/{id}/resend"), &[]).await;
    offered.assert_redirects_to("/admin/invitations");
    let token = invitation_token(&app, INVITED, 2).await;
    app.mail.assert_no_more(INVITED, 2, Duration::from_millis(300)).await;
    accept(&app, &token, PASSWORD).await.1.assert_redirects_to("/account");
}

async fn a_weak_or_mismatched_password_shows_the_form_again_in_plain_words(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let token = invitation_token(&app, INVITED, 1).await;
    let person = app.browser();
    let form = person.get(&format!("/invite?token={token}")).await;

    for (password, confirm, field, complaint) in [
        ("short", "short", "#password-error", "at least 12 characters"),
        ("password1234", "password1234", "#password-error", ""),
        (PASSWORD, "something else entirely", "#password_confirm-error", ""),
    ] {
        let page = person.submit_form(&form, "/invite", &[("password", password), ("password_confirm", confirm)]).await;

        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{password:?}");
        let error = page.texts(field).join(" ");
        assert!(!error.is_empty() && error.contains(complaint), "{password:?}: {error:?}");
        assert!(!page.body.contains(password), "the password is never echoed");
        assert!(page.texts("title")[0].starts_with("Error: "));
        assert_eq!(page.texts("#email"), [INVITED]);
        page.form("/invite");
    }
    assert_eq!(accounts_with(&app, INVITED), 0, "nothing made");
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
    person.submit_form(&form, "/invite", &fields).await.assert_redirects_to("/account");
}

async fn an_account_made_meanwhile_gets_a_page_that_points_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let token = invitation_token(&app, INVITED, 1).await;
    let person = app.browser();
    let form = person.get(&format!("/invite?token={token}")).await;

    let other = app.browser();
    app.register(&other, INVITED).await.assert_redirects_to("/verify");
    let verify = app.mail.wait_for(INVITED, 2).await.verify_token();
    other.submit(&format!("/verify?token={verify}"), "/verify", &[("token", &verify)]).await;

    let page = person.get(&format!("/invite?token={token}")).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("There is already an account with this address"), "{}", page.body);
    assert!(page.attrs("a.button", "href").contains(&"/login".to_owned()), "{}", page.body);
    let fields = [("password", PASSWORD), ("password_confirm", PASSWORD)];
    let refused = person.submit_form(&form, "/invite", &fields).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(accounts_with(&app, INVITED), 1);
}

async fn the_token_is_never_stored_in_clear(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let token = invitation_token(&app, INVITED, 1).await;
    app.mail_settled().await;

    let dump = app.dump_all_tables();
    assert!(!dump.contains(&token), "the token is in the database");
    let stored: Option<Vec<u8>> = invitations::table.select(invitations::token_hash).first(&mut app.db()).unwrap();
    assert_eq!(stored, Some(sha256(&token)), "only its hash");

    accept(&app, &token, PASSWORD).await.1.assert_redirects_to("/account");
    assert!(!app.dump_all_tables().contains(&token));
}

async fn only_administrators_reach_the_invitation_pages_and_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let id = invitation_id(&app, INVITED);
    let user = app.signed_in_user("ann@example.com").await;
    let anonymous = app.browser();
    let paths = [
        "/admin/invitations".to_owned(),
        format!("/admin/invitations/{id}/revoke"),
        format!("/admin/invitations/{id}/resend"),
    ];

    for path in &paths {
        assert_eq!(user.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
        let redirect = anonymous.get(path).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{path}");
        assert!(redirect.location().unwrap().starts_with("/login?next="), "{path}");
    }
    let token = user.get("/account").await.csrf_token();
    for path in &paths {
        let page = user.post_raw(path, &[("csrf_token", &token), ("email", "x@example.com")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            anonymous.post_raw(path, &[("email", "x@example.com")]).await.status,
            StatusCode::SEE_OTHER,
            "{path}"
        );
    }
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "pending".to_owned())], "nothing changed");
    app.mail.assert_no_more(INVITED, 1, Duration::from_millis(300)).await;
    assert_eq!(app.mail.to("x@example.com").len(), 0);
}

async fn invitation_forms_need_the_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    invite(&admin, INVITED, &[]).await;
    let id = invitation_id(&app, INVITED);
    let token = invitation_token(&app, INVITED, 1).await;

    let created = admin.post_raw("/admin/invitations", &[("email", "other@example.com")]).await;
    let revoked = admin.post_raw(&format!("/admin/invitations/{id}/revoke"), &[]).await;
    let resent = admin.post_raw(&format!("/admin/invitations/{id}/resend"), &[("csrf_token", "not the token")]).await;
    let person = app.browser();
    person.get(&format!("/invite?token={token}")).await;
    let accepted =
        person.post_raw("/invite", &[("token", &token), ("password", PASSWORD), ("password_confirm", PASSWORD)]).await;

    for refused in [created, revoked, resent, accepted] {
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.url);
    }
    assert_eq!(listed(&admin).await, [(INVITED.to_owned(), "pending".to_owned())]);
    assert_eq!(accounts_with(&app, INVITED), 0);
    app.mail.assert_no_more(INVITED, 1, Duration::from_millis(300)).await;
}

async fn every_step_is_audited_and_deleting_the_account_forgets_the_invitation(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let root = app.user_id("root@example.com");
    invite(&admin, "gone@example.com", &[]).await;
    let gone = invitation_id(&app, "gone@example.com");
    admin.submit("/admin/invitations", &format!("/admin/invitations/{gone}/revoke"), &[]).await;
    invite(&admin, INVITED, &[]).await;
    let id = invitation_id(&app, INVITED);
    app.mail.wait_for(INVITED, 1).await;
    admin.submit("/admin/invitations", &format!("/admin/invitations/{id}/resend"), &[]).await;
    let token = invitation_token(&app, INVITED, 2).await;
    let (person, accepted) = accept(&app, &token, PASSWORD).await;
    accepted.assert_redirects_to("/account");
    let new = app.user_id(INVITED);

    let gone_email = "gone@example.com".to_owned();
    assert_eq!(
        events_of(&app, "invitation sent"),
        [(None, Some(root), gone_email.clone()), (Some(new), Some(root), INVITED.to_owned())],
        "an accepted invitation's events become the account's"
    );
    assert_eq!(events_of(&app, "invitation withdrawn"), [(None, Some(root), gone_email)]);
    assert_eq!(events_of(&app, "invitation sent again"), [(Some(new), Some(root), INVITED.to_owned())]);
    assert_eq!(events_of(&app, "invitation accepted"), [(Some(new), Some(new), INVITED.to_owned())]);
    assert_eq!(events_of(&app, "signed in").iter().filter(|(user, _, _)| *user == Some(new)).count(), 1);
    let log = admin.get("/admin/events?kind=invitation+accepted").await;
    assert_eq!(log.texts(".events li strong"), ["invitation accepted"], "{}", log.body);

    person.submit("/account/delete", "/account/delete", &[("confirm", INVITED)]).await.assert_redirects_to("/");

    let left: i64 =
        invitations::table.filter(invitations::email.eq(INVITED)).count().get_result(&mut app.db()).unwrap();
    assert_eq!(left, 0, "the invitation of a deleted account goes with it");
    app.mail_settled().await;
    assert!(!app.dump_all_tables().contains(INVITED), "the address is gone from every table");
    let details: Vec<String> = audit_events::table
        .filter(audit_events::user_id.eq(new))
        .select(audit_events::detail)
        .load(&mut app.db())
        .unwrap();
    assert!(details.iter().all(|detail| !detail.contains(INVITED)), "{details:?}");
}

async fn unknown_and_malformed_links_get_a_clear_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let unknown = "A".repeat(43);

    let page = browser.get(&format!("/invite?token={unknown}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("This invitation link is not valid"), "{}", page.body);
    assert!(page.body.to_lowercase().contains("ask the administrator for a new one"), "{}", page.body);
    for path in ["/invite?token=short", "/invite"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.body.contains("Copy the whole link from the email"), "{path}: {}", page.body);
    }
    let tracked = browser.get(&format!("/invite?token={unknown}&utm_source=mail")).await;
    assert_eq!(tracked.status, StatusCode::NOT_FOUND, "tracking tags are ignored");
}

async fn an_account_someone_made_for_the_address_without_proving_it_is_taken_over(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    // Anyone may register an address they cannot read mail at.
    let squatter = app.browser();
    let fields =
        [("email", INVITED), ("password", "squatter passphrase 123"), ("password_confirm", "squatter passphrase 123")];
    squatter.submit("/register", "/register", &fields).await.assert_redirects_to("/verify");
    let squatted = app.user_id(INVITED);

    invite(&admin, INVITED, &[]).await.assert_redirects_to("/admin/invitations");
    let token = invitation_token(&app, INVITED, 2).await;
    let (person, page) = accept(&app, &token, PASSWORD).await;
    page.assert_redirects_to("/account");
    assert!(person.get("/account").await.body.contains(INVITED));
    assert_eq!(app.user_id(INVITED), squatted, "the same account, now the mailbox owner's");
    let (verified, approval): (Option<i64>, String) =
        users::table.find(squatted).select((users::email_verified_at, users::approval)).first(&mut app.db()).unwrap();
    assert!(verified.is_some());
    assert_eq!(approval, "approved");
    let refused = app.sign_in(&app.browser(), INVITED, "squatter passphrase 123").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "the squatter's password is gone");
}

async fn an_invitation_from_an_administrator_no_longer_one_no_longer_stands(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in_admin("first@example.com").await;
    let second = app.signed_in_admin("second@example.com").await;
    invite(&first, INVITED, &[]).await.assert_redirects_to("/admin/invitations");
    let token = invitation_token(&app, INVITED, 1).await;

    let id = app.user_id("first@example.com");
    let confirm = second.get(&format!("/admin/users/{id}/disable")).await;
    second.submit_form(&confirm, &format!("/admin/users/{id}/disable"), &[]).await;
    let page = app.browser().get(&format!("/invite?token={token}")).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("no longer stands"), "{}", page.body);
    let made: i64 = users::table.filter(users::email.eq(INVITED)).count().get_result(&mut app.db()).unwrap();
    assert_eq!(made, 0, "no account");
}
