//! Two-step sign-in (RFC 6238 authenticator codes and recovery codes),
//! driven through the served forms. Codes are computed here from the key
//! the page shows, by `totp-rs`, at the server's clock.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use usher::db::schema::{audit_events, second_factor_challenges};

use crate::helpers::{Backend, Browser, PASSWORD, Page, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    enrolment_needs_a_right_first_code_and_shows_recovery_codes_once,
    signing_in_needs_the_code_and_the_password_step_opens_nothing,
    a_code_is_good_once_within_one_step_of_drift,
    a_recovery_code_works_once_and_a_new_set_voids_the_old,
    a_password_reset_keeps_the_second_factor,
    wrong_codes_are_limited_per_account_across_new_sign_ins,
    turning_it_off_needs_a_code_and_ends_other_sessions,
    an_administrator_or_the_command_line_resets_a_lost_device,
    rotating_the_encryption_key_keeps_codes_working,
    administrators_required_to_use_it_set_it_up_first_and_keep_it,
    a_new_password_or_a_disabled_account_ends_the_code_step,
    a_code_page_left_open_for_another_account_does_not_count_against_it,
);

/// The authenticator app: codes from the key the page showed.
pub(crate) struct Authenticator(totp_rs::Totp);

impl Authenticator {
    fn from_page(page: &Page) -> Self {
        let grouped = page.texts("#totp-secret").pop().expect("the key is on the page");
        let secret = totp_rs::Secret::try_from_base32(grouped.replace(' ', "")).expect("base32");
        Self(totp_rs::Builder::new().with_secret(secret).build().expect("an RFC 6238 key"))
    }

    /// The code for `offset` seconds from the server's now.
    pub(crate) fn code(&self, app: &TestApp, offset: i64) -> String {
        self.0.generate((app.clock.now() + offset) as u64).to_string()
    }
}

/// Moves the server's clock to the next time step and a second into it,
/// so that no step boundary passes while a test computes and sends a code.
pub(crate) fn next_step(app: &TestApp) {
    let into = app.clock.now().rem_euclid(30);
    app.clock.advance(Duration::from_secs((30 - into + 1) as u64));
}

