//! What a person does in a browser, page by page. Each test has one
//! browser; every page it passes gets the checks of `Chrome::check_page`.

use fantoccini::Locator;

use crate::chrome::{Chrome, link_in, tools};
use crate::helpers::{
    Backend, PASSWORD, Proxy, ProxyKind, TestApp, Upstream, spawn_app, spawn_app_with, spawn_guarding_app,
};

const NEW_PASSWORD: &str = "copper lantern meadow 77";

/// Usher and a browser on it; `None` (the test passes) when the machine
/// has no browser and the browser tests are not required.
async fn app_and_browser() -> Option<(TestApp, Chrome)> {
    let tools = tools()?;
    let app = spawn_app(Backend::Sqlite).await;
    let chrome = Chrome::start(tools, &app.address).await;
    Some((app, chrome))
}

/// Sign up, open the emailed link, confirm, sign in, see the account, sign
/// out; on the way the error pages (404, and 403 for a form whose CSRF
/// cookie is gone) and a used link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_confirm_by_link_sign_in_and_out() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "ada@example.com";

    chrome.open("/").await;
    chrome.check_page("home").await;
    chrome.follow("Create account").await;
    chrome.wait_for_path("/register").await;
    chrome.check_page("register").await;

    // Three mistakes at once: all three are explained, each on its field.
    chrome.fill("email", "not an address").await;
    chrome.fill("password", "short").await;
    chrome.fill("password_confirm", "shorter").await;
    chrome.press("Create account").await;
    chrome.wait_for_path("/register").await;
    assert_eq!(chrome.focused_class().await, "error-summary", "the error summary takes the focus");
    let summary_links = chrome.hrefs(".error-summary a").await;
    assert_eq!(summary_links, ["#email", "#password", "#password_confirm"], "one link per mistake, in field order");
    assert_eq!(chrome.attribute("#email", "aria-describedby").await.as_deref(), Some("email-error"));
    assert_eq!(
        chrome.attribute("#password", "aria-describedby").await.as_deref(),
        Some("password-hint password-error")
    );
    assert_eq!(chrome.attribute("#password_confirm", "aria-invalid").await.as_deref(), Some("true"));
    assert!(chrome.text("#password_confirm-error").await.contains("do not match"));
    chrome.check_page("register-errors").await;

    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.fill("password_confirm", PASSWORD).await;
    chrome.press("Create account").await;
    chrome.wait_for_path("/verify").await;
    assert!(chrome.flash().await.contains("Check your inbox"), "{}", chrome.flash().await);
    chrome.check_page("verify-code").await;

    let mail = app.mail.wait_for(email, 1).await;
    let link = link_in(&mail.text, "/verify?token=");
    chrome.screenshot_email("email-confirm", &mail.html).await;
    chrome.open_url(&link).await;
    chrome.check_page("verify-link").await;
    chrome.press("Confirm my email address").await;
    chrome.wait_for_path("/login").await;
    assert!(!chrome.flash().await.is_empty(), "a flash message after confirming");
    assert_eq!(chrome.focused_id().await, "email", "the sign-in page starts in the address field");
    assert_eq!(chrome.attribute("#email", "value").await.as_deref(), Some(email), "filled in after confirming");
    chrome.check_page("login").await;

    chrome.fill("email", email).await;
    chrome.fill("password", "not the password at all").await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/login").await;
    assert!(chrome.text("#email-error").await.contains("Invalid email or password"));
    assert_eq!(chrome.focused_class().await, "error-summary");
    chrome.check_page("login-error").await;

    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, email);
    chrome.check_page("account").await;

    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;
    assert_eq!(chrome.flash().await, "You are signed out.");
    chrome.open("/account").await;
    chrome.wait_for_path("/login").await;

    // The same link again: it says at once that it has been used.
    chrome.open_url(&link).await;
    assert!(chrome.text("h1").await.contains("used or has expired"));
    chrome.check_page("verify-link-used").await;

    chrome.open("/no-such-page").await;
    assert!(chrome.text("main").await.contains("Error 404"));
    chrome.check_page("error-404").await;

    // A form whose CSRF cookie is gone (cookies cleared in another tab,
    // say) is refused with the 403 page.
    chrome.open("/login").await;
    chrome.client.delete_all_cookies().await.expect("clear cookies");
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/login").await;
    assert!(chrome.text("main").await.contains("Error 403"), "{}", chrome.text("main").await);
    chrome.check_page("error-403").await;

    // The audit is live: a page with known problems fails it.
    chrome.open_url("data:text/html,<title>Broken</title><input name=unlabelled>").await;
    let found: Vec<String> =
        chrome.axe_violations("broken").await.iter().map(|v| v["id"].as_str().unwrap_or("").to_owned()).collect();
    assert!(found.iter().any(|id| id == "label") && found.iter().any(|id| id == "html-has-lang"), "{found:?}");

    chrome.finish().await;
}

