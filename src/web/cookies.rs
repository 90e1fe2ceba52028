//! Signed cookies that spare anonymous visitors a database row: the CSRF
//! double-submit token and the one-time flash message.

use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Flash;
use super::return_to::{ClearReturnTarget, GuardedApps, SetReturnTarget};
use crate::db::now;
use crate::domain::random_secret;

/// How long an anonymous CSRF token stays valid. It is set only when
/// missing or expired, so every open tab shares it.
const CSRF_LIFETIME_SECS: i64 = 12 * 3600;

/// The names of Usher's cookies. Over https they carry the `__Host-`
/// prefix, which browsers only accept from this very host, over https, for
/// the whole site: a sibling subdomain cannot plant one.
#[derive(Clone, Debug)]
pub struct CookieNames {
    /// The session cookie, which actix-session sets.
    pub session: String,
    pub csrf: String,
    pub flash: String,
    /// Where to go after signing in (`super::return_to`).
    pub return_to: String,
    /// The accounts that completed a sign-in in this browser (`KnownBrowser`).
    pub known_browser: String,
    /// A right password waiting for its second factor (`SecondFactorPending`).
    pub second_factor: String,
}

impl CookieNames {
    pub fn new(secure: bool) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        Self {
            session: format!("{prefix}usher_session"),
            csrf: format!("{prefix}usher_csrf"),
            flash: format!("{prefix}usher_flash"),
            return_to: format!("{prefix}usher_return"),
            known_browser: format!("{prefix}usher_known"),
            second_factor: format!("{prefix}usher_second_factor"),
        }
    }
}

/// Keys and cookie flags for the signed cookies.
#[derive(Clone)]
pub struct CookieSettings {
    pub key: Key,
    pub secure: bool,
    pub names: CookieNames,
    /// Max-Age of a "remember me" session cookie.
    pub remember_for: std::time::Duration,
    /// Keys the tags of `KnownBrowser`; `None` with `USHER_SIGN_IN_ALERTS=off`,
    /// when no browser is remembered (a cookie with no use is not set).
    pub known_browser_key: Option<[u8; 32]>,
    /// Where a sign-in may lead back to besides Usher's own pages.
    pub guarded_apps: GuardedApps,
    /// The forward-auth cookie; `None` when forward authentication is off.
    pub forward: Option<ForwardCookie>,
}

/// The cookie guarded apps' proxies present to `/auth/forward` and
/// `/auth/request`: its own random id, tied to a session
/// (`SessionData::issue_forward_id`), worth nothing on Usher's own pages.
#[derive(Clone, Debug)]
pub struct ForwardCookie {
    /// `__Secure-usher_forward` with a domain, `__Host-usher_forward`
    /// without one (over https; no prefix over http).
    pub name: String,
    /// `USHER_COOKIE_DOMAIN`: the cookie goes to every host within it.
    pub domain: Option<String>,
}

impl ForwardCookie {
    pub fn new(domain: Option<String>, secure: bool) -> Self {
        let prefix = match (secure, domain.is_some()) {
            (false, _) => "",
            (true, true) => "__Secure-",
            (true, false) => "__Host-",
        };
        Self { name: format!("{prefix}usher_forward"), domain }
    }
}

/// Put in a response's extensions with a new forward-auth id: the cookie
/// layer sets the forward-auth cookie, lasting as long as a session cookie
/// would (`RememberMe` too).
pub struct IssueForwardCookie(pub String);

/// Put in a response's extensions at sign-out: the forward-auth cookie goes.
pub struct ClearForwardCookie;

/// How many accounts a browser remembers having signed in to.
const KNOWN_ACCOUNTS_KEPT: usize = 10;
/// How long it remembers them: 400 days, the longest browsers keep a cookie.
const KNOWN_BROWSER_DAYS: i64 = 400;

impl CookieSettings {
    /// The tag standing for account `user_id` in the known-browser cookie:
    /// HMAC-SHA-256 keyed by the server, cut to 16 bytes, so the cookie
    /// names no account to whoever reads it and cannot be forged. The
    /// account's password hash goes in too: after a new password, every
    /// browser is new again, a taker's included.
    /// `None` when alerts are off.
    pub fn known_browser_tag(&self, user_id: i64, password_hash: &str) -> Option<String> {
        use hmac::{Hmac, KeyInit, Mac};
        let key = self.known_browser_key.as_ref()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(&user_id.to_be_bytes());
        mac.update(password_hash.as_bytes());
        Some(URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]))
    }
}