/// Turns two-step sign-in on for the account signed in in `browser`;
/// returns its authenticator and recovery codes.
pub(crate) async fn enrol(app: &TestApp, browser: &Browser) -> (Authenticator, Vec<String>) {
    let off = browser.get("/account/two-factor").await;
    browser.submit_form(&off, "/account/two-factor/enrol", &[]).await.assert_redirects_to("/account/two-factor");
    let pending = browser.get("/account/two-factor").await;
    let app_codes = Authenticator::from_page(&pending);
    next_step(app);
    let shown =
        browser.submit_form(&pending, "/account/two-factor/confirm", &[("code", &app_codes.code(app, 0))]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let codes = shown.texts("#recovery-codes li");
    assert_eq!(codes.len(), 10, "{}", shown.body);
    next_step(app);
    (app_codes, codes)
}

/// Signs in with the password: the code page, no session yet.
async fn password_step(app: &TestApp, browser: &Browser, email: &str) {
    password_step_with(app, browser, email, PASSWORD).await;
}

async fn password_step_with(app: &TestApp, browser: &Browser, email: &str, password: &str) {
    app.sign_in(browser, email, password).await.assert_redirects_to("/login/two-factor");
}

pub(crate) async fn type_code(browser: &Browser, code: &str) -> Page {
    browser.submit("/login/two-factor", "/login/two-factor", &[("code", code)]).await
}

fn events_of(app: &TestApp, kind: &str) -> Vec<String> {
    audit_events::table
        .filter(audit_events::kind.eq(kind))
        .select(audit_events::detail)
        .order(audit_events::id)
        .load(&mut app.db())
        .unwrap()
}

async fn enrolment_needs_a_right_first_code_and_shows_recovery_codes_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let phone = app.browser();
    app.sign_in(&phone, "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    assert_eq!(ann.get("/account").await.texts("a[href='/account/two-factor']"), ["Set up two-step sign-in"]);

    let off = ann.get("/account/two-factor").await;
    assert!(off.texts("#two-factor-state")[0].starts_with("Off."));
    ann.submit_form(&off, "/account/two-factor/enrol", &[]).await.assert_redirects_to("/account/two-factor");
    let pending = ann.get("/account/two-factor").await;
    assert_eq!(pending.texts("svg[role='img'][aria-label]").len(), 1, "a QR code, inline: {}", pending.body);
    assert!(!pending.body.contains("style="), "no style attribute for the CSP to block");
    let key = pending.texts("#totp-secret").pop().unwrap().replace(' ', "");
    assert!(pending.body.contains(&format!("otpauth://totp/Usher:ann%40example.com?secret={key}")), "{}", pending.body);
    let authenticator = Authenticator::from_page(&pending);
    next_step(&app);

    let right = authenticator.code(&app, 0);
    let wrong = if right == "123456" { "654321" } else { "123456" };
    let refused = ann.submit_form(&pending, "/account/two-factor/confirm", &[("code", wrong)]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.texts("#code-error")[0].contains("That code is not right"));
    assert_eq!(refused.texts("#totp-secret").pop().unwrap().replace(' ', ""), key, "the same key waits");
    assert_eq!(events_of(&app, "two-step sign-in turned on").len(), 0);

    let shown = ann.submit_form(&refused, "/account/two-factor/confirm", &[("code", &right)]).await;
    assert_eq!(shown.status, StatusCode::OK);
    let codes = shown.texts("#recovery-codes li");
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| code.len() == 11 && code.as_bytes()[5] == b'-'), "{codes:?}");
    assert!(shown.body.contains("Your other session was signed out."));

    phone.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    assert_eq!(ann.get("/account").await.texts("a[href='/account/two-factor']"), ["Manage two-step sign-in"]);
    let on = ann.get("/account/two-factor").await;
    assert!(on.texts("#two-factor-state")[0].contains("10 of 10 recovery codes left"), "{}", on.body);
    assert!(on.texts("#recovery-codes li").is_empty(), "codes are shown once");
    assert_eq!(events_of(&app, "two-step sign-in turned on").len(), 1);
    app.mail.wait_for_subject("ann@example.com", "Two-step sign-in is on").await;

    let stored = app.dump_all_tables();
    assert!(!stored.contains(&key), "the key is stored sealed");
    for code in &codes {
        assert!(!stored.contains(code.as_str()) && !stored.contains(&code.replace('-', "")), "{code} in clear");
    }
    let page = ann.get("/account/export").await;
    let export: serde_json::Value =
        serde_json::from_str(&ann.submit_form(&page, "/account/export", &[]).await.body).unwrap();
    assert_eq!(export["two_step_sign_in"]["recovery_codes_left"], 10);
    assert!(!export.to_string().contains(&key) && !export.to_string().contains(&codes[0]));

    // The codes page's own forms work (its session moved to a new id).
    ann.submit_form(&shown, "/logout", &[]).await.assert_redirects_to("/");
}

async fn signing_in_needs_the_code_and_the_password_step_opens_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;

    let laptop = app.browser();
    app.sign_in(&laptop, "ann@example.com", PASSWORD).await.assert_redirects_to("/login/two-factor");
    assert!(laptop.cookie("usher_session").is_none(), "no session before the code");
    laptop.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    laptop.get("/account/two-factor").await.assert_redirects_to("/login?next=%2Faccount%2Ftwo-factor");
    let asked = laptop.get("/login/two-factor").await;
    assert_eq!(asked.status, StatusCode::OK);
    assert_eq!(asked.texts("form[action='/login/two-factor'] label[for='code']"), ["Code"]);

    let wrong = type_code(&laptop, "000000").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(events_of(&app, "sign-in failed"), ["wrong two-step code"]);
    let signed_in = type_code(&laptop, &authenticator.code(&app, 0)).await;
    signed_in.assert_redirects_to("/account");
    assert_eq!(laptop.get("/account").await.status, StatusCode::OK);
    laptop.get("/login/two-factor").await.assert_redirects_to("/account");
    // The button pressed twice: the second lands on the account page too.
    let again = laptop.submit_form(&asked, "/login/two-factor", &[("code", "000000")]).await;
    again.assert_redirects_to("/account");
    let challenges: i64 = second_factor_challenges::table.count().get_result(&mut app.db()).unwrap();
    assert_eq!(challenges, 0, "the challenge ended with the sign-in");
    // Another browser's password step does not carry over to a browser without its cookie.
    let slow = app.browser();
    password_step(&app, &slow, "ann@example.com").await;
    let stranger = app.browser();
    stranger.get("/login/two-factor").await.assert_redirects_to("/login");
    // Five minutes later the password step has lapsed.
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    slow.get("/login/two-factor").await.assert_redirects_to("/login");
}

