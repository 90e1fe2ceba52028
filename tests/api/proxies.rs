//! Usher behind real reverse proxies: nginx (`auth_request` to
//! `/auth/request`) and Caddy (`forward_auth` to `/auth/forward`), each
//! started as a child process (`helpers::proxy`) in front of an app that
//! reports what it received. The browser signs in at Usher itself and
//! opens the app at `http://wiki.usher.localhost:<proxy port>`.
//!
//! Each scenario runs for both proxies and on both databases; a missing
//! proxy skips its tests (and fails them with `USHER_PROXY_TESTS=required`,
//! as in CI).

use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, PASSWORD, Page, Proxy, ProxyKind, Seen, TestApp, Upstream, spawn_guarding_app};

/// `/public` for anyone, `/admin` for administrators, the rest of the
/// wiki for anyone signed in.
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
policy = "signed_in"
"#;

/// Identity headers a client might send to pass for someone else, the
/// underscore spelling included (CGI-style apps read it as `Remote-User`).
const FORGED: &[(&str, &str)] = &[
    ("Remote-User", "999999"),
    ("Remote-Email", "forged@example.com"),
    ("Remote-Groups", "forged-group,admins"),
    ("Remote_User", "999999"),
];

/// Usher, the app and a proxy between them.
struct Guarded {
    app: TestApp,
    upstream: Upstream,
    proxy: Proxy,
}

/// Starts Usher with `RULES`, the app and `kind` in front of it; `None`
/// when the proxy is not installed (the test is then skipped).
async fn guarded(backend: Backend, kind: ProxyKind) -> Option<Guarded> {
    kind.program_or_skip()?;
    let app = spawn_guarding_app(backend, RULES, &[]).await;
    let usher_port: u16 = app.address.rsplit(':').next().and_then(|port| port.parse().ok()).expect("a port");
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(kind, usher_port, upstream.port)?;
    Some(Guarded { app, upstream, proxy })
}

impl Guarded {
    /// Usher's sign-in page leading back to `path_and_query` on the app.
    fn sign_in_url(&self, path_and_query: &str) -> String {
        let query = serde_urlencoded::to_string([("rd", self.proxy.url(path_and_query))]).unwrap();
        format!("{}/login?{query}", self.app.address)
    }

    /// What the app received, from its answer; panics (with the proxy's
    /// logs) unless the proxy let the request through.
    #[track_caller]
    fn seen(&self, page: &Page) -> Seen {
        assert_eq!(
            page.status,
            StatusCode::OK,
            "expected the app's answer, got:\n{}\n{}",
            page.body,
            self.proxy.logs()
        );
        serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("not the app's answer ({e}): {}", page.body))
    }

    /// Asserts `page` sends the browser to sign in and return to `path_and_query`.
    #[track_caller]
    fn assert_sent_to_sign_in(&self, page: &Page, path_and_query: &str, statuses: &[StatusCode]) {
        assert!(statuses.contains(&page.status), "expected one of {statuses:?}, got {}:\n{}", page.status, page.body);
        assert_eq!(page.location(), Some(self.sign_in_url(path_and_query).as_str()));
    }
}

/// `seen` carries exactly this account's identity, whatever the client sent.
#[track_caller]
fn assert_identity(seen: &Seen, user_id: i64, email: &str, groups: &str) {
    assert_eq!(seen.values("remote-user"), [user_id.to_string()], "{seen:?}");
    assert_eq!(seen.values("remote-email"), [email], "{seen:?}");
    // nginx sends no header for an empty value, Caddy an empty one.
    let sent_groups = seen.values("remote-groups");
    let expected: &[&str] = if groups.is_empty() { &[] } else { &[groups] };
    assert!(
        sent_groups == expected || (groups.is_empty() && sent_groups == [""]),
        "Remote-Groups {sent_groups:?}, expected {groups:?}: {seen:?}"
    );
    assert!(seen.values("remote_user").is_empty(), "{seen:?}");
}