/// Sign up, ask for a new email, type a wrong code and then the right one,
/// sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_by_code_after_a_resend() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "grace@example.com";

    chrome.open("/register").await;
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.fill("password_confirm", PASSWORD).await;
    chrome.press("Create account").await;
    chrome.wait_for_path("/verify").await;
    app.mail.wait_for(email, 1).await;

    chrome.follow("Send a new link and code").await;
    chrome.wait_for_path("/verify/resend").await;
    chrome.check_page("resend").await;
    chrome.fill("email", email).await;
    chrome.press("Send").await;
    chrome.wait_for_path("/verify").await;
    assert!(chrome.flash().await.contains("new link and code"), "{}", chrome.flash().await);
    let code = app.mail.wait_for(email, 2).await.code();
    app.mail_settled().await;

    chrome.fill("email", email).await;
    chrome.fill("code", if code == "000000" { "111111" } else { "000000" }).await;
    chrome.press("Confirm").await;
    chrome.wait_for_path("/verify").await;
    assert_eq!(chrome.attribute("#code", "aria-invalid").await.as_deref(), Some("true"));
    assert_eq!(chrome.attribute("#code", "inputmode").await.as_deref(), Some("numeric"));
    chrome.check_page("verify-code-error").await;

    chrome.fill("email", email).await;
    chrome.fill("code", &code).await;
    chrome.press("Confirm").await;
    chrome.wait_for_path("/login").await;
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, email);

    chrome.finish().await;
}

/// Forgot the password: ask for a link, open it, choose a new password
/// (a mismatch first), sign in with it; the link then no longer works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_reset_and_sign_in() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "alan@example.com";
    app.register_verified(email).await;

    chrome.open("/login").await;
    chrome.follow("Forgot your password?").await;
    chrome.wait_for_path("/password/forgot").await;
    chrome.check_page("forgot").await;
    chrome.fill("email", email).await;
    chrome.press("Send me a link").await;
    chrome.wait_for_path("/password/forgot").await;
    assert!(!chrome.flash().await.is_empty(), "a flash message after asking for a link");
    chrome.check_page("forgot-sent").await;

    let mail = app.mail.wait_for(email, 2).await;
    let link = link_in(&mail.text, "/password/reset?token=");
    chrome.screenshot_email("email-reset", &mail.html).await;
    chrome.open_url(&link).await;
    chrome.check_page("reset").await;

    chrome.fill("password", NEW_PASSWORD).await;
    chrome.fill("password_confirm", "something else entirely").await;
    chrome.press("Set the new password").await;
    chrome.wait_for_path("/password/reset").await;
    assert_eq!(chrome.attribute("#password_confirm", "aria-invalid").await.as_deref(), Some("true"));
    assert_eq!(chrome.attribute("#password", "aria-invalid").await, None, "the mismatch is the confirmation's mistake");
    chrome.check_page("reset-error").await;

    chrome.fill("password", NEW_PASSWORD).await;
    chrome.fill("password_confirm", NEW_PASSWORD).await;
    chrome.press("Set the new password").await;
    chrome.wait_for_path("/login").await;
    assert!(chrome.flash().await.contains("password was changed"), "{}", chrome.flash().await);
    chrome.fill("email", email).await;
    chrome.fill("password", NEW_PASSWORD).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, email);

    chrome.open_url(&link).await;
    assert!(chrome.text("h1").await.contains("used or has expired"));
    chrome.check_page("reset-link-used").await;

    chrome.finish().await;
}

