//! `GET /auth/forward` (Caddy `forward_auth`, Traefik `forwardAuth`) and
//! `GET /auth/request` (nginx `auth_request`): a proxy asks whether the
//! request it holds for a guarded app may pass, and who sent it.
//!
//! Answers: 200 with the identity headers (`Remote-User`, `Remote-Email`,
//! `Remote-Groups`) to let it pass; not signed in, a way to Usher's sign-in
//! page that leads back (`/login?rd=<original URL>`); signed in but not
//! allowed, 403. The check hashes no password, and writes only what a page
//! of Usher's would: the session's sliding expiry, or its end when the
//! account may no longer sign in.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::auth::forward_auth_account;
use crate::db::sessions::ForwardSession;
use crate::domain::SignInBlock;
use crate::forward_auth::{Denial, Identity, OriginalRequest, Policy, Standing, Verdict, judge};
use crate::state::AppState;
use crate::web::AppError;
use crate::web::client::is_trusted_proxy;
use crate::web::cookies::CookieSettings;
use crate::web::pages::site_name;

/// Which proxy's conventions an answer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proxy {
    /// Caddy and Traefik pass any answer but a 2xx on to the browser.
    Forward,
    /// nginx understands only 2xx, 401 and 403 from its sub-request.
    AuthRequest,
}

/// `GET /auth/forward`, for Caddy and Traefik.
pub async fn forward(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    answer(&req, &state, Proxy::Forward).await
}

/// `GET /auth/request`, for nginx `auth_request`.
pub async fn request(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    answer(&req, &state, Proxy::AuthRequest).await
}

async fn answer(req: &HttpRequest, state: &AppState, proxy: Proxy) -> Result<HttpResponse, AppError> {
    let Some(rules) = &state.config.access_rules else { return Err(AppError::NotFound) };
    let trusted =
        req.peer_addr().is_some_and(|peer| is_trusted_proxy(&state.config.settings.trusted_proxies, peer.ip()));
    if !trusted {
        tracing::info!(peer = ?req.peer_addr(), "forward authentication asked by a peer outside USHER_TRUSTED_PROXIES");
        return Ok(plain(
            StatusCode::FORBIDDEN,
            "Usher answers forward-authentication requests only from USHER_TRUSTED_PROXIES.",
        ));
    }
    let header = |name: &str| req.headers().get(name).and_then(|value| value.to_str().ok());
    let original = match proxy {
        Proxy::Forward => OriginalRequest::from_forwarded(header),
        Proxy::AuthRequest => OriginalRequest::from_original_url(header),
    };
    let original = match original {
        Ok(original) => original,
        Err(problem) => {
            tracing::info!(%problem, "forward authentication refused a request it cannot judge");
            return Ok(denied(state, req, &Denial::Unjudgeable(problem.to_string())));
        }
    };
    let rule = match rules.rule_for(&original) {
        Ok(rule) => rule,
        Err(problem) => return Ok(denied(state, req, &Denial::Unjudgeable(problem))),
    };
    let verdict = match rule.map(|rule| &rule.policy) {
        None => Verdict::Deny(Denial::NoRule),
        Some(Policy::Bypass) => Verdict::Allow(None),
        Some(policy) => judge(policy, signed_in(req, state).await?),
    };
    Ok(match verdict {
        Verdict::Allow(identity) => allowed(identity),
        Verdict::SignIn => sign_in_first(state, req, proxy, &original),
        Verdict::Deny(denial) => denied(state, req, &denial),
    })
}

/// Who the forward-auth cookie says is signed in, and how their account stands.
async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Option<(Identity, Standing)>, AppError> {
    let settings = req.app_data::<web::Data<CookieSettings>>().and_then(|settings| settings.forward.clone());
    let Some(cookie) = settings.and_then(|forward| req.cookie(&forward.name)) else { return Ok(None) };
    let forward_id = cookie.value().to_owned();
    let policy = state.config.session_policy();
    let found = state.db.run_idempotent(move |conn| forward_auth_account(conn, &forward_id, policy)).await?;
    let Some(ForwardSession { user, two_factor_since, groups, .. }) = found else { return Ok(None) };
    let two_factor = two_factor_since.is_some();
    // Stricter than Usher's own pages, whatever the operator requires there.
    let standing = match user.state().sign_in_block(true, true) {
        Some(block) => Standing::Blocked(block),
        None if state.config.settings.require_two_factor.applies_to(user.is_admin) && !two_factor => {
            Standing::TwoFactorDue
        }
        None => Standing::Ready,
    };
    Ok(Some((Identity::new(user.id, user.email, user.is_admin, groups), standing)))
}