/// An anonymous visitor is sent to Usher's sign-in page with the page
/// they asked for; signing in there through the real form leads, by the
/// continue page's link, back to that page, which the app then serves
/// with the account's id, address and groups.
async fn sign_in_leads_back_with_identity(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let email = "ann@example.com";
    setup.app.register_verified(email).await;
    let browser = Browser::new(&setup.app.address);

    let wanted = "/docs/page?x=1";
    let first = browser.get_url(&setup.proxy.url(wanted), &[]).await;
    setup.assert_sent_to_sign_in(&first, wanted, &[StatusCode::FOUND]);
    assert!(setup.upstream.seen().is_empty(), "the app saw a request before sign-in");

    let login = browser.get_url(first.location().unwrap(), &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let signed_in = browser.submit_form(&login, "/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    let continue_at = signed_in.location().unwrap().to_owned();
    assert!(continue_at.starts_with("/login/continue?rd="), "{continue_at}");
    let page = browser.follow(&signed_in).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let link = continue_link(&page);
    assert_eq!(link, setup.proxy.url(wanted));

    let back = browser.get_url(&link, &[]).await;
    let seen = setup.seen(&back);
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("GET", wanted));
    assert_identity(&seen, setup.app.user_id(email), email, "");
}

/// The continue page's link (and its refresh, which must agree).
fn continue_link(page: &Page) -> String {
    let document = scraper::Html::parse_document(&page.body);
    let links = scraper::Selector::parse("main a[href], a[href^='http']").unwrap();
    let link = document
        .select(&links)
        .filter_map(|a| a.value().attr("href"))
        .find(|href| href.starts_with("http://wiki."))
        .unwrap_or_else(|| panic!("no link to the app on the continue page:\n{}", page.body))
        .to_owned();
    let refresh = scraper::Selector::parse("meta[http-equiv='refresh']").unwrap();
    let content = document.select(&refresh).next().and_then(|meta| meta.value().attr("content")).unwrap_or_default();
    assert_eq!(content, format!("0; url={link}"), "the refresh leads elsewhere than the link");
    link
}

/// A `groups = ["admins"]` path: a signed-in account outside the group is
/// refused (and the app never sees the request); an administrator gets
/// through with `admins` in `Remote-Groups`.
async fn groups_rule_admits_members_only(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let bob = setup.app.signed_in_user("bob@example.com").await;
    let refused = bob.get_url(&setup.proxy.url("/admin/settings"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(setup.upstream.seen().is_empty(), "{:?}", setup.upstream.seen());
    // The rest of the wiki is open to him.
    let seen = setup.seen(&bob.get_url(&setup.proxy.url("/docs"), &[]).await);
    assert_identity(&seen, setup.app.user_id("bob@example.com"), "bob@example.com", "");

    let admin = setup.app.signed_in_admin("root@example.com").await;
    let seen = setup.seen(&admin.get_url(&setup.proxy.url("/admin/settings"), &[]).await);
    assert_eq!(seen.target, "/admin/settings");
    assert_identity(&seen, setup.app.user_id("root@example.com"), "root@example.com", "admins");
}

/// `Remote-*` headers the client sends never reach the app: on a guarded
/// path Usher's replace them, on a `bypass` path (which names no one)
/// none arrive at all, signed in or not; an empty-valued header too.
async fn client_identity_headers_never_reach_the_app(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let anonymous = Browser::new(&setup.app.address);
    let email = "cat@example.com";
    let cat = setup.app.signed_in_user(email).await;
    let cat_id = setup.app.user_id(email);
    let empty = &[("Remote-User", "")][..];

    for (who, browser) in [("anonymous", &anonymous), ("signed in", &cat)] {
        for headers in [FORGED, empty] {
            let seen = setup.seen(&browser.get_url(&setup.proxy.url("/public/page"), headers).await);
            assert_eq!(seen.target, "/public/page");
            assert!(seen.remote.is_empty(), "{who}, bypass path, sent {headers:?}: the app got {:?}", seen.remote);
        }
    }
    for headers in [FORGED, empty] {
        let seen = setup.seen(&cat.get_url(&setup.proxy.url("/docs"), headers).await);
        assert_identity(&seen, cat_id, email, "");
    }
    // Anonymous on a guarded path: sent to sign in, the app sees nothing.
    let before = setup.upstream.seen().len();
    let page = anonymous.get_url(&setup.proxy.url("/docs"), FORGED).await;
    setup.assert_sent_to_sign_in(&page, "/docs", &[StatusCode::FOUND]);
    assert_eq!(setup.upstream.seen().len(), before);
}

/// Paths that a lax reading would take out of `/admin`, or into it, sent
/// byte for byte. Each is `/admin` or below it once dot segments, runs of
/// slashes and escapes are resolved (or holds an escape Usher will not
/// guess at), so none may reach the app for someone outside `admins`.
const ADMIN_TRICKS: &[&str] = &[
    "/x/../admin",
    "//admin",
    "/%61dmin",
    "/admin%2F..",
    "/admin/./",
    "/admin/x/../",
    "/public/../admin",
    "/x/..%2Fadmin",
    "/%2e%2e/admin",
    "/x/%2e%2e/admin",
    // Paths that start under /admin and only a dot segment takes out of
    // it: apps that resolve `..` as browsers do see /admin/public/x.
    "/admin//../public/x",
    "/admin/..;/public",
    "/public/..;/admin",
];

/// Whatever the proxy does to such a path (nginx refuses some itself and
/// resolves others for its own routing, but passes the original on; Caddy
/// passes it on as sent), no request for an admin path reaches the app
/// for a non-administrator or an anonymous visitor. An administrator gets
/// through with the paths Usher can read, which shows the refusals come
/// from the `/admin` rule.
async fn path_tricks_never_reach_admin_paths(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let dan = setup.app.signed_in_user("dan@example.com").await;
    let dan_cookie = format!("usher_forward={}", dan.cookie("usher_forward").expect("a forward-auth cookie"));
    // Controls: the rest of the wiki, and a path that only starts like /admin.
    for open in ["/docs", "/administrator"] {
        assert_eq!(setup.proxy.raw_get(open, &[("Cookie", &dan_cookie)]), 200, "{open}\n{}", setup.proxy.logs());
    }
    let before = setup.upstream.seen();
    for trick in ADMIN_TRICKS {
        for (who, headers) in [("a non-administrator", &[("Cookie", dan_cookie.as_str())][..]), ("anonymous", &[])] {
            let status = setup.proxy.raw_get(trick, headers);
            assert_ne!(status, 200, "{kind:?} served {trick} to {who}");
            assert_eq!(setup.upstream.seen(), before, "{kind:?}: {trick} from {who} reached the app");
        }
    }

    let admin = setup.app.signed_in_admin("root@example.com").await;
    let admin_cookie = format!("usher_forward={}", admin.cookie("usher_forward").unwrap());
    // `/x/../admin` is no longer among them: apps that resolve no dot
    // segments read it under the wiki-wide rule, so it is refused.
    for readable in ["//admin", "/%61dmin", "/admin/./", "/admin/x/../"] {
        assert_eq!(
            setup.proxy.raw_get(readable, &[("Cookie", &admin_cookie)]),
            200,
            "{readable}\n{}",
            setup.proxy.logs()
        );
        let seen = setup.upstream.seen().pop().unwrap();
        assert_eq!(seen.values("remote-groups"), ["admins"], "{readable}: {seen:?}");
    }
}

/// The name the client sends picks the rule, so a name the proxy does not
/// serve (a host with a looser rule) must not reach the wiki: nginx's
/// default server answers nothing, Caddy has no site for it (and answers
/// an empty 200 of its own).
async fn another_host_name_does_not_reach_the_app(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let dan = setup.app.signed_in_user("dan@example.com").await;
    let cookie = format!("usher_forward={}", dan.cookie("usher_forward").unwrap());
    for host in ["other.usher.localhost", "closed.example.com"] {
        let status = setup.proxy.raw_status(host, "/admin/secret", &[("Cookie", &cookie)]);
        // Caddy answers an empty 200 where no site matches; nginx nothing.
        if kind == ProxyKind::Nginx {
            assert_eq!(status, None, "nginx answered for {host}");
        }
    }
    assert!(setup.upstream.seen().is_empty(), "{kind:?}: {:?}", setup.upstream.seen());
}

/// Signing out at Usher (the real sign-out form) ends access through the
/// proxy at once: the next request is sent to sign in, and so is one that
/// still presents the old forward-auth cookie.
async fn signing_out_ends_access(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let email = "eve@example.com";
    let eve = setup.app.signed_in_user(email).await;
    let seen = setup.seen(&eve.get_url(&setup.proxy.url("/docs"), &[]).await);
    assert_identity(&seen, setup.app.user_id(email), email, "");
    let old_cookie = format!("usher_forward={}", eve.cookie("usher_forward").unwrap());

    eve.submit("/account", "/logout", &[]).await.assert_redirects_to("/");
    assert_eq!(eve.cookie("usher_forward"), None, "the forward-auth cookie outlived the sign-out");
    let before = setup.upstream.seen().len();
    let page = eve.get_url(&setup.proxy.url("/docs"), &[]).await;
    setup.assert_sent_to_sign_in(&page, "/docs", &[StatusCode::FOUND]);
    let replayed =
        Browser::new(&setup.app.address).get_url(&setup.proxy.url("/docs"), &[("Cookie", &old_cookie)]).await;
    setup.assert_sent_to_sign_in(&replayed, "/docs", &[StatusCode::FOUND]);
    assert_eq!(setup.upstream.seen().len(), before);
}

/// A form's POST goes through with its body when signed in (nginx's
/// sub-request carries no body, so the app's request keeps it); an
/// anonymous one is sent to sign in (nginx's 302; Caddy's 303 turns it
/// into a GET of the sign-in page) and never reaches the app.
async fn posts_keep_their_body(backend: Backend, kind: ProxyKind) {
    let Some(setup) = guarded(backend, kind).await else { return };
    let form = "title=Hello&text=two+words%21";
    let url = setup.proxy.url("/docs/edit?page=7");
    let anonymous = Browser::new(&setup.app.address);
    let page = anonymous.post_url(&url, "application/x-www-form-urlencoded", form.into()).await;
    setup.assert_sent_to_sign_in(&page, "/docs/edit?page=7", &[StatusCode::FOUND, StatusCode::SEE_OTHER]);
    assert!(setup.upstream.seen().is_empty(), "{:?}", setup.upstream.seen());

    let email = "fay@example.com";
    let fay = setup.app.signed_in_user(email).await;
    let seen = setup.seen(&fay.post_url(&url, "application/x-www-form-urlencoded", form.into()).await);
    assert_eq!((seen.method.as_str(), seen.target.as_str(), seen.body.as_str()), ("POST", "/docs/edit?page=7", form));
    assert_identity(&seen, setup.app.user_id(email), email, "");
}

/// One test per scenario, proxy and backend:
/// `proxies::{nginx,caddy}::{sqlite,postgres}::<scenario>`.
macro_rules! for_each_proxy {
    ($($name:ident),* $(,)?) => {
        mod nginx {
            $(
                async fn $name(backend: crate::helpers::Backend) {
                    super::$name(backend, crate::helpers::ProxyKind::Nginx).await;
                }
            )*
            crate::on_both_backends!($($name),*);
        }
        mod caddy {
            $(
                async fn $name(backend: crate::helpers::Backend) {
                    super::$name(backend, crate::helpers::ProxyKind::Caddy).await;
                }
            )*
            crate::on_both_backends!($($name),*);
        }
    };
}

for_each_proxy!(
    sign_in_leads_back_with_identity,
    groups_rule_admits_members_only,
    client_identity_headers_never_reach_the_app,
    path_tricks_never_reach_admin_paths,
    signing_out_ends_access,
    posts_keep_their_body,
    another_host_name_does_not_reach_the_app,
);

/// The README's proxy configurations ("Protect another app") ask Usher's
/// endpoints and copy exactly the identity headers Usher sends, and
/// nginx's and Caddy's hold every line of the ones tested above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_configurations_match_what_usher_sends() {
    let app = spawn_guarding_app(Backend::Sqlite, RULES, &[]).await;
    let admin = app.signed_in_admin("root@example.com").await;
    let cookie = format!("usher_forward={}", admin.cookie("usher_forward").unwrap());
    let asked = [
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "wiki.usher.localhost"),
        ("X-Forwarded-Uri", "/admin"),
        ("Cookie", cookie.as_str()),
    ];
    let answer = Browser::new(&app.address).get_url(&format!("{}/auth/forward", app.address), &asked).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let mut sent: Vec<String> =
        answer.headers.keys().map(|name| name.as_str().to_owned()).filter(|name| name.starts_with("remote-")).collect();
    sent.sort();
    assert_eq!(sent, ["remote-email", "remote-groups", "remote-user"]);

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let traefik = fenced_block(&readme, "yaml", "forwardAuth:");
    let setting = |key: &str| {
        traefik
            .iter()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the README's Traefik block"))
            .trim()
    };
    assert_eq!(setting("address:"), "http://usher:8080/auth/forward");
    assert_eq!(setting("trustForwardHeader:"), "false");
    let copied = setting("authResponseHeaders:").trim_start_matches('[').trim_end_matches(']');
    assert_eq!(lowered(copied.split(',')), sent, "Traefik's authResponseHeaders");

    let caddy = fenced_block(&readme, "caddyfile", "forward_auth");
    assert!(caddy.contains(&"uri /auth/forward"), "{caddy:?}");
    let copied = caddy.iter().find_map(|line| line.strip_prefix("copy_headers ")).expect("copy_headers");
    assert_eq!(lowered(copied.split_whitespace()), sent, "Caddy's copy_headers");
    assert_holds_every_line(&caddy, &crate::helpers::caddy_site("usher:8080", "wiki:3000"), "Caddy");

    let nginx = fenced_block(&readme, "nginx", "auth_request");
    let from_usher = nginx.iter().filter_map(|line| line.split("$upstream_http_").nth(1));
    let from_usher = from_usher.map(|name| name.trim_end_matches(';')).filter(|name| name.starts_with("remote_"));
    assert_eq!(lowered(from_usher), sent, "nginx's auth_request_set");
    let to_app = nginx.iter().filter_map(|line| line.strip_prefix("proxy_set_header "));
    let to_app = to_app.filter_map(|rest| rest.split_whitespace().next()).filter(|name| name.starts_with("Remote-"));
    assert_eq!(lowered(to_app), sent, "nginx's proxy_set_header");
    assert_holds_every_line(&nginx, &crate::helpers::nginx_locations("usher:8080", "wiki:3000"), "nginx");
}

/// Header names in lower case, `_` read as `-`, sorted.
fn lowered<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> =
        names.into_iter().map(|name| name.trim().to_ascii_lowercase().replace('_', "-")).collect();
    names.sort();
    names
}

/// The trimmed lines of the README's first ```` ```lang ```` block that holds `marker`.
fn fenced_block<'a>(readme: &'a str, lang: &str, marker: &str) -> Vec<&'a str> {
    let opening = format!("```{lang}\n");
    readme
        .split(opening.as_str())
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap_or_default())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no ```{lang} block with {marker:?} in the README"))
        .lines()
        .map(str::trim)
        .collect()
}

/// Every directive line of `tested` (comments and blank lines aside)
/// appears in `block`, so the README shows what the tests run.
#[track_caller]
fn assert_holds_every_line(block: &[&str], tested: &str, proxy: &str) {
    for line in tested.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        assert!(block.contains(&line), "the README's {proxy} configuration lacks the tested line {line:?}");
    }
}