/// With approval required: a confirmed sign-up waits; an administrator
/// approves it from the admin pages; then the user signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_approves_a_waiting_user() {
    let Some(tools) = tools() else { return };
    let app = spawn_app_with(Backend::Sqlite, &[("--require-admin-approval", "true")]).await;
    let chrome = Chrome::start(tools, &app.address).await;
    let user = "ada@example.com";
    app.register_verified(user).await;
    let created = app.create_admin_command("root@example.com", PASSWORD);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    sign_in(&chrome, user, PASSWORD).await;
    assert_eq!(chrome.text("h1").await, "Awaiting approval");
    chrome.check_page("awaiting-approval").await;

    sign_in(&chrome, "root@example.com", PASSWORD).await;
    chrome.wait_for_path("/account").await;
    chrome.follow("Administration").await;
    chrome.wait_for_path("/admin").await;
    chrome.check_page("admin").await;
    chrome.press(&format!("Approve {user}")).await;
    chrome.wait_for_path("/admin").await;
    assert!(chrome.flash().await.contains("was approved"), "{}", chrome.flash().await);
    chrome.follow("Users").await;
    chrome.wait_for_path("/admin/users").await;
    chrome.check_page("admin-users").await;
    chrome.follow(user).await;
    chrome.check_page("admin-user").await;
    chrome.follow("Events").await;
    chrome.wait_for_path("/admin/events").await;
    chrome.check_page("admin-events").await;
    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;

    sign_in(&chrome, user, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, user);
    assert!(app.mail.wait_for(user, 2).await.subject.contains("approved"));

    chrome.finish().await;
}

async fn sign_in(chrome: &Chrome, email: &str, password: &str) {
    chrome.open("/login").await;
    chrome.fill("email", email).await;
    chrome.fill("password", password).await;
    chrome.press("Sign in").await;
}

/// On the account page: end the other session, change the password with
/// the served form (its hidden username field for password managers
/// included), sign out, and sign in with the new password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_other_sessions_and_change_the_password() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "edsger@example.com";
    app.register_verified(email).await;
    let (phone, other) = (app.browser(), app.browser());
    app.sign_in(&phone, email, PASSWORD).await.assert_redirects_to("/account");
    app.sign_in(&other, email, PASSWORD).await.assert_redirects_to("/account");

    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    assert!(chrome.text("#sessions li").await.contains("this browser"), "this browser first");
    // One session ends on its own (each row has its button; this one none).
    assert_eq!(chrome.count("#sessions li form").await, 2);
    chrome.press("Sign out an unknown browser from 127.0.0.1").await;
    assert_eq!(chrome.flash().await, "That session was signed out.");
    assert_eq!(chrome.count("#sessions li").await, 2);
    let ended = [phone.get("/account").await.status, other.get("/account").await.status];
    assert_eq!(ended.iter().filter(|status| **status == reqwest::StatusCode::SEE_OTHER).count(), 1);

    // Past USHER_REAUTH_TTL the password is asked for again, then the action is one press away.
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    chrome.press("Sign out all other sessions").await;
    chrome.wait_for_path("/account/reauth").await;
    chrome.check_page("reauth").await;
    chrome.fill("password", PASSWORD).await;
    chrome.press("Continue").await;
    chrome.wait_for_path("/account").await;
    chrome.press("Sign out all other sessions").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.flash().await, "Signed out 1 other session.");
    for browser in [&phone, &other] {
        assert_eq!(browser.get("/account").await.status, reqwest::StatusCode::SEE_OTHER, "every other session ended");
    }
    assert_eq!(chrome.count("#sessions li form").await, 0, "no session left to sign out");

    chrome.fill("current_password", PASSWORD).await;
    chrome.fill("password", NEW_PASSWORD).await;
    chrome.fill("password_confirm", NEW_PASSWORD).await;
    chrome.press("Change password").await;
    chrome.wait_for_path("/account").await;
    assert!(chrome.flash().await.contains("Your password was changed"), "{}", chrome.flash().await);
    chrome.check_page("account-password-changed").await;

    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;
    sign_in(&chrome, email, NEW_PASSWORD).await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, email);

    chrome.finish().await;
}

