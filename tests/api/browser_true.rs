//! Usher as real browsers and mail services use it: every form submitted
//! exactly as served, links decorated with tracking parameters, `HEAD`
//! requests, and a sign-out from a tab whose session already ended.

use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, HtmlForm, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    every_form_submitted_as_served_is_accepted,
    every_form_on_the_admin_dashboard_submitted_as_served_is_accepted,
    emailed_links_with_tracking_parameters_work_as_without,
    unknown_query_parameters_are_ignored_on_every_page,
    head_is_answered_wherever_get_is,
    signing_out_of_a_session_that_already_ended_lands_signed_out,
    a_signed_in_sign_out_still_needs_its_csrf_token,
    a_used_confirmation_link_says_so_before_any_button_is_pressed,
    the_sign_in_form_after_confirming_has_the_address_filled_in,
    the_sign_in_page_says_how_long_keep_me_signed_in_lasts,
    the_site_has_an_icon_where_browsers_look,
    a_sign_up_promises_only_what_either_mail_delivers,
    the_support_address_is_on_every_page_and_in_every_mail,
    every_page_title_names_its_heading,
    an_address_that_only_takes_a_form_leads_to_its_page,
    plain_text_mail_puts_each_link_on_a_line_of_its_own,
);

const NEW_PASSWORD: &str = "marble orchestra lantern 97";
const TRACKING: &str = "utm_source=newsletter&utm_medium=email&utm_campaign=welcome&fbclid=IwAR0abc";

/// Who looks at the page.
#[derive(Clone, Copy, Debug)]
enum Visitor {
    Anonymous,
    User,
    Admin,
}