/// Put in a response's extensions by a completed sign-in: this browser now
/// knows the account whose tag this is (`CookieSettings::known_browser_tag`).
/// The cookie keeps the newest `KNOWN_ACCOUNTS_KEPT` tags and is set only
/// here, never for an anonymous visitor.
pub struct KnownBrowser(pub String);

/// Put in a response's extensions by a right password for an account with
/// a second factor: the id of its challenge (`db::two_factor`), which only
/// this browser holds, for as long as the challenge lasts.
pub struct SecondFactorPending {
    pub id: String,
    pub lasts: std::time::Duration,
}

/// Put in a response's extensions when the challenge ended (completed,
/// expired, or out of attempts): its cookie goes.
pub struct ClearSecondFactor;

/// Put in a response's extensions by the sign-in handler: the new session
/// cookie should outlive the browser. (actix-session sets one lifetime for
/// all cookies; other sessions end when the browser closes.)
pub struct RememberMe;

/// What the cookie layer read from the request, for extractors and pages.
#[derive(Clone, Debug, Default)]
pub struct RequestCookies {
    /// The anonymous CSRF token, valid only if the browser already holds it.
    pub csrf_token: String,
    pub csrf_from_browser: bool,
    pub flash: Option<Flash>,
    /// The return target the sign-in page stored, checked again on reading.
    pub return_to: Option<String>,
    /// A session cookie arrived: with no live session behind it, the
    /// session ended (signed out elsewhere, timed out, or disabled).
    pub session_cookie: bool,
    /// The tags of accounts that signed in in this browser before.
    pub known_accounts: Vec<String>,
    /// The id of this browser's second-factor challenge, if it has one.
    pub second_factor: Option<String>,
}

/// Whether the browser of `req` completed a sign-in to account `user_id`
/// (with this password) before, and the tag standing for it (none, and
/// so no cookie, when alerts are off).
pub fn known_browser(req: &actix_web::HttpRequest, user_id: i64, password_hash: &str) -> (bool, Option<String>) {
    let Some(settings) = req.app_data::<web::Data<CookieSettings>>() else { return (false, None) };
    let Some(tag) = settings.known_browser_tag(user_id, password_hash) else { return (false, None) };
    let known = req.extensions().get::<RequestCookies>().is_some_and(|cookies| cookies.known_accounts.contains(&tag));
    (known, Some(tag))
}

/// Put in a request's extensions by the page that told the person their
/// session ended: the stale session cookie goes, so it is said once.
#[derive(Clone, Copy, Debug)]
pub struct SessionEndNoticed;

