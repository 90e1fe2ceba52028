//! The one way back after signing in. The page that sends a person to sign
//! in names where to return (`/login?next=…`); the sign-in page keeps that
//! target in a signed cookie until the step that completes signing in reads
//! it, so later steps (a second factor, "confirm it's you") return the same
//! way. A target is a same-site path of a page that answers `GET`, or,
//! for a person sent by a guarded app's proxy (`/login?rd=…`), that app's
//! URL within the cookie domain (`GuardedApps`).

use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use super::cookies::RequestCookies;

/// Where a sign-in returns to when nothing else was asked for.
pub const DEFAULT_RETURN: &str = "/account";

/// `candidate` if it is a path on this site: never another origin (`//host`,
/// `/\host`, `https:`) or a control character, so a crafted link cannot
/// bounce a fresh sign-in elsewhere (ASVS 5.1.5).
pub fn safe_path(candidate: &str) -> Option<&str> {
    let safe = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.contains('\\')
        && !candidate.chars().any(char::is_control);
    safe.then_some(candidate)
}

/// The guarded apps a sign-in may lead back to: hosts within
/// `USHER_COOKIE_DOMAIN` (or, without one, Usher's own host), over https
/// or the scheme of Usher's public URL.
#[derive(Clone, Debug)]
pub struct GuardedApps {
    domain: Option<String>,
    own_host: String,
    scheme: String,
}

impl GuardedApps {
    pub fn new(cookie_domain: Option<&str>, public_url: &url::Url) -> Self {
        Self {
            domain: cookie_domain.map(str::to_owned),
            own_host: public_url.host_str().unwrap_or_default().to_ascii_lowercase(),
            scheme: public_url.scheme().to_owned(),
        }
    }

    /// `candidate` as a URL to send a browser to, if it names a guarded
    /// app: an absolute `https` (or Usher's own scheme) URL, with no user
    /// name or password, whose host is the cookie domain or lies below it
    /// at a dot. Parsed with a URL parser, after refusing what parsers
    /// forgive (leading whitespace, backslashes, control characters), so no
    /// `//evil`, `/\evil`, `https://a.example.com.evil.test` or
    /// `javascript:` gets through (ASVS 5.1.5).
    pub fn allows(&self, candidate: &str) -> Option<String> {
        let forgiven = |c: char| c.is_whitespace() || c.is_control() || c == '\\';
        if candidate.chars().any(forgiven) {
            return None;
        }
        let url = url::Url::parse(candidate).ok()?;
        let scheme_ok = url.scheme() == "https" || url.scheme() == self.scheme;
        let no_credentials = url.username().is_empty() && url.password().is_none();
        let Some(url::Host::Domain(host)) = url.host() else { return None };
        let host = host.trim_end_matches('.');
        let within = match &self.domain {
            // The url crate gives domains in lower case.
            Some(domain) => crate::forward_auth::within_domain(host, domain),
            None => host == self.own_host,
        };
        (scheme_ok && no_credentials && within).then(|| url.to_string())
    }

    /// `candidate` if it is a target at all: a same-site path, or a guarded app's URL.
    pub fn target(&self, candidate: &str) -> Option<String> {
        safe_path(candidate).map(str::to_owned).or_else(|| self.allows(candidate))
    }
}

/// The way on to `target` from a form's POST: a same-site path directly;
/// a guarded app's URL through the same-origin continue page, since the
/// CSP's `form-action 'self'` also covers where a form's answer redirects.
pub fn lead_on(target: &str) -> HttpResponse {
    if safe_path(target).is_some() {
        return super::redirect(target);
    }
    let query = serde_urlencoded::to_string([("rd", target)]).unwrap_or_default();
    super::redirect(&format!("{CONTINUE_PAGE}?{query}"))
}

/// The sign-in page's address, naming the target this browser stored
/// (`?next=` or `?rd=`), so that a detour (confirming the address after
/// signing up) still ends where the person set out for: the sign-in page
/// forgets a stored target when visited without one.
pub fn sign_in_page(req: &HttpRequest) -> String {
    let Some(target) = stored_return_target(req) else { return "/login".to_owned() };
    let key = if safe_path(&target).is_some() { "next" } else { "rd" };
    format!("/login?{}", serde_urlencoded::to_string([(key, target)]).unwrap_or_default())
}