/// An administrator rejects a waiting sign-up, then disables a user (whose
/// session ends at once) and enables them again, from the admin pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_rejects_disables_and_enables_users() {
    let Some(tools) = tools() else { return };
    let app = spawn_app_with(Backend::Sqlite, &[("--require-admin-approval", "true")]).await;
    let chrome = Chrome::start(tools, &app.address).await;
    // A long address: headings, the table and the confirmation pages must still fit 360 px.
    let (waiting, member) = ("mallory@example.com", "bartholomew.longaddress-for-layout@accounts.example.com");
    app.register_verified(waiting).await;
    let created = app.create_admin_command(member, PASSWORD);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created = app.create_admin_command("root@example.com", PASSWORD);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let bob = app.browser();
    app.sign_in(&bob, member, PASSWORD).await.assert_redirects_to("/account");

    sign_in(&chrome, "root@example.com", PASSWORD).await;
    chrome.open("/admin").await;
    // Destructive actions ask first, naming what they will do.
    chrome.follow_link_to(&format!("/admin/users/{}/reject", app.user_id(waiting))).await;
    assert!(chrome.text("#consequences").await.contains("email the person"), "{}", chrome.text("main").await);
    chrome.check_page("admin-confirm-reject").await;
    chrome.press(&format!("Reject {waiting}")).await;
    chrome.wait_for_path("/admin").await;
    assert_eq!(chrome.flash().await, format!("{waiting} was rejected."));
    assert_eq!(chrome.flash_kind().await, ("flash flash-success".to_owned(), "status".to_owned()));
    assert!(app.mail.wait_for(waiting, 2).await.subject.contains("not approved"));

    chrome.follow("Users").await;
    chrome.wait_for_path("/admin/users").await;
    chrome.follow(member).await;
    chrome.follow_link_to(&format!("/admin/users/{}/disable", app.user_id(member))).await;
    assert!(chrome.text("#consequences").await.contains("end every session"));
    chrome.check_page("admin-confirm-disable").await;
    chrome.press(&format!("Disable {member}")).await;
    assert_eq!(chrome.flash().await, format!("{member} was disabled."));
    chrome.check_page("admin-user-disabled").await;
    assert_eq!(bob.get("/account").await.status, reqwest::StatusCode::SEE_OTHER, "his session ended");

    // The list filtered by state: only the disabled account, in a table
    // that reads at desktop and phone widths.
    chrome.follow("Users").await;
    chrome.follow("Disabled").await;
    chrome.wait_for_path("/admin/users").await;
    assert_eq!(chrome.count("#users tbody tr").await, 1);
    assert_eq!(chrome.text("#users tbody tr td").await, member);
    chrome.check_page("admin-users-disabled").await;
    chrome.follow(member).await;

    chrome.press(&format!("Enable {member}")).await;
    assert_eq!(chrome.flash().await, format!("{member} was enabled."));

    // Nothing destructive is offered on one's own account, and a typed URL is refused as an error.
    chrome.follow("Users").await;
    chrome.follow("root@example.com").await;
    let own = app.user_id("root@example.com");
    assert_eq!(chrome.count(&format!("a[href^='/admin/users/{own}/disable']")).await, 0);
    chrome.open(&format!("/admin/users/{own}/disable?back=%2Fadmin%2Fusers%2F{own}")).await;
    assert_eq!(
        chrome.flash().await,
        "You cannot reject, disable or delete your own account here. To delete it, use your account page."
    );
    assert_eq!(chrome.flash_kind().await, ("flash flash-error".to_owned(), "alert".to_owned()));
    chrome.check_page("admin-refused").await;
    app.sign_in(&app.browser(), member, PASSWORD).await.assert_redirects_to("/account");

    // Deleting asks first too, and leaves a numbered tombstone.
    chrome.follow("Users").await;
    chrome.follow(member).await;
    let bob_id = app.user_id(member);
    chrome.follow_link_to(&format!("/admin/users/{bob_id}/delete")).await;
    assert!(chrome.text("#consequences").await.contains("cannot be undone"));
    chrome.check_page("admin-confirm-delete").await;
    chrome.press(&format!("Delete {member}")).await;
    assert_eq!(chrome.flash().await, format!("{member} was deleted."));
    assert_eq!(chrome.text("h1").await, format!("deleted account #{bob_id}"));
    chrome.check_page("admin-user-deleted").await;
    assert!(app.mail.wait_for_subject(member, "account was deleted").await.text.contains("An administrator"));
    assert_eq!(app.sign_in(&app.browser(), member, PASSWORD).await.status, reqwest::StatusCode::UNAUTHORIZED);

    chrome.finish().await;
}