async fn a_code_is_good_once_within_one_step_of_drift(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;
    let code = authenticator.code(&app, 0);
    let first = app.browser();
    password_step(&app, &first, "ann@example.com").await;
    type_code(&first, &code).await.assert_redirects_to("/account");

    let again = app.browser();
    password_step(&app, &again, "ann@example.com").await;
    let replayed = type_code(&again, &code).await;
    assert_eq!(replayed.status, StatusCode::UNPROCESSABLE_ENTITY, "replayed");
    assert!(replayed.texts("#code-error")[0].contains("That code was used already"));
    next_step(&app);
    for (offset, accepted) in [(-60, false), (60, false), (30, true)] {
        let page = type_code(&again, &authenticator.code(&app, offset)).await;
        assert_eq!(page.status == StatusCode::SEE_OTHER, accepted, "{offset} s: {}", page.status);
    }
    for _ in 0..3 {
        next_step(&app);
    }
    // Two steps after the code of +30 s was used: one step back is new, and still good.
    let late = app.browser();
    password_step(&app, &late, "ann@example.com").await;
    type_code(&late, &authenticator.code(&app, -30)).await.assert_redirects_to("/account");
}

async fn a_recovery_code_works_once_and_a_new_set_voids_the_old(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (_, codes) = enrol(&app, &ann).await;

    let lost_phone = app.browser();
    password_step(&app, &lost_phone, "ann@example.com").await;
    let typed = format!(" {} ", codes[0].to_uppercase().replace('-', " "));
    let signed_in = type_code(&lost_phone, &typed).await;
    signed_in.assert_redirects_to("/account");
    let account = lost_phone.follow(&signed_in).await;
    assert!(
        account.body.contains("You signed in with a recovery code. 9 recovery codes are left."),
        "{}",
        account.body
    );
    let notice = app.mail.wait_for_subject("ann@example.com", "A recovery code was used").await;
    assert!(notice.text.contains("9 recovery codes are left."), "{}", notice.text);
    assert_eq!(events_of(&app, "recovery code used"), ["9 left"]);

    let again = app.browser();
    password_step(&app, &again, "ann@example.com").await;
    assert_eq!(type_code(&again, &codes[0]).await.status, StatusCode::UNPROCESSABLE_ENTITY, "used up");

    let manage = ann.get("/account/two-factor").await;
    let renewed = ann.submit_form(&manage, "/account/two-factor/recovery-codes", &[]).await;
    let new_codes = renewed.texts("#recovery-codes li");
    assert_eq!(new_codes.len(), 10);
    app.mail.wait_for_subject("ann@example.com", "New recovery codes").await;
    // The same form sent again (a reload) makes no other set.
    let resent = ann.submit_form(&manage, "/account/two-factor/recovery-codes", &[]).await;
    resent.assert_redirects_to("/account/two-factor");
    assert!(ann.follow(&resent).await.body.contains("No new codes were made"));
    assert_eq!(type_code(&again, &codes[1]).await.status, StatusCode::UNPROCESSABLE_ENTITY, "the old set is void");
    type_code(&again, &new_codes[1]).await.assert_redirects_to("/account");
}

async fn a_password_reset_keeps_the_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;
    app.mail_settled().await;

    let browser = app.browser();
    browser.submit("/password/forgot", "/password/forgot", &[("email", "ann@example.com")]).await;
    let token = app.mail.wait_for_subject("ann@example.com", "Reset your").await.link_token("/password/reset?token=");
    let new_password = "an entirely new passphrase 42";
    let fields = [("password", new_password), ("password_confirm", new_password)];
    let reset_page = format!("/password/reset?token={token}");
    browser.submit(&reset_page, "/password/reset", &fields).await;

    let page = app.sign_in(&browser, "ann@example.com", new_password).await;
    page.assert_redirects_to("/login/two-factor");
    type_code(&browser, &authenticator.code(&app, 0)).await.assert_redirects_to("/account");
}

