//! Forward authentication, asked as a proxy asks: `/auth/forward` with the
//! `X-Forwarded-*` headers Caddy and Traefik send, `/auth/request` with
//! nginx's `X-Original-URL`, each with the cookies a browser sends to the
//! guarded app's host (`wiki.usher.localhost`). `proxies.rs` puts real
//! nginx and Caddy in front.

use reqwest::StatusCode;

use crate::helpers::{
    Backend, Browser, GUARD_HOSTS, PASSWORD, Page, TestApp, spawn_app, spawn_app_with, spawn_guarding_app,
};
use crate::on_both_backends;

on_both_backends!(
    forward_authentication_is_off_without_a_rules_file,
    only_trusted_proxies_are_answered,
    a_visitor_not_signed_in_is_sent_to_sign_in_and_comes_back_signed_in,
    the_forward_auth_cookie_is_for_the_domain_and_opens_no_usher_page,
    signing_out_a_new_password_elsewhere_disabling_or_timing_out_ends_access,
    a_groups_rule_lets_only_its_members_in_and_says_why_not,
    path_tricks_cannot_walk_around_a_prefix_rule,
    bypass_and_unmatched_requests_need_no_sign_in_and_no_rule_means_deny,
    rd_leads_only_to_guarded_apps,
    a_pending_second_factor_is_not_signed_in,
    a_session_signed_in_before_gets_a_forward_cookie_on_the_way_back,
    check_rules_explains_which_rule_decides,
    an_unverified_account_signed_in_where_usher_allows_it_is_refused_not_looped,
    signing_up_from_a_guarded_app_leads_back_to_it_after_the_emailed_link,
);

const RULES: &str = r#"
[[rule]]
host = "wiki.usher.localhost"
path = "/public"
policy = "bypass"

[[rule]]
host = "wiki.usher.localhost"
path = "/admin"
policy = "groups"
groups = ["admins"]

[[rule]]
host = "wiki.usher.localhost"
path = "/staff"
policy = "groups"
groups = ["staff", "ops"]

[[rule]]
host = "*.usher.localhost"
policy = "signed_in"

[[rule]]
host = "closed.example.com"
policy = "bypass"
"#;

const WIKI: &str = "http://wiki.usher.localhost";

fn port(app: &TestApp) -> &str {
    app.address.rsplit(':').next().unwrap()
}

/// Asks `/auth/forward` about `method` `url` as Caddy would, with the
/// cookies `browser` holds for the app's host and `extra` headers.
async fn ask_forward(app: &TestApp, browser: &Browser, method: &str, url: &str, extra: &[(&str, &str)]) -> Page {
    let parsed = url::Url::parse(url).unwrap();
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap()),
        None => parsed.host_str().unwrap().to_owned(),
    };
    // The app's own path, as sent: `url` would resolve dot segments.
    let uri = url.splitn(4, '/').nth(3).map_or("/".to_owned(), |rest| format!("/{rest}"));
    let endpoint = format!("http://{}:{}/auth/forward", cookie_host(&parsed), port(app));
    let mut headers = vec![
        ("x-forwarded-method", method),
        ("x-forwarded-proto", parsed.scheme()),
        ("x-forwarded-host", host.as_str()),
        ("x-forwarded-uri", uri.as_str()),
    ];
    headers.extend_from_slice(extra);
    browser.get_url(&endpoint, &headers).await
}

/// Asks `/auth/request` about a GET of `url` as nginx would.
async fn ask_nginx(app: &TestApp, browser: &Browser, url: &str) -> Page {
    let endpoint = format!("http://{}:{}/auth/request", cookie_host(&url::Url::parse(url).unwrap()), port(app));
    browser.get_url(&endpoint, &[("x-original-url", url), ("x-original-method", "GET")]).await
}

/// The test host whose cookies a browser would send with a request for
/// `url`: its own, or for a host outside the test domain, one that gets
/// only the domain's cookies.
fn cookie_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap().trim_end_matches('.').to_ascii_lowercase();
    if GUARD_HOSTS.contains(&host.as_str()) { host } else { "other.usher.localhost".to_owned() }
}