/// The page that leads on from a sign-in to a guarded app (`lead_on`).
pub const CONTINUE_PAGE: &str = "/login/continue";

/// Where a request that needs a signed-in person should return after
/// signing in. A `GET` returns to itself. Anything else (a form posted
/// after the session ended) returns to the page the form was on, named by
/// the browser's same-origin `Referer`, or to the account page: an action's
/// own URL may answer only `POST`.
pub fn return_target_of(req: &HttpRequest) -> String {
    if req.method() == Method::GET {
        let here = req.uri().path_and_query().map_or("/", |path| path.as_str());
        return safe_path(here).unwrap_or(DEFAULT_RETURN).to_owned();
    }
    let referer = req.headers().get("referer").and_then(|value| value.to_str().ok());
    referer.and_then(|referer| same_site_path(req, referer)).unwrap_or_else(|| DEFAULT_RETURN.to_owned())
}

/// Whether `url` names the host (and port) this request was sent to, as
/// its `Host` header says.
pub fn addresses_this_host(req: &HttpRequest, url: &url::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let addressed = req.headers().get("host").and_then(|value| value.to_str().ok());
    addressed.is_some_and(|addressed| addressed.eq_ignore_ascii_case(&authority))
}

/// The path and query of `referer` if it is this site (the host the
/// browser addressed).
fn same_site_path(req: &HttpRequest, referer: &str) -> Option<String> {
    let url = url::Url::parse(referer).ok()?;
    if !addresses_this_host(req, &url) {
        return None;
    }
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    safe_path(&path).map(str::to_owned)
}

/// The target the sign-in page stored for this browser, if any.
pub fn stored_return_target(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestCookies>().and_then(|cookies| cookies.return_to.clone())
}

/// Put in a response's extensions: the cookie layer stores this target.
#[derive(Clone, Debug)]
pub struct SetReturnTarget(pub String);

/// Put in a response's extensions: the cookie layer forgets the target.
#[derive(Clone, Copy, Debug)]
pub struct ClearReturnTarget;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_are_targets() {
        for good in ["/account", "/admin/users?q=ann", "/"] {
            assert_eq!(safe_path(good), Some(good));
        }
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example/", "account", "/a\nb", ""] {
            assert_eq!(safe_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_guarded_apps_within_the_cookie_domain_are_targets() {
        let public = url::Url::parse("https://auth.example.com").unwrap();
        let apps = GuardedApps::new(Some("example.com"), &public);
        for good in ["https://wiki.example.com/page?a=1", "https://example.com/", "https://a.b.example.com:8443/x"] {
            assert!(apps.allows(good).is_some(), "{good:?}");
        }
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "https://wiki.example.com.evil.test/",
            "https://evil.test@wiki.example.com/",
            "https://wiki.example.com\\@evil.test/",
            "https:/\\evil.test",
            " https://wiki.example.com/",
            "\thttps://wiki.example.com/",
            "https://wiki.example.com/\n",
            "javascript:alert(1)//example.com",
            "http://wiki.example.com/",
            "https://badexample.com/",
            "https://10.0.0.1/",
            "%2F%2Fevil.test",
            "https:%2F%2Fevil.test",
            "wiki.example.com",
            "",
        ] {
            assert_eq!(apps.allows(bad), None, "{bad:?}");
        }
        let own_host_only = GuardedApps::new(None, &url::Url::parse("http://usher.test:8080").unwrap());
        assert!(own_host_only.allows("http://usher.test:8080/wiki").is_some());
        assert_eq!(own_host_only.allows("http://wiki.usher.test/"), None);
        assert_eq!(apps.target("/account").as_deref(), Some("/account"));
    }

    #[test]
    fn a_post_returns_to_the_page_its_form_was_on() {
        use actix_web::test::TestRequest;
        let post = |referer: &str| {
            TestRequest::post()
                .uri("/account/sessions/revoke-others")
                .insert_header(("host", "usher.example"))
                .insert_header(("referer", referer))
                .to_http_request()
        };
        assert_eq!(return_target_of(&post("http://usher.example/admin/users/3?q=a")), "/admin/users/3?q=a");
        assert_eq!(return_target_of(&post("https://evil.example/account")), DEFAULT_RETURN);
        let get = TestRequest::get().uri("/admin/users?q=ann").to_http_request();
        assert_eq!(return_target_of(&get), "/admin/users?q=ann");
    }
}