/// Middleware: reads (or mints) the anonymous CSRF token and the flash
/// message, and writes them back on the response only when needed.
pub async fn cookie_layer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let settings = req.app_data::<web::Data<CookieSettings>>().cloned().expect("cookie settings");
    if req.path().starts_with("/auth/") {
        // Proxies ask here on behalf of guarded apps, whose browsers get
        // these answers: none of Usher's cookies belong on them.
        return next.call(req).await;
    }
    let known_token = req.cookie(&settings.names.csrf).and_then(|cookie| valid_csrf_token(&settings, cookie));
    let csrf_from_browser = known_token.is_some();
    let csrf_token = known_token.unwrap_or_else(|| URL_SAFE_NO_PAD.encode(random_secret::<32>()));
    let flash = req.cookie(&settings.names.flash).and_then(|cookie| read_flash(&settings, cookie));
    let had_flash = req.cookie(&settings.names.flash).is_some();
    let had_return_to = req.cookie(&settings.names.return_to).is_some();
    let return_to = req.cookie(&settings.names.return_to).and_then(|cookie| read_return_to(&settings, cookie));
    let session_cookie = req.cookie(&settings.names.session).is_some();
    let known_accounts: Vec<String> = req
        .cookie(&settings.names.known_browser)
        .map(|cookie| {
            // Only well-formed tags are kept and sent back: nothing planted in the cookie travels on.
            let tag = |piece: &&str| piece.len() == 22 && URL_SAFE_NO_PAD.decode(piece).is_ok();
            cookie.value().split('.').filter(tag).take(KNOWN_ACCOUNTS_KEPT).map(str::to_owned).collect()
        })
        .unwrap_or_default();
    let cookies = RequestCookies {
        csrf_token: csrf_token.clone(),
        csrf_from_browser,
        flash,
        return_to,
        session_cookie,
        known_accounts: known_accounts.clone(),
        second_factor: req.cookie(&settings.names.second_factor).map(|cookie| cookie.value().to_owned()),
    };
    let had_second_factor = cookies.second_factor.is_some();
    req.extensions_mut().insert(cookies);

    let mut res = next.call(req).await?;

    let target = res.response().extensions().get::<SetReturnTarget>().cloned();
    if let Some(SetReturnTarget(target)) = target {
        res.response_mut().add_cookie(&return_to_cookie(&settings, &target))?;
    } else if had_return_to && res.response().extensions().get::<ClearReturnTarget>().is_some() {
        // Only a cookie the browser has is removed: no needless header on every sign-in.
        res.response_mut().add_cookie(&removal(&settings, settings.names.return_to.clone()))?;
    }
    let pending = res.response().extensions().get::<SecondFactorPending>().map(|p| (p.id.clone(), p.lasts));
    if let Some((id, lasts)) = pending {
        let mut cookie = base_cookie(&settings, settings.names.second_factor.clone(), id);
        cookie.set_max_age(CookieDuration::seconds(lasts.as_secs() as i64));
        res.response_mut().add_cookie(&cookie)?;
    } else if had_second_factor && res.response().extensions().get::<ClearSecondFactor>().is_some() {
        res.response_mut().add_cookie(&removal(&settings, settings.names.second_factor.clone()))?;
    }
    let noticed = res.request().extensions().get::<SessionEndNoticed>().is_some();
    if noticed && res.status().is_success() && res.response().cookies().all(|c| c.name() != settings.names.session) {
        res.response_mut().add_cookie(&removal(&settings, settings.names.session.clone()))?;
    }

    let known = res.response().extensions().get::<KnownBrowser>().map(|KnownBrowser(tag)| tag.clone());
    if let Some(tag) = known {
        let tags = std::iter::once(tag.clone()).chain(known_accounts.into_iter().filter(|known| *known != tag));
        let value = tags.take(KNOWN_ACCOUNTS_KEPT).collect::<Vec<_>>().join(".");
        let mut cookie = base_cookie(&settings, settings.names.known_browser.clone(), value);
        cookie.set_max_age(CookieDuration::days(KNOWN_BROWSER_DAYS));
        res.response_mut().add_cookie(&cookie)?;
    }
    let remember = res.response().extensions().get::<RememberMe>().is_some();
    if remember {
        persist_session_cookie(&mut res, &settings)?;
    }
    set_forward_cookie(&mut res, &settings, remember)?;
    let outgoing_flash = res.response().extensions().get::<Flash>().cloned();
    if let Some(flash) = outgoing_flash {
        res.response_mut().add_cookie(&flash_cookie(&settings, &flash))?;
    } else if had_flash && res.status().is_success() {
        res.response_mut().add_cookie(&removal(&settings, settings.names.flash.clone()))?;
    }
    if !csrf_from_browser && is_html(&res) {
        res.response_mut().add_cookie(&csrf_cookie(&settings, &csrf_token))?;
    }
    Ok(res)
}

/// Sets or removes the forward-auth cookie as the handler asked.
fn set_forward_cookie<B>(
    res: &mut ServiceResponse<B>,
    settings: &CookieSettings,
    remember: bool,
) -> Result<(), actix_web::Error> {
    let Some(forward) = &settings.forward else { return Ok(()) };
    let issued = res.response().extensions().get::<IssueForwardCookie>().map(|IssueForwardCookie(id)| id.clone());
    let cleared = res.response().extensions().get::<ClearForwardCookie>().is_some();
    let mut cookie = match (issued, cleared) {
        (Some(id), _) => base_cookie(settings, forward.name.clone(), id),
        (None, true) => removal(settings, forward.name.clone()),
        (None, false) => return Ok(()),
    };
    if let Some(domain) = &forward.domain {
        cookie.set_domain(domain.clone());
    }
    if remember {
        cookie.set_max_age(CookieDuration::seconds(settings.remember_for.as_secs() as i64));
    }
    res.response_mut().add_cookie(&cookie)?;
    Ok(())
}