/// Download the account's data, then delete the account: the password is
/// asked for again, a mistyped address is refused in plain words, and the
/// address can sign up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_the_data_then_delete_the_account() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "barbara@example.com";
    app.register_verified(email).await;
    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    app.clock.advance(std::time::Duration::from_secs(11 * 60));

    // Past USHER_REAUTH_TTL the download asks for the password first, then
    // lands on its page (a download would leave the password form showing).
    chrome.follow("Download your data").await;
    chrome.wait_for_path("/account/reauth").await;
    chrome.fill("password", PASSWORD).await;
    chrome.press("Continue").await;
    chrome.wait_for_path("/account/export").await;
    chrome.check_page("export").await;
    let (status, disposition, body) = chrome.download("/account/export").await;
    assert_eq!((status, disposition.starts_with("attachment")), (200, true));
    assert!(body.contains(&format!("\"email\": \"{email}\"")), "{body}");

    chrome.follow("Back to your account").await;
    chrome.follow("Delete your account").await;
    chrome.wait_for_path("/account/delete").await;
    chrome.check_page("delete-account").await;

    chrome.fill("confirm", "barbra@example.com").await;
    chrome.press("Delete my account").await;
    let error = chrome.text("#confirm-error").await;
    assert!(error.ends_with("That is not your account's address. Type it exactly as shown above."), "{error}");
    chrome.check_page("delete-account-mistyped").await;
    chrome.fill("confirm", email).await;
    chrome.press("Delete my account").await;
    chrome.wait_for_path("/").await;
    assert_eq!(chrome.flash().await, format!("Your account was deleted. A last email went to {email}."));
    assert!(app.mail.wait_for_subject(email, "account was deleted").await.text.contains("password was typed again"));

    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/login").await;
    assert!(chrome.text("#email-error").await.contains("Invalid email or password."), "{}", chrome.text("main").await);
    chrome.open("/register").await;
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.fill("password_confirm", PASSWORD).await;
    chrome.press("Create account").await;
    chrome.wait_for_path("/verify").await;

    chrome.finish().await;
}

/// Too many wrong passwords: the page says how long to wait and offers a
/// way out (a reset link), in the site's own font.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_out_sign_in_offers_a_way_out() {
    let Some(tools) = tools() else { return };
    let app = spawn_app_with(Backend::Sqlite, &[("--limit-sign-in-per-address", "2/15m")]).await;
    let chrome = Chrome::start(tools, &app.address).await;
    let email = "barbara@example.com";
    app.register_verified(email).await;

    sign_in(&chrome, email, "not the password at all").await;
    assert_eq!(chrome.font_family("button").await, chrome.font_family("body").await, "buttons in the page's font");
    for _ in 0..2 {
        sign_in(&chrome, email, "not the password at all").await;
    }

    assert_eq!(chrome.text("h1").await, "Too many attempts");
    assert!(chrome.text("main").await.contains("Try again in"), "{}", chrome.text("main").await);
    chrome.check_page("sign-in-rate-limited").await;
    chrome.follow("Forgot your password?").await;
    chrome.wait_for_path("/password/forgot").await;

    chrome.finish().await;
}

/// A person changes their address: the form after "confirm it's you", the
/// link in the mail to the new address (a page with a button), the account
/// page after, the data download; then the old address's undo link gives
/// it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_the_email_address_and_undo_it() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let (old, new) = ("grace@example.com", "grace@new.example");
    app.register_verified(old).await;

    sign_in(&chrome, old, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    chrome.follow("Change").await;
    chrome.wait_for_path("/account/email").await;
    chrome.check_page("email-change").await;
    chrome.fill("email", new).await;
    chrome.press("Send the confirmation link").await;
    chrome.wait_for_path("/account").await;
    assert!(chrome.flash().await.starts_with(&format!("We sent a link to {new}.")), "{}", chrome.flash().await);
    assert_eq!(chrome.text("#account-email").await, old, "unchanged until the link is used");
    chrome.check_page("account-email-pending").await;

    let mail = app.mail.wait_for(new, 1).await;
    chrome.open_url(&link_in(&mail.text, "/account/email/confirm?token=")).await;
    chrome.check_page("email-change-confirm").await;
    chrome.press("Confirm my new address").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.flash().await, format!("Your address is now {new}."));
    assert_eq!(chrome.text("#account-email").await, new);

    // The account's data, downloaded from its page (a recent password: no question).
    chrome.follow("Download your data").await;
    chrome.wait_for_path("/account/export").await;
    let (status, disposition, body) = chrome.download("/account/export").await;
    assert_eq!(status, 200);
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(body.contains(&format!("\"email\": \"{new}\"")), "{body}");

    let undo = app.mail.wait_for(old, 3).await;
    chrome.open_url(&link_in(&undo.text, "/account/email/revert?token=")).await;
    chrome.check_page("email-change-revert").await;
    chrome.press("Undo the change").await;
    chrome.wait_for_path("/login").await;
    assert!(chrome.flash().await.contains(&format!("address is {old} again")), "{}", chrome.flash().await);
    sign_in(&chrome, old, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, old);

    chrome.finish().await;
}