/// One form on one page, the values a person would type, and the answer.
struct Case {
    visitor: Visitor,
    page: String,
    action: String,
    fields: Vec<(&'static str, String)>,
    expected: StatusCode,
}

fn case(visitor: Visitor, page: &str, action: &str, fields: &[(&'static str, &str)], expected: StatusCode) -> Case {
    let fields = fields.iter().map(|(name, value)| (*name, (*value).to_owned())).collect();
    Case { visitor, page: page.to_owned(), action: action.to_owned(), fields, expected }
}

/// A browser for a visitor of this kind, each with an account of its own.
async fn visitor(app: &TestApp, kind: Visitor, n: usize) -> Browser {
    match kind {
        Visitor::Anonymous => app.browser(),
        Visitor::User => {
            let email = format!("user{n}@example.com");
            let browser = app.signed_in_user(&email).await;
            // Signed in on a second device too, so the account page offers
            // its forms about other sessions.
            app.sign_in(&app.browser(), &email, PASSWORD).await;
            browser
        }
        Visitor::Admin => app.signed_in_admin(&format!("admin{n}@example.com")).await,
    }
}

/// Asks for a reset link for a new verified account and returns its token.
async fn reset_token(app: &TestApp, email: &str) -> String {
    app.register_verified(email).await;
    app.browser().submit("/password/forgot", "/password/forgot", &[("email", email)]).await;
    app.mail.wait_for(email, 2).await.link_token("/password/reset?token=")
}

/// The form that ends one session, whichever session it names.
const ONE_SESSION: &str = "/account/sessions/{id}/revoke";

/// `action` with a session's public id replaced by `{id}`.
fn shape(action: &str) -> String {
    match action.strip_prefix("/account/sessions/").and_then(|rest| rest.strip_suffix("/revoke")) {
        Some(id) if !id.contains('/') => ONE_SESSION.to_owned(),
        _ => action.to_owned(),
    }
}

async fn every_form_submitted_as_served_is_accepted(backend: Backend) {
    use StatusCode as S;
    use Visitor::{Admin, Anonymous, User};
    let app = spawn_app(backend).await;
    app.register_verified("known@example.com").await;
    app.register(&app.browser(), "waiting@example.com").await;
    let verify_token = app.mail.wait_for("waiting@example.com", 1).await.verify_token();
    let reset_token = reset_token(&app, "forgot@example.com").await;
    app.register_verified("target@example.com").await;
    let target = app.user_id("target@example.com");
    let user_page = format!("/admin/users/{target}");
    let action = |name: &str| format!("/admin/users/{target}/{name}");
    let confirm = |name: &str| format!("/admin/users/{target}/{name}?back=%2Fadmin%2Fusers%2F{target}");
    let password = [("password", PASSWORD), ("password_confirm", PASSWORD)];

    let cases = vec![
        case(
            Anonymous,
            "/register",
            "/register",
            &[("email", "new@example.com"), password[0], password[1]],
            S::SEE_OTHER,
        ),
        case(Anonymous, "/login", "/login", &[("email", "known@example.com"), ("password", PASSWORD)], S::SEE_OTHER),
        case(
            Anonymous,
            "/verify",
            "/verify",
            &[("email", "known@example.com"), ("code", "123456")],
            S::UNPROCESSABLE_ENTITY,
        ),
        case(Anonymous, "/verify/resend", "/verify/resend", &[("email", "known@example.com")], S::SEE_OTHER),
        case(Anonymous, "/password/forgot", "/password/forgot", &[("email", "known@example.com")], S::SEE_OTHER),
        case(Anonymous, &format!("/verify?token={verify_token}"), "/verify", &[], S::SEE_OTHER),
        case(
            Anonymous,
            &format!("/password/reset?token={reset_token}"),
            "/password/reset",
            &[("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)],
            S::SEE_OTHER,
        ),
        case(User, "/account", "/account/sessions/revoke-others", &[], S::SEE_OTHER),
        case(User, "/account", ONE_SESSION, &[], S::SEE_OTHER),
        case(User, "/account/reauth?next=%2Faccount", "/account/reauth", &[("password", PASSWORD)], S::SEE_OTHER),
        case(
            User,
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)],
            S::SEE_OTHER,
        ),
        case(User, "/account", "/logout", &[], S::SEE_OTHER),
        case(Admin, &confirm("disable"), &action("disable"), &[], S::SEE_OTHER),
        case(Admin, &user_page, &action("enable"), &[], S::SEE_OTHER),
        case(Admin, &format!("{}?back=%2Fadmin%2Fusers", action("disable")), &action("disable"), &[], S::SEE_OTHER),
        case(Admin, "/admin/users?q=target", &action("enable"), &[], S::SEE_OTHER),
    ];

    let mut covered: Vec<(String, String)> = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let browser = visitor(&app, case.visitor, n).await;
        let page = browser.get(&case.page).await;
        assert_eq!(page.status, S::OK, "{}", case.page);
        let fields: Vec<(&str, &str)> = case.fields.iter().map(|(name, value)| (*name, value.as_str())).collect();

        // A form whose action names a session is found by its shape.
        let action = HtmlForm::all_on(&page.body)
            .into_iter()
            .map(|(_, action)| action)
            .find(|action| shape(action) == case.action)
            .unwrap_or_else(|| case.action.clone());
        let answer = browser.submit_form(&page, &action, &fields).await;

        assert_eq!(
            answer.status, case.expected,
            "{:?} on {} to {}:\n{}",
            case.visitor, case.page, case.action, answer.body
        );
        covered.push((case.page.clone(), case.action.clone()));
    }
    // Every POST form on those pages is in the table (the admin list's
    // other rows repeat the same buttons for other accounts).
    for (n, case) in cases.iter().enumerate() {
        let page = visitor(&app, case.visitor, 100 + n).await.get(&case.page).await;
        for (method, action) in HtmlForm::all_on(&page.body) {
            let per_account =
                action.starts_with("/admin/users/") && !action.starts_with(&format!("/admin/users/{target}/"));
            if method == "post" && !per_account {
                assert!(
                    covered.iter().any(|(_, covered_action)| *covered_action == shape(&action)),
                    "the form to {action} on {} is not submitted by this test",
                    case.page
                );
            }
        }
    }
}

async fn every_form_on_the_admin_dashboard_submitted_as_served_is_accepted(backend: Backend) {
    let app = spawn_app_with(backend, &[("--require-admin-approval", "true")]).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("waiting@example.com").await;
    app.register_verified("refused@example.com").await;
    let (id, refused) = (app.user_id("waiting@example.com"), app.user_id("refused@example.com"));
    let dashboard = admin.get("/admin").await;
    let forms = HtmlForm::all_on(&dashboard.body);
    assert!(forms.iter().any(|(_, a)| *a == format!("/admin/users/{id}/approve")), "approve is a button");
    let reject_link = format!("/admin/users/{refused}/reject?back=%2Fadmin");
    assert!(dashboard.body.contains(&format!("href=\"{reject_link}\"")), "reject asks first");

    admin.submit_form(&dashboard, &format!("/admin/users/{id}/approve"), &[]).await.assert_redirects_to("/admin");
    let confirmation = admin.get(&reject_link).await;
    let rejected = admin.submit_form(&confirmation, &format!("/admin/users/{refused}/reject"), &[]).await;

    rejected.assert_redirects_to("/admin");
    app.sign_in(&app.browser(), "waiting@example.com", PASSWORD).await.assert_redirects_to("/account");
    assert_eq!(app.sign_in(&app.browser(), "refused@example.com", PASSWORD).await.status, StatusCode::FORBIDDEN);
}

async fn emailed_links_with_tracking_parameters_work_as_without(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let token = app.mail.wait_for("ann@example.com", 1).await.verify_token();

    let link = format!("/verify?token={token}&{TRACKING}");
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    browser.submit_form(&page, "/verify", &[]).await.assert_redirects_to("/login");

    browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let token = app.mail.wait_for("ann@example.com", 2).await.link_token("/password/reset?token=");
    let page = browser.get(&format!("/password/reset?{TRACKING}&token={token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let fields = [("password", NEW_PASSWORD), ("password_confirm", NEW_PASSWORD)];
    browser.submit_form(&page, "/password/reset", &fields).await.assert_redirects_to("/login");

    let sign_in = browser.get(&format!("/login?next=%2Faccount&{TRACKING}")).await;
    assert_eq!(sign_in.status, StatusCode::OK);
    let fields = [("email", "ann@example.com"), ("password", NEW_PASSWORD)];
    browser.submit_form(&sign_in, "/login", &fields).await.assert_redirects_to("/account");
}

async fn unknown_query_parameters_are_ignored_on_every_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.browser();
    let admin = app.signed_in_admin("root@example.com").await;
    let id = app.user_id("root@example.com");

    for path in ["/", "/register", "/login", "/verify", "/verify/resend", "/password/forgot", "/healthz", "/readyz"] {
        let page = anonymous.get(&format!("{path}?{TRACKING}")).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    for path in [
        "/account".to_owned(),
        "/admin".to_owned(),
        "/admin/users".into(),
        format!("/admin/users/{id}"),
        "/admin/events".into(),
    ] {
        let page = admin.get(&format!("{path}?{TRACKING}")).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
}

async fn head_is_answered_wherever_get_is(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.browser();
    let user = app.signed_in_user("ann@example.com").await;
    let pages = [
        "/",
        "/register",
        "/login",
        "/verify",
        "/verify/resend",
        "/password/forgot",
        "/static/usher.css",
        "/healthz",
        "/readyz",
    ];
    let cases = pages.iter().map(|path| (&anonymous, *path)).chain([(&user, "/account"), (&anonymous, "/account")]);

    for (browser, path) in cases {
        let get = browser.get(path).await;
        let head = browser.head(path).await;

        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(head.headers.get("content-type"), get.headers.get("content-type"), "{path}");
        assert_eq!(head.headers.get("location"), get.headers.get("location"), "{path}");
        let length = |page: &crate::helpers::Page| page.headers.get("content-length").cloned();
        assert_eq!(length(&head), length(&get), "{path}: the length GET would send");
    }
}

async fn signing_out_of_a_session_that_already_ended_lands_signed_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let first_tab = browser.get("/account").await;
    browser.submit("/account", "/logout", &[]).await.assert_redirects_to("/");

    let again = browser.submit_form(&first_tab, "/logout", &[]).await;

    again.assert_redirects_to("/");
    let home = browser.follow(&again).await;
    assert!(home.body.contains("You are signed out."), "{}", home.body);
    assert!(home.body.contains("href=\"/login\""), "the signed-out header");
}

async fn a_signed_in_sign_out_still_needs_its_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in_user("ann@example.com").await;

    let forged = browser.post_raw("/logout", &[("csrf_token", "forged")]).await;

    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "still signed in");
}

async fn a_used_confirmation_link_says_so_before_any_button_is_pressed(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let link = format!("/verify?token={}", app.mail.wait_for("ann@example.com", 1).await.verify_token());
    browser.submit(&link, "/verify", &[]).await.assert_redirects_to("/login");

    let again = browser.get(&link).await;

    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("has been used or has expired"), "{}", again.body);
    assert!(!again.body.contains("Confirm my email address"), "no button that cannot work");
}

async fn the_sign_in_form_after_confirming_has_the_address_filled_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let link = format!("/verify?token={}", app.mail.wait_for("ann@example.com", 1).await.verify_token());