fn persist_session_cookie<B>(res: &mut ServiceResponse<B>, settings: &CookieSettings) -> Result<(), actix_web::Error> {
    let (name, max_age) = (settings.names.session.as_str(), settings.remember_for);
    let session_cookie = res.response().cookies().find(|cookie| cookie.name() == name).map(|c| c.into_owned());
    if let Some(mut cookie) = session_cookie {
        cookie.set_max_age(CookieDuration::seconds(max_age.as_secs() as i64));
        res.response_mut().del_cookie(name);
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(())
}

fn is_html<B>(res: &ServiceResponse<B>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

fn base_cookie(settings: &CookieSettings, name: String, value: String) -> Cookie<'static> {
    Cookie::build(name, value).path("/").http_only(true).secure(settings.secure).same_site(SameSite::Lax).finish()
}

/// `cookie` with our signature added.
fn signed(settings: &CookieSettings, cookie: Cookie<'static>) -> Cookie<'static> {
    let name = cookie.name().to_owned();
    let mut jar = CookieJar::new();
    jar.signed_mut(&settings.key).add(cookie);
    jar.get(&name).cloned().expect("cookie just added")
}

/// The value of a cookie we signed, if the signature holds.
fn verified_value(settings: &CookieSettings, cookie: Cookie<'static>) -> Option<String> {
    let name = cookie.name().to_owned();
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    jar.signed(&settings.key).get(&name).map(|verified| verified.value().to_owned())
}

fn csrf_cookie(settings: &CookieSettings, token: &str) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, settings.names.csrf.clone(), format!("{token}.{}", now()));
    cookie.set_max_age(CookieDuration::seconds(CSRF_LIFETIME_SECS));
    signed(settings, cookie)
}

/// The token inside a cookie we signed, if it has not expired.
fn valid_csrf_token(settings: &CookieSettings, cookie: Cookie<'static>) -> Option<String> {
    let verified = verified_value(settings, cookie)?;
    let (token, issued_at) = verified.rsplit_once('.')?;
    let age = now() - issued_at.parse::<i64>().ok()?;
    (0..CSRF_LIFETIME_SECS).contains(&age).then(|| token.to_owned())
}

fn flash_cookie(settings: &CookieSettings, flash: &Flash) -> Cookie<'static> {
    let json = serde_json::to_string(flash).expect("flash serialises");
    let mut cookie = base_cookie(settings, settings.names.flash.clone(), json);
    cookie.set_max_age(CookieDuration::minutes(10));
    let mut jar = CookieJar::new();
    jar.private_mut(&settings.key).add(cookie);
    jar.get(&settings.names.flash).cloned().expect("cookie just added")
}

fn read_flash(settings: &CookieSettings, cookie: Cookie<'static>) -> Option<Flash> {
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let decrypted = jar.private(&settings.key).get(&settings.names.flash)?;
    serde_json::from_str(decrypted.value()).ok()
}

/// The return target, signed (it is no secret, but must be ours), for the
/// browser's session. Base64url-encoded: a path may hold `%`, `;` or
/// spaces, which a cookie value cannot carry as they are.
fn return_to_cookie(settings: &CookieSettings, target: &str) -> Cookie<'static> {
    signed(settings, base_cookie(settings, settings.names.return_to.clone(), URL_SAFE_NO_PAD.encode(target)))
}

fn read_return_to(settings: &CookieSettings, cookie: Cookie<'static>) -> Option<String> {
    let encoded = verified_value(settings, cookie)?;
    let target = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    settings.guarded_apps.target(&target)
}

fn removal(settings: &CookieSettings, name: String) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, name, String::new());
    cookie.make_removal();
    cookie
}