/// Turn two-step sign-in on by reading the key from the page (as someone
/// typing it into an app would), keep the recovery codes, sign out, and
/// sign in again with a code; then a recovery code says how many are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_up_two_step_sign_in_then_sign_in_with_a_code() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let email = "grace@example.com";
    app.register_verified(email).await;
    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/account").await;
    chrome.follow("Set up two-step sign-in").await;
    chrome.wait_for_path("/account/two-factor").await;
    chrome.check_page("two-factor-off").await;
    chrome.press("Set up an authenticator app").await;
    chrome.wait_for_path("/account/two-factor").await;
    assert_eq!(chrome.count(".qr-code svg").await, 1);
    chrome.check_page("two-factor-setup").await;

    let key = chrome.text("#totp-secret").await.replace(' ', "");
    let secret = totp_rs::Secret::try_from_base32(&key).expect("a base32 key");
    let authenticator = totp_rs::Builder::new().with_secret(secret).build().expect("an RFC 6238 key");
    let code_now = |app: &TestApp| {
        // A second into a fresh 30-second step: no step ends while the code is typed.
        let into = app.clock.now().rem_euclid(30);
        app.clock.advance(std::time::Duration::from_secs((30 - into + 1) as u64));
        authenticator.generate(app.clock.now() as u64).to_string()
    };
    chrome.fill("code", "000000").await;
    chrome.press("Turn on").await;
    assert!(chrome.text("#code-error").await.contains("That code is not right"));
    chrome.fill("code", &code_now(&app)).await;
    chrome.press("Turn on").await;
    assert_eq!(chrome.count("#recovery-codes li").await, 10);
    chrome.check_page("recovery-codes").await;
    let recovery = chrome.text("#recovery-codes li").await;

    chrome.follow("I have saved them: back to your account").await;
    chrome.wait_for_path("/account").await;
    assert!(chrome.text("#two-factor-summary").await.starts_with("On:"));
    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;

    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/login/two-factor").await;
    chrome.check_page("sign-in-code").await;
    chrome.fill("code", &code_now(&app)).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, email);

    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;
    sign_in(&chrome, email, PASSWORD).await;
    chrome.wait_for_path("/login/two-factor").await;
    chrome.fill("code", recovery.trim()).await;
    chrome.press("Sign in").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.flash().await, "You signed in with a recovery code. 9 recovery codes are left.");

    chrome.finish().await;
}

/// A wiki behind real nginx, then real Caddy, guarded by Usher: Chromium
/// opens a page of it, lands on Usher's sign-in page, signs in, and
/// arrives back at the page it asked for (through the continue page, which
/// the CSP's `form-action 'self'` makes necessary), served with its
/// identity. A page for administrators only shows Usher's 403 page, styled
/// by Usher's stylesheet from Usher's host. Signing out ends access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_app_sends_people_to_sign_in_and_back() {
    const RULES: &str = r#"
[[rule]]
host = "wiki.usher.localhost"
path = "/admin"
policy = "groups"
groups = ["admins"]