async fn wrong_codes_are_limited_per_account_across_new_sign_ins(backend: Backend) {
    let app = spawn_app_with(backend, &[("--limit-second-factor-per-account", "3/15m")]).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;

    let thief = app.browser();
    password_step(&app, &thief, "ann@example.com").await;
    for _ in 0..3 {
        assert_eq!(type_code(&thief, "000000").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(type_code(&thief, "000001").await.status, StatusCode::TOO_MANY_REQUESTS);
    thief.get("/login/two-factor").await.assert_redirects_to("/login");
    let warning = app.mail.wait_for_subject("ann@example.com", "Someone has your Usher password").await;
    assert!(warning.text.contains("then typed wrong two-step codes"), "{}", warning.text);

    // A new password step does not give new attempts, even with the right code.
    password_step(&app, &thief, "ann@example.com").await;
    assert_eq!(type_code(&thief, &authenticator.code(&app, 0)).await.status, StatusCode::TOO_MANY_REQUESTS);

    app.clock.advance(Duration::from_secs(16 * 60));
    next_step(&app);
    let owner = app.browser();
    password_step(&app, &owner, "ann@example.com").await;
    type_code(&owner, &authenticator.code(&app, 0)).await.assert_redirects_to("/account");

    // Guesses at turning it off count in the same limit.
    let manage = owner.get("/account/two-factor").await;
    for _ in 0..3 {
        let wrong = owner.submit_form(&manage, "/account/two-factor/disable", &[("code", "000000")]).await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let refused = owner.submit_form(&manage, "/account/two-factor/disable", &[("code", "000000")]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn a_new_password_or_a_disabled_account_ends_the_code_step(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("boss@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;
    enrol(&app, &ann).await;

    let thief = app.browser();
    password_step(&app, &thief, "ann@example.com").await;
    let new_password = "an entirely new passphrase 42";
    let fields = [("current_password", PASSWORD), ("password", new_password), ("password_confirm", new_password)];
    ann.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");
    thief.get("/login/two-factor").await.assert_redirects_to("/login");

    let other = app.browser();
    password_step_with(&app, &other, "ann@example.com", new_password).await;
    let id = app.user_id("ann@example.com");
    let confirm = admin.get(&format!("/admin/users/{id}/disable")).await;
    admin.submit_form(&confirm, &format!("/admin/users/{id}/disable"), &[]).await;
    let page = other.get("/login/two-factor").await;
    page.assert_redirects_to("/login");
    assert_eq!(events_of(&app, "signed in").len(), 2, "only the two sign-ins of the set-up");
}

async fn turning_it_off_needs_a_code_and_ends_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, codes) = enrol(&app, &ann).await;
    let phone = app.browser();
    password_step(&app, &phone, "ann@example.com").await;
    type_code(&phone, &authenticator.code(&app, 0)).await.assert_redirects_to("/account");

    let manage = ann.get("/account/two-factor").await;
    let refused = ann.submit_form(&manage, "/account/two-factor/disable", &[("code", "zzzzz-zzzzz")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let off = ann.submit_form(&refused, "/account/two-factor/disable", &[("code", &codes[3])]).await;
    off.assert_redirects_to("/account");
    assert!(ann.follow(&off).await.body.contains("Two-step sign-in is off. Your other session was signed out."));
    phone.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    app.mail.wait_for_subject("ann@example.com", "Two-step sign-in is off").await;
    assert_eq!(events_of(&app, "two-step sign-in turned off"), [""]);
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
}

async fn an_administrator_or_the_command_line_resets_a_lost_device(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in_admin("boss@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;
    let bob = app.signed_in_user("bob@example.com").await;
    enrol(&app, &ann).await;
    enrol(&app, &bob).await;
    let id = app.user_id("ann@example.com");

    let page = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(
        page.texts("#two-factor")[0],
        "on, 10 of 10 recovery codes left · Reset two-step sign-in of ann@example.com"
    );
    let confirm = admin.get(&format!("/admin/users/{id}/reset-two-factor")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert_eq!(confirm.texts("#consequences li").len(), 3);
    let done = admin.submit_form(&confirm, &format!("/admin/users/{id}/reset-two-factor"), &[]).await;
    done.assert_redirects_to(&format!("/admin/users/{id}"));
    assert_eq!(admin.follow(&done).await.texts("#two-factor"), ["off"]);
    let notice = app.mail.wait_for_subject("ann@example.com", "Two-step sign-in was reset").await;
    assert!(notice.text.contains("An administrator"), "{}", notice.text);
    assert!(notice.text.contains("/account/two-factor") && !notice.text.contains("If this was you"), "{}", notice.text);
    app.sign_in(&app.browser(), "ann@example.com", PASSWORD).await.assert_redirects_to("/account");
    let admin_id = app.user_id("boss@example.com");
    let reset_events: Vec<Option<i64>> = audit_events::table
        .filter(audit_events::kind.eq("two-step sign-in turned off"))
        .select(audit_events::actor_id)
        .load(&mut app.db())
        .unwrap();
    assert_eq!(reset_events, [Some(admin_id)]);

    let output = app.usher_command(&["reset-two-factor", "--email", "bob@example.com"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    app.sign_in(&app.browser(), "bob@example.com", PASSWORD).await.assert_redirects_to("/account");
    let again = app.usher_command(&["reset-two-factor", "--email", "bob@example.com"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no two-step sign-in"));
}

async fn rotating_the_encryption_key_keeps_codes_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;
    let (old, new) = (crate::helpers::ENCRYPTION_KEY, "the next encryption key, also over thirty-two bytes");

    let rotate = ["rotate-encryption-key", "--encryption-key", new, "--encryption-old-keys", old];
    let output = app.usher_command(&rotate);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-encrypted: 1"));

    let rotated = spawn_app_on(app.database.clone(), &[("--encryption-key", new)]).await;
    rotated.clock.advance(Duration::from_secs((app.clock.now() - rotated.clock.now()).max(0) as u64));
    let browser = rotated.browser();
    rotated.sign_in(&browser, "ann@example.com", PASSWORD).await.assert_redirects_to("/login/two-factor");
    type_code(&browser, &authenticator.code(&rotated, 0)).await.assert_redirects_to("/account");
}

async fn administrators_required_to_use_it_set_it_up_first_and_keep_it(backend: Backend) {
    let app = spawn_app_with(backend, &[("--require-two-factor", "admins")]).await;
    let admin = app.signed_in_admin("boss@example.com").await;
    let ann = app.signed_in_user("ann@example.com").await;

    for page in ["/account", "/admin", "/admin/users", "/account/delete"] {
        admin.get(page).await.assert_redirects_to("/account/two-factor");
    }
    let setup = admin.get("/account/two-factor").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.body.contains("This site asks you to set up two-step sign-in before anything else."));
    assert_eq!(ann.get("/account").await.status, StatusCode::OK, "not required of other users");

    let (_, codes) = enrol(&app, &admin).await;
    assert_eq!(admin.get("/admin").await.status, StatusCode::OK);
    let manage = admin.get("/account/two-factor").await;
    assert_eq!(manage.texts("#two-factor-required").len(), 1, "no form to turn it off");
    let refused = admin
        .post_raw("/account/two-factor/disable", &[("csrf_token", &manage.csrf_token()), ("code", &codes[0])])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(admin.get("/account/two-factor").await.texts("#two-factor-state")[0].starts_with("On."));

    // Reset for a lost device, the next sign-in leads to setting it up again.
    let output = app.usher_command(&["reset-two-factor", "--email", "boss@example.com"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let again = app.browser();
    app.sign_in(&again, "boss@example.com", PASSWORD).await.assert_redirects_to("/account");
    again.get("/account").await.assert_redirects_to("/account/two-factor");
}

async fn a_code_page_left_open_for_another_account_does_not_count_against_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signed_in_user("ann@example.com").await;
    let bob = app.signed_in_user("bob@example.com").await;
    let (ann_app, _) = enrol(&app, &ann).await;
    enrol(&app, &bob).await;

    let shared = app.browser();
    password_step(&app, &shared, "ann@example.com").await;
    let anns_tab = shared.get("/login/two-factor").await;
    assert!(anns_tab.body.contains("<strong>ann@example.com</strong>"), "the page names whose code it asks for");
    password_step(&app, &shared, "bob@example.com").await;

    let fields = [("code", ann_app.code(&app, 0))];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let stale = shared.submit_form(&anns_tab, "/login/two-factor", &fields).await;
    stale.assert_redirects_to("/login");
    assert!(shared.follow(&stale).await.body.contains("started signing in to another account"));
    assert!(events_of(&app, "sign-in failed").is_empty(), "counted against nobody");
}