/// 200: let it pass, with who asks when known. Proxies copy these headers
/// onto the request to the app (and must drop any the client sent).
fn allowed(identity: Option<Identity>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(identity) = identity {
        response
            .insert_header(("Remote-User", identity.user_id.to_string()))
            .insert_header(("Remote-Email", identity.email))
            .insert_header(("Remote-Groups", identity.groups.join(",")));
    }
    response.finish()
}

/// Not signed in. Caddy and Traefik pass a redirect to the browser (302,
/// or 303 so a form's POST becomes a GET of the sign-in page); a script
/// asking for JSON gets 401 to handle itself. nginx turns a redirect from
/// its sub-request into an error, so it gets 401 and the way in as
/// `Location`, which its `error_page 401` sends the browser to.
fn sign_in_first(state: &AppState, req: &HttpRequest, proxy: Proxy, original: &OriginalRequest) -> HttpResponse {
    let query = serde_urlencoded::to_string([("rd", original.url())]).unwrap_or_default();
    let sign_in = state.config.link(&format!("/login?{query}"));
    let status = match proxy {
        Proxy::AuthRequest => StatusCode::UNAUTHORIZED,
        Proxy::Forward if wants_json(req) => StatusCode::UNAUTHORIZED,
        Proxy::Forward if original.method == "GET" || original.method == "HEAD" => StatusCode::FOUND,
        Proxy::Forward => StatusCode::SEE_OTHER,
    };
    let mut response = plain(status, "Sign in first.");
    if let Ok(location) = header::HeaderValue::from_str(&sign_in) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether the browser's request was a script's asking for JSON, which
/// cannot follow a redirect to a sign-in page.
fn wants_json(req: &HttpRequest) -> bool {
    let accepts = req.headers().get(header::ACCEPT).and_then(|value| value.to_str().ok());
    accepts.is_some_and(|accept| accept.contains("application/json")) || req.headers().contains_key("x-requested-with")
}

#[derive(Template)]
#[template(path = "pages/forward_denied.html")]
struct DeniedPage<'a> {
    site_name: &'static str,
    /// Usher's own origin: the page is shown on the guarded app's host, so
    /// its links and stylesheet are absolute.
    usher: &'a str,
    message: String,
    set_up_two_factor: bool,
}

/// 403 with a page in plain words (or plain text to a script).
fn denied(state: &AppState, req: &HttpRequest, denial: &Denial) -> HttpResponse {
    let message = match denial {
        Denial::NoRule => "No access rule lets anyone open this address.".to_owned(),
        Denial::NotInGroups(groups) => format!(
            "You are signed in, but this page is only for members of {}. Ask an administrator to add you.",
            groups.join(" or ")
        ),
        Denial::TwoFactorFirst => "Set up two-step sign-in on your account before opening this page.".to_owned(),
        Denial::NotReady(SignInBlock::EmailUnverified) => {
            "Confirm your email address first: open the link we emailed you.".to_owned()
        }
        Denial::NotReady(SignInBlock::AwaitingApproval) => {
            "An administrator has not approved your account yet; we will email you when they do.".to_owned()
        }
        Denial::NotReady(_) => "Your account may not open this page.".to_owned(),
        Denial::Unjudgeable(problem) => format!("This address cannot be checked: {problem}."),
    };
    if wants_json(req) {
        return plain(StatusCode::FORBIDDEN, &message);
    }
    let usher = state.config.public_url.origin().ascii_serialization();
    let page = DeniedPage {
        site_name: site_name(),
        usher: &usher,
        message,
        set_up_two_factor: *denial == Denial::TwoFactorFirst,
    };
    let mut response = crate::web::render(StatusCode::FORBIDDEN, &page);
    // Usher's stylesheet comes from Usher's origin, not the app's.
    let policy = format!(
        "default-src 'none'; style-src {usher}; img-src {usher}; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    );
    if let Ok(policy) = header::HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

fn plain(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(format!("{message}\n"))
}