[[rule]]
host = "wiki.usher.localhost"
policy = "signed_in"
"#;
    let Some(tools) = tools() else { return };
    let app = spawn_guarding_app(Backend::Sqlite, RULES, &[]).await;
    let usher_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let email = "barbara@example.com";
    app.register_verified(email).await;
    let upstream = Upstream::start().await;
    let chrome = Chrome::start(tools, &app.address).await;
    for kind in [ProxyKind::Nginx, ProxyKind::Caddy] {
        let Some(proxy) = Proxy::start(kind, usher_port, upstream.port) else { return };
        chrome.open_url(&proxy.url("/docs/page?x=1")).await;
        chrome.wait_for_path("/login").await;
        assert_eq!(chrome.current_url().await.host_str(), Some("auth.usher.localhost"), "{kind:?}");
        chrome.check_page("sign-in-for-a-guarded-app").await;
        chrome.fill("email", email).await;
        chrome.fill("password", PASSWORD).await;
        chrome.press("Sign in").await;
        chrome.wait_for_path("/docs/page").await;
        let arrived = chrome.current_url().await;
        assert_eq!((arrived.host_str(), arrived.query()), (Some("wiki.usher.localhost"), Some("x=1")), "{kind:?}");
        let served = chrome.text("body").await;
        let id = app.user_id(email).to_string();
        assert!(served.contains(&format!("[\"remote-user\",\"{id}\"]")), "{kind:?}: the app saw {served}");

        chrome.open_url(&proxy.url("/admin/settings")).await;
        chrome.wait_for_path("/admin/settings").await;
        assert_eq!(chrome.text("h1").await, "No access");
        let styled = chrome.font_family("body").await;
        assert!(styled.contains("system-ui"), "{kind:?}: Usher's stylesheet applies on the app's host: {styled}");

        chrome.follow("Go to your account").await;
        chrome.wait_for_path("/account").await;
        chrome.press("Sign out").await;
        chrome.wait_for_path("/").await;
        chrome.open_url(&proxy.url("/docs/page?x=1")).await;
        chrome.wait_for_path("/login").await;
    }
    chrome.finish().await;
}

/// An administrator invites an address into a group from the admin pages;
/// the invited person opens the emailed link, sets a password and lands
/// signed in on their account page. The link then says it was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_accepts_from_the_emailed_link() {
    let Some((app, chrome)) = app_and_browser().await else { return };
    let invited = "grace@example.com";
    let created = app.create_admin_command("root@example.com", PASSWORD);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    sign_in(&chrome, "root@example.com", PASSWORD).await;
    chrome.wait_for_path("/account").await;
    chrome.open("/admin/groups").await;
    chrome.fill("name", "staff").await;
    chrome.press("Create group").await;
    chrome.wait_for_path("/admin/groups").await;
    chrome.follow("Invitations").await;
    chrome.wait_for_path("/admin/invitations").await;
    chrome.check_page("admin-invitations-empty").await;
    chrome.fill("email", invited).await;
    let staff = chrome.client.find(Locator::Css("input[name=groups][value=staff]")).await.expect("the staff box");
    staff.click().await.expect("tick staff");
    chrome.press("Send the invitation").await;
    chrome.wait_for_path("/admin/invitations").await;
    assert!(chrome.flash().await.contains("was invited"), "{}", chrome.flash().await);
    assert!(chrome.text("#invitations").await.contains("pending"));
    chrome.check_page("admin-invitations").await;
    chrome.press("Sign out").await;
    chrome.wait_for_path("/").await;

    let mail = app.mail.wait_for(invited, 1).await;
    let link = link_in(&mail.text, "/invite?token=");
    chrome.screenshot_email("email-invitation", &mail.html).await;
    chrome.open_url(&link).await;
    assert_eq!(chrome.text("#email").await, invited);
    chrome.check_page("invite").await;
    chrome.fill("password", PASSWORD).await;
    chrome.fill("password_confirm", "not the same password").await;
    chrome.press("Create my account").await;
    chrome.wait_for_path("/invite").await;
    assert!(chrome.text("#password_confirm-error").await.contains("do not match"));
    assert_eq!(chrome.focused_class().await, "error-summary");
    chrome.check_page("invite-errors").await;
    chrome.fill("password", PASSWORD).await;
    chrome.fill("password_confirm", PASSWORD).await;
    chrome.press("Create my account").await;
    chrome.wait_for_path("/account").await;
    assert_eq!(chrome.text("#account-email").await, invited);

    chrome.open_url(&link).await;
    assert!(chrome.text("h1").await.contains("used already"));
    chrome.check_page("invite-used").await;

    chrome.finish().await;
}