    let confirmed = browser.submit(&link, "/verify", &[]).await;

    let sign_in = browser.follow(&confirmed).await;
    assert_eq!(sign_in.input_value("email").as_deref(), Some("ann@example.com"));
}

async fn the_sign_in_page_says_how_long_keep_me_signed_in_lasts(backend: Backend) {
    let app = spawn_app_with(backend, &[("--session-remember-ttl", "14d")]).await;

    let page = app.browser().get("/login").await;

    assert!(page.body.contains("Keep me signed in on this device for 14 days"), "{}", page.body);
}

async fn the_site_has_an_icon_where_browsers_look(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();

    for path in ["/favicon.ico", "/static/favicon.svg"] {
        let icon = browser.get(path).await;
        assert_eq!(icon.status, StatusCode::OK, "{path}");
        assert_eq!(icon.headers.get("content-type").unwrap(), "image/svg+xml", "{path}");
    }
    assert!(browser.get("/login").await.body.contains("rel=\"icon\" href=\"/static/favicon.svg\""));
}

async fn a_sign_up_promises_only_what_either_mail_delivers(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("owner@example.com").await;
    let browser = app.browser();

    let page = browser.follow(&app.register(&browser, "owner@example.com").await).await;

    let note = app.mail.wait_for("owner@example.com", 2).await;
    assert!(!note.text.contains("code"), "the note to a verified owner has no code");
    let flash = page.body.split("class=\"flash").nth(1).unwrap().split("</p>").next().unwrap();
    assert!(!flash.contains("code"), "so the page promises none: {flash}");
}