fn header(page: &Page, name: &str) -> Option<String> {
    page.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// Signs `email` (a new verified account) in at Usher in a new browser.
async fn signed_in(app: &TestApp, email: &str) -> Browser {
    app.register_verified(email).await;
    let browser = app.browser();
    app.sign_in(&browser, email, PASSWORD).await.assert_redirects_to("/account");
    browser
}

fn sign_in_url(app: &TestApp, rd: &str) -> String {
    format!("{}/login?{}", app.address, serde_urlencoded::to_string([("rd", rd)]).unwrap())
}

async fn forward_authentication_is_off_without_a_rules_file(backend: Backend) {
    let app = spawn_app_with(backend, &[("--trusted-proxies", "127.0.0.1")]).await;
    let browser = app.browser();
    for endpoint in ["/auth/forward", "/auth/request"] {
        assert_eq!(browser.get(endpoint).await.status, StatusCode::NOT_FOUND, "{endpoint}");
    }
    // Nor is a forward-auth cookie set at sign-in.
    app.register_verified("ann@example.com").await;
    let page = app.sign_in(&browser, "ann@example.com", PASSWORD).await;
    assert_eq!(page.set_cookie("usher_forward"), None);
}

async fn only_trusted_proxies_are_answered(backend: Backend) {
    let app = spawn_guarding_app(backend.clone(), RULES, &[("--trusted-proxies", "10.0.0.0/8,192.168.1.1")]).await;
    let browser = app.browser();
    let page = ask_forward(&app, &browser, "GET", &format!("{WIKI}/public/a"), &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("USHER_TRUSTED_PROXIES"), "{}", page.body);
    assert_eq!(ask_nginx(&app, &browser, &format!("{WIKI}/public/a")).await.status, StatusCode::FORBIDDEN);

    // A range holding the peer is trusted.
    let app = spawn_guarding_app(backend, RULES, &[("--trusted-proxies", "10.0.0.0/8,127.0.0.0/8")]).await;
    let page = ask_forward(&app, &app.browser(), "GET", &format!("{WIKI}/public/a"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
}

async fn a_visitor_not_signed_in_is_sent_to_sign_in_and_comes_back_signed_in(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let page_url = format!("{WIKI}:8443/docs/page?x=1&y=%C3%A9");

    let asked = ask_forward(&app, &browser, "GET", &page_url, &[]).await;
    assert_eq!(asked.status, StatusCode::FOUND);
    assert_eq!(asked.location(), Some(sign_in_url(&app, &page_url).as_str()));
    // A form posted to the app becomes a GET of the sign-in page.
    let posted = ask_forward(&app, &browser, "POST", &page_url, &[]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    // A script asking for JSON cannot follow a redirect: 401.
    for json in [("accept", "application/json"), ("x-requested-with", "XMLHttpRequest")] {
        assert_eq!(ask_forward(&app, &browser, "GET", &page_url, &[json]).await.status, StatusCode::UNAUTHORIZED);
    }
    // nginx gets 401 and the way in as Location.
    let nginx = ask_nginx(&app, &browser, &page_url).await;
    assert_eq!(nginx.status, StatusCode::UNAUTHORIZED);
    assert_eq!(nginx.location(), Some(sign_in_url(&app, &page_url).as_str()));
    assert_eq!(header(&nginx, "remote-user"), None);

    // The browser follows the redirect, signs in with the real form, and
    // is led on to the page it asked for.
    let login = browser.get_url(asked.location().unwrap(), &[]).await;
    assert_eq!(login.status, StatusCode::OK);
    let signed = browser.submit_form(&login, "/login", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let continue_at = signed.location().unwrap().to_owned();
    assert!(continue_at.starts_with("/login/continue?rd="), "{continue_at}");
    let forward_cookie = signed.set_cookie("usher_forward").expect("a forward-auth cookie");
    assert!(forward_cookie.contains("Domain=usher.localhost"), "{forward_cookie}");
    let onward = browser.get(&continue_at).await;
    assert_eq!(onward.status, StatusCode::OK);
    assert_eq!(onward.attrs("main a", "href"), std::slice::from_ref(&page_url));
    assert_eq!(onward.attrs("meta[http-equiv=refresh]", "content"), [format!("0; url={page_url}")]);

    let allowed = ask_forward(&app, &browser, "GET", &page_url, &[]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    let id = app.user_id("ann@example.com").to_string();
    assert_eq!(header(&allowed, "remote-user"), Some(id.clone()));
    assert_eq!(header(&allowed, "remote-email").as_deref(), Some("ann@example.com"));
    assert_eq!(header(&allowed, "remote-groups").as_deref(), Some(""));
    let nginx = ask_nginx(&app, &browser, &page_url).await;
    assert_eq!((nginx.status, header(&nginx, "remote-user")), (StatusCode::OK, Some(id)));
}

async fn the_forward_auth_cookie_is_for_the_domain_and_opens_no_usher_page(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let page = app.sign_in(&browser, "ann@example.com", PASSWORD).await;
    let cookie = page.set_cookie("usher_forward").expect("a forward-auth cookie");
    for attribute in ["Domain=usher.localhost", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    // Usher's session cookie stays on Usher's host.
    assert!(!page.set_cookie("usher_session").unwrap().contains("Domain"), "the session cookie is host-only");

    // The forward-auth id alone is worth nothing on Usher's pages.
    let value = cookie.split(';').next().unwrap().trim_start_matches("usher_forward=").to_owned();
    let thief = app.browser();
    thief.set_cookie("usher_forward", &value);
    assert_eq!(thief.get("/account").await.status, StatusCode::SEE_OTHER);
    // And Usher's session cookie is worth nothing to a guarded app.
    let session = browser.cookie("usher_session").unwrap();
    let app_side = Browser::new(WIKI);
    app_side.set_cookie("usher_session", &session);
    let asked = ask_forward(&app, &app_side, "GET", &format!("{WIKI}/"), &[]).await;
    assert_eq!(asked.status, StatusCode::FOUND);

    // Only a hash of the id is stored.
    let dump = app.dump_all_tables();
    assert!(!dump.contains(&value), "the forward-auth id is stored in clear");
}

async fn signing_out_a_new_password_elsewhere_disabling_or_timing_out_ends_access(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let wiki = format!("{WIKI}/page");
    let allowed = |page: Page| page.status == StatusCode::OK;

    // Signing out.
    let ann = signed_in(&app, "ann@example.com").await;
    assert!(allowed(ask_forward(&app, &ann, "GET", &wiki, &[]).await));
    let signed_out = ann.submit("/account", "/logout", &[]).await;
    assert!(signed_out.set_cookie("usher_forward").is_some_and(|c| c.contains("Max-Age=0")), "the cookie goes");
    let ann_old = signed_in(&app, "ann2@example.com").await;
    let old_value = ann_old.cookie("usher_forward").unwrap();
    ann_old.submit("/account", "/logout", &[]).await;
    let replay = Browser::new(WIKI);
    replay.set_cookie("usher_forward", &old_value);
    assert_eq!(ask_forward(&app, &replay, "GET", &wiki, &[]).await.status, StatusCode::FOUND, "a kept copy is dead");

    // A new password set in another browser ends this one's access.
    let bob = signed_in(&app, "bob@example.com").await;
    let bob_elsewhere = app.browser();
    app.sign_in(&bob_elsewhere, "bob@example.com", PASSWORD).await;
    let new = "a brand new passphrase 77";
    let fields = [("current_password", PASSWORD), ("password", new), ("password_confirm", new)];
    bob_elsewhere.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");
    assert_eq!(ask_forward(&app, &bob, "GET", &wiki, &[]).await.status, StatusCode::FOUND);
    // The changing browser keeps its session but not its forward-auth id:
    // a copy of that cookie may be what someone else holds.
    let copied = Browser::new(WIKI);
    copied.set_cookie("usher_forward", &bob_elsewhere.cookie("usher_forward").unwrap());
    let fields = [("current_password", new), ("password", PASSWORD), ("password_confirm", PASSWORD)];
    bob_elsewhere.submit("/account", "/account/password", &fields).await.assert_redirects_to("/account");
    assert_eq!(ask_forward(&app, &copied, "GET", &wiki, &[]).await.status, StatusCode::FOUND, "the copy is dead");
    let asked = ask_forward(&app, &bob_elsewhere, "GET", &wiki, &[]).await;
    let back = bob_elsewhere.get_url(asked.location().unwrap(), &[]).await;
    assert_eq!(back.location(), Some(wiki.as_str()), "straight back, no sign-in form");
    assert!(allowed(ask_forward(&app, &bob_elsewhere, "GET", &wiki, &[]).await), "with a new one");
    // "Sign out other sessions" ends other copies the same way.
    let copied = Browser::new(WIKI);
    copied.set_cookie("usher_forward", &bob_elsewhere.cookie("usher_forward").unwrap());
    assert!(allowed(ask_forward(&app, &copied, "GET", &wiki, &[]).await));
    app.sign_in(&app.browser(), "bob@example.com", PASSWORD).await.assert_redirects_to("/account");
    let ended = bob_elsewhere.submit("/account", "/account/sessions/revoke-others", &[]).await;
    ended.assert_redirects_to("/account");
    assert_eq!(ask_forward(&app, &copied, "GET", &wiki, &[]).await.status, StatusCode::FOUND);

    // An administrator disabling the account: refused on the very next request.
    let cy = signed_in(&app, "cy@example.com").await;
    assert!(allowed(ask_forward(&app, &cy, "GET", &wiki, &[]).await));
    let admin = app.signed_in_admin("root@example.com").await;
    let id = app.user_id("cy@example.com");
    let confirm = admin.get(&format!("/admin/users/{id}/disable")).await;
    admin.submit_form(&confirm, &format!("/admin/users/{id}/disable"), &[]).await;
    assert_eq!(ask_forward(&app, &cy, "GET", &wiki, &[]).await.status, StatusCode::FOUND);

    // The idle timeout; a guarded app's requests count as use, as pages do.
    let dee = signed_in(&app, "dee@example.com").await;
    app.clock.advance(std::time::Duration::from_secs(20 * 60));
    assert!(allowed(ask_forward(&app, &dee, "GET", &wiki, &[]).await), "20 minutes idle of 30");
    app.clock.advance(std::time::Duration::from_secs(20 * 60));
    assert!(allowed(ask_forward(&app, &dee, "GET", &wiki, &[]).await), "the wiki's request slid the timeout");
    app.clock.advance(std::time::Duration::from_secs(31 * 60));
    assert_eq!(ask_forward(&app, &dee, "GET", &wiki, &[]).await.status, StatusCode::FOUND);
}

async fn a_groups_rule_lets_only_its_members_in_and_says_why_not(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let admin_page = format!("{WIKI}/admin/settings");
    let ann = signed_in(&app, "ann@example.com").await;
    let refused = ask_forward(&app, &ann, "GET", &admin_page, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "remote-user"), None);
    assert!(refused.texts("main p")[0].contains("only for members of admins"), "{}", refused.body);
    // Shown on the app's host: Usher's assets by absolute URL, allowed by its CSP.
    assert_eq!(refused.attrs("link[rel=stylesheet]", "href"), [format!("{}/static/usher.css", app.address)]);
    let csp = header(&refused, "content-security-policy").unwrap();
    assert!(csp.contains(&format!("style-src {}", app.address)), "{csp}");
    assert_eq!(refused.set_cookie("usher_csrf"), None, "no Usher cookie on the app's host");
    let nginx = ask_nginx(&app, &ann, &admin_page).await;
    assert_eq!(nginx.status, StatusCode::FORBIDDEN);

    let root = app.signed_in_admin("root@example.com").await;
    let allowed = ask_forward(&app, &root, "GET", &admin_page, &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(header(&allowed, "remote-groups").as_deref(), Some("admins"));
    // A proxy asking about a compressed POST to the app copies its headers, not its body.
    let compressed_post = ask_forward(&app, &root, "POST", &admin_page, &[("content-encoding", "gzip")]).await;
    assert_eq!(compressed_post.status, StatusCode::OK);

    // Groups an administrator manages: in on the next request, out on the one after.
    let staff_page = format!("{WIKI}/staff/rota");
    assert_eq!(ask_forward(&app, &ann, "GET", &staff_page, &[]).await.status, StatusCode::FORBIDDEN);
    for name in ["staff", "wiki-editors"] {
        root.submit("/admin/groups", "/admin/groups", &[("name", name)]).await.assert_redirects_to("/admin/groups");
    }
    let id = app.user_id("ann@example.com");
    let user_page = format!("/admin/users/{id}");
    for name in ["wiki-editors", "staff"] {
        let added = root.submit(&user_page, &format!("/admin/users/{id}/groups"), &[("group", name)]).await;
        added.assert_redirects_to(&user_page);
    }
    let allowed = ask_forward(&app, &ann, "GET", &staff_page, &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(header(&allowed, "remote-groups").as_deref(), Some("staff,wiki-editors"));
    root.submit(&user_page, &format!("/admin/users/{id}/groups/staff/remove"), &[]).await;
    assert_eq!(ask_forward(&app, &ann, "GET", &staff_page, &[]).await.status, StatusCode::FORBIDDEN);
}

async fn path_tricks_cannot_walk_around_a_prefix_rule(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let ann = signed_in(&app, "ann@example.com").await;
    for trick in ["/admin", "/admin/", "/x/../admin", "//admin", "/./admin", "/%61dmin/x", "/public/../admin"] {
        let page = ask_forward(&app, &ann, "GET", &format!("{WIKI}{trick}"), &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{trick}");
        let nginx = ask_nginx(&app, &ann, &format!("{WIKI}{trick}")).await;
        assert_eq!(nginx.status, StatusCode::FORBIDDEN, "nginx {trick}");
    }
    // Encodings an app may read either way are refused, not guessed.
    for ambiguous in ["/admin%2Fx", "/x%2F..%2Fadmin", "/%2e%2e/admin", "/admin%5Cx", "/a%252Fb", "/a%00"] {
        let page = ask_forward(&app, &ann, "GET", &format!("{WIKI}{ambiguous}"), &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{ambiguous}");
        assert!(page.body.contains("cannot be checked"), "{}", page.body);
    }
    // Dot segments: both readings must fall under one rule, and an empty
    // segment counts (`/admin//..` is `/admin`, as browsers resolve it).
    let anonymous = Browser::new(WIKI);
    let out_of_admin = ask_forward(&app, &anonymous, "GET", &format!("{WIKI}/admin//../public/x"), &[]).await;
    assert_eq!(out_of_admin.status, StatusCode::FOUND, "not the bypass rule: sign in first");
    for split in ["/staff/../public/x", "/public/..;/admin", "/public/.;x/../admin"] {
        let page = ask_forward(&app, &ann, "GET", &format!("{WIKI}{split}"), &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{split}");
        assert!(page.body.contains("cannot be checked"), "{split}: {}", page.body);
    }
    // Where the first rule for a host covers every path, the path cannot change the verdict.
    for any in ["/wiki/AC%2FDC", "/wiki/100%25_natural", "/api/group%2Fproject"] {
        let page = ask_forward(&app, &ann, "GET", &format!("http://other.usher.localhost{any}"), &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{any}: {}", page.body);
    }
    // A prefix matches at segment boundaries only.
    assert_eq!(ask_forward(&app, &ann, "GET", &format!("{WIKI}/administrator"), &[]).await.status, StatusCode::OK);
    // Hosts compare without case, port or trailing dot.
    let host_tricks = ["http://WIKI.usher.localhost/admin", "http://wiki.usher.localhost.:9/admin"];
    for url in host_tricks {
        assert_eq!(ask_forward(&app, &ann, "GET", url, &[]).await.status, StatusCode::FORBIDDEN, "{url}");
    }
}

async fn bypass_and_unmatched_requests_need_no_sign_in_and_no_rule_means_deny(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let anonymous = Browser::new(WIKI);
    let public = ask_forward(&app, &anonymous, "GET", &format!("{WIKI}/public/style.css"), &[]).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(header(&public, "remote-user"), None, "bypass sends no identity");
    let ann = signed_in(&app, "ann@example.com").await;
    let public = ask_forward(&app, &ann, "GET", &format!("{WIKI}/public/style.css"), &[]).await;
    assert_eq!(header(&public, "remote-user"), None, "not even for someone signed in");

    // A host no rule covers is denied, signed in or not.
    let unknown = "http://unknown.example.net/";
    assert_eq!(ask_forward(&app, &ann, "GET", unknown, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(ask_forward(&app, &anonymous, "GET", unknown, &[]).await.status, StatusCode::FORBIDDEN);
    // Missing or malformed headers are refused, not guessed.
    let endpoint = format!("{}/auth/forward", app.address);
    let no_uri = anonymous.get_url(&endpoint, &[("x-forwarded-proto", "http"), ("x-forwarded-host", "a")]).await;
    assert_eq!(no_uri.status, StatusCode::FORBIDDEN);
    assert!(no_uri.body.contains("X-Forwarded-Uri"), "{}", no_uri.body);
}

async fn rd_leads_only_to_guarded_apps(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    app.register_verified("ann@example.com").await;
    for evil in [
        "https://evil.test/",
        "//evil.test/",
        "/\\evil.test",
        "https://wiki.usher.localhost.evil.test/",
        "https://evil.test@wiki.usher.localhost/",
        " http://wiki.usher.localhost/",
        "javascript:alert(1)",
        "http%3A%2F%2Fevil.test",
    ] {
        let browser = app.browser();
        let login = browser.get(&format!("/login?{}", serde_urlencoded::to_string([("rd", evil)]).unwrap())).await;
        let signed =
            browser.submit_form(&login, "/login", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
        signed.assert_redirects_to("/account");
        let onward = format!("/login/continue?{}", serde_urlencoded::to_string([("rd", evil)]).unwrap());
        assert_eq!(browser.get(&onward).await.location(), Some("/account"), "{evil:?}");
    }
}

async fn a_pending_second_factor_is_not_signed_in(backend: Backend) {
    use crate::two_factor::{enrol, next_step, type_code};
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let ann = signed_in(&app, "ann@example.com").await;
    let (authenticator, _) = enrol(&app, &ann).await;

    let browser = app.browser();
    let page_url = format!("{WIKI}/page");
    let login = browser.get_url(&sign_in_url(&app, &page_url), &[]).await;
    let step = browser.submit_form(&login, "/login", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    step.assert_redirects_to("/login/two-factor");
    assert_eq!(step.set_cookie("usher_forward"), None);
    assert_eq!(ask_forward(&app, &browser, "GET", &page_url, &[]).await.status, StatusCode::FOUND);

    next_step(&app);
    let signed = type_code(&browser, &authenticator.code(&app, 0)).await;
    let continue_at = signed.location().unwrap().to_owned();
    assert!(continue_at.starts_with("/login/continue?rd="), "{continue_at}");
    assert_eq!(ask_forward(&app, &browser, "GET", &page_url, &[]).await.status, StatusCode::OK);
}

async fn a_session_signed_in_before_gets_a_forward_cookie_on_the_way_back(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    app.register_verified("ann@example.com").await;
    let ann = app.browser();
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("remember_me", "on")];
    let signed = ann.submit("/login", "/login", &fields).await;
    assert!(signed.set_cookie("usher_forward").unwrap().contains("Max-Age="), "kept as long as the session");
    // The forward-auth cookie is gone (cleared by the browser, say), the session is not.
    ann.forget_cookie("usher_forward", "usher.localhost");
    let page_url = format!("{WIKI}/page");
    let asked = ask_forward(&app, &ann, "GET", &page_url, &[]).await;
    assert_eq!(asked.status, StatusCode::FOUND);
    let back = ann.get_url(asked.location().unwrap(), &[]).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "straight on, no sign-in form");
    assert_eq!(back.location(), Some(page_url.as_str()));
    let reissued = back.set_cookie("usher_forward").expect("a new forward-auth cookie");
    assert!(reissued.contains("Max-Age="), "still kept as long as the remembered session: {reissued}");
    assert_eq!(ask_forward(&app, &ann, "GET", &page_url, &[]).await.status, StatusCode::OK);
}

async fn check_rules_explains_which_rule_decides(backend: Backend) {
    let app = spawn_app(backend).await;
    let rules = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(rules.path(), RULES).unwrap();
    let path = rules.path().to_str().unwrap();
    let run = |url: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["check-rules", "--url", url, "--access-rules", path])
            .output()
            .unwrap();
        let said = [output.stdout, output.stderr].concat();
        (output.status.success(), String::from_utf8_lossy(&said).into_owned())
    };
    let (ok, said) = run("http://wiki.usher.localhost/admin/x/../users");
    assert!(ok, "{said}");
    assert!(said.contains("line 2: host wiki.usher.localhost, /public: passed over"), "{said}");
    assert!(said.contains("line 7: host wiki.usher.localhost, /admin: matches"), "{said}");
    assert!(said.contains("=> allowed to members of admins"), "{said}");
    let (ok, said) = run("http://wiki.usher.localhost/x/../admin/users");
    assert!(!ok && said.contains("refused, since its dot segments lead under another rule"), "{said}");
    let (_, said) = run("http://nowhere.test/");
    assert!(said.contains("denied to everyone"), "{said}");

    // A broken file stops start-up with the line named.
    std::fs::write(rules.path(), "[[rule]]\nhost = \"a.test\"\npolicy = \"groups\"\n").unwrap();
    let output = app.usher_command(&["serve", "--access-rules", path, "--bind", "127.0.0.1:0"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("USHER_ACCESS_RULES") && said.contains("line 1"), "{said}");
}

async fn an_unverified_account_signed_in_where_usher_allows_it_is_refused_not_looped(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[("--require-email-verification", "false")]).await;
    let browser = app.browser();
    app.register(&browser, "ann@example.com").await;
    let signed = app.sign_in(&browser, "ann@example.com", PASSWORD).await;
    signed.assert_redirects_to("/account");
    let refused = ask_forward(&app, &browser, "GET", &format!("{WIKI}/page"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a guarded app gets proven addresses only");
    assert!(refused.body.contains("Confirm your email address first"), "{}", refused.body);
    assert_eq!(header(&refused, "remote-email"), None);
}

async fn signing_up_from_a_guarded_app_leads_back_to_it_after_the_emailed_link(backend: Backend) {
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let browser = app.browser();
    let page_url = format!("{WIKI}/docs/page?x=1");
    let asked = ask_forward(&app, &browser, "GET", &page_url, &[]).await;
    browser.get_url(asked.location().unwrap(), &[]).await;
    app.register(&browser, "new@example.com").await.assert_redirects_to("/verify");
    let token = app.mail.wait_for("new@example.com", 1).await.verify_token();
    let confirmed = browser.submit(&format!("/verify?token={token}"), "/verify", &[("token", &token)]).await;
    let sign_in = confirmed.location().unwrap().to_owned();
    assert!(sign_in.starts_with("/login?rd="), "the sign-in page keeps where they set out for: {sign_in}");
    let login = browser.get(&sign_in).await;
    let signed = browser.submit_form(&login, "/login", &[("email", "new@example.com"), ("password", PASSWORD)]).await;
    let onward = browser.get(signed.location().unwrap()).await;
    assert_eq!(onward.attrs("main a", "href"), std::slice::from_ref(&page_url));
}
