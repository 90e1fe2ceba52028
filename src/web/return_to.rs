//! The one way back after signing in. The page that sends a person to sign
//! in names where to return (`/login?next=…`); the sign-in page keeps that
//! target in a signed cookie until the step that completes signing in reads
//! it, so later steps (a second factor, "confirm it's you") return the same
//! way. A target is always a same-site path of a page that answers `GET`.

use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};

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