async fn the_support_address_is_on_every_page_and_in_every_mail(backend: Backend) {
    let overrides = [("--support-email", "help@example.com"), ("--require-admin-approval", "true")];
    let app = spawn_app_with(backend, &overrides).await;
    let admin = app.signed_in_admin("root@example.com").await;
    app.register_verified("ann@example.com").await;
    let id = app.user_id("ann@example.com");
    let url = format!("/admin/users/{id}/reject");
    admin.submit(&format!("{url}?back=%2Fadmin"), &url, &[]).await.assert_redirects_to("/admin");

    for page in
        [app.browser().get("/login").await, app.browser().get("/no/such/page").await, admin.get("/account").await]
    {
        assert!(page.body.contains("Write to <a href=\"mailto:help@example.com\">"), "{}", page.body);
    }
    let blocked = app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await;
    assert!(blocked.body.contains("mailto:help@example.com"), "the not-approved page names the contact");
    let rejected = app.mail.wait_for("ann@example.com", 2).await;
    assert!(rejected.text.contains("If you think this is a mistake, write to help@example.com."), "{}", rejected.text);
    for mail in app.mail.to("ann@example.com") {
        assert!(mail.text.contains("Questions? Write to help@example.com."), "{}", mail.text);
        assert!(mail.html.contains("mailto:help@example.com"), "{}", mail.html);
    }
}

async fn every_page_title_names_its_heading(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.browser();
    let admin = app.signed_in_admin("root@example.com").await;
    let id = app.user_id("root@example.com");
    let text_of = |body: &str, tag: &str| {
        let inner = body.split(&format!("<{tag}>")).nth(1).and_then(|rest| rest.split(&format!("</{tag}>")).next());
        inner.unwrap_or_default().split('<').next().unwrap_or_default().trim().to_owned()
    };
    let anonymous_pages =
        ["/", "/register", "/login", "/verify", "/verify/resend", "/password/forgot", "/no/such/page"];
    let admin_pages = [
        "/account".to_owned(),
        "/admin".into(),
        "/admin/users".into(),
        "/admin/events".into(),
        format!("/admin/users/{id}"),
    ];

    for (browser, path) in
        anonymous_pages.iter().map(|p| (&anonymous, p.to_string())).chain(admin_pages.into_iter().map(|p| (&admin, p)))
    {
        let page = browser.get(&path).await;
        let heading = text_of(&page.body, "h1");
        let title = text_of(&page.body, "title");
        assert!(!heading.is_empty(), "{path}: a heading");
        assert!(title.starts_with(&format!("{heading} · ")), "{path}: title {title:?} for heading {heading:?}");
    }
}

async fn plain_text_mail_puts_each_link_on_a_line_of_its_own(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    app.browser().submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;

    let mail = app.mail.wait_for("ann@example.com", 2).await;

    let lines: Vec<&str> = mail.text.lines().collect();
    let at = lines.iter().position(|line| line.contains("/password/reset?token=")).expect("the link");
    assert!(lines[at].starts_with("http"), "the link stands alone: {:?}", lines[at]);
    assert_eq!(lines[at - 1], "Choose a new password:", "introduced by the line before it");
    assert!(lines[at + 1].starts_with("The link works once"), "what to know follows: {:?}", lines[at + 1]);
}

async fn an_address_that_only_takes_a_form_leads_to_its_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let user_page = format!("/admin/users/{}", app.user_id("root@example.com"));
    let cases = [
        ("/account/password".to_owned(), "/account"),
        ("/account/sessions/revoke-others".to_owned(), "/account"),
        ("/logout".to_owned(), "/"),
        (format!("{user_page}/approve"), user_page.as_str()),
        ("/admin/mail/1/retry".to_owned(), "/admin"),
    ];

    for (path, page) in cases {
        // What the address bar shows after a form's mistakes, entered again.
        admin.get(&path).await.assert_redirects_to(page);
    }
    assert!(
        admin.get("/account").await.body.contains("href=\"/admin\">Administration</a>"),
        "the header links to the admin pages"
    );
}
