use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::NoFields;
use crate::auth::{SessionData, SessionStart};
use crate::db::audit::{self, Event, EventKind};
use crate::db::now;
use crate::db::two_factor::{self, Challenge};
use crate::db::users::User;
use crate::domain::{EmailAddress, SignInBlock, normalize_password, random_secret};
use crate::mail::MailKind;
use crate::mail::messages::{EventFacts, lifetime, queue_notice};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::cookies::{
    ClearForwardCookie, CookieSettings, IssueForwardCookie, KnownBrowser, SecondFactorPending, known_browser,
};
use crate::web::forms::SignInForm;
use crate::web::return_to::{
    ClearReturnTarget, DEFAULT_RETURN, SetReturnTarget, lead_on, safe_path, stored_return_target,
};
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect, redirect_with_flash, render};

const INVALID_CREDENTIALS: &str = "Invalid email or password.";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// The guarded app's URL a proxy sent the browser from (`routes::forward_auth`).
    rd: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    remember_me: Option<String>,
    /// A form elsewhere may name the target itself; the stored one wins.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage {
    ctx: PageContext,
    email: String,
    remember_me: bool,
    /// How long "keep me signed in" lasts, in words.
    remember_for: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/sign_in_blocked.html")]
struct SignInBlockedPage {
    ctx: PageContext,
    title: &'static str,
    message: &'static str,
}

/// How long "keep me signed in" lasts, in words.
fn remember_for(state: &AppState) -> String {
    lifetime(state.config.settings.session_remember_ttl)
}

/// The sign-in form. `next` (a same-site path) or `rd` (a guarded app's
/// URL) names where to return; it is kept in a signed cookie until sign-in
/// completes, and a visit without it forgets an older one. Someone signed
/// in already goes straight on, with a new forward-auth cookie when bound
/// for a guarded app (the one they had may be gone).
pub async fn show(
    req: HttpRequest,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let apps = &cookie_settings(&req).guarded_apps;
    let requested = match (&query.next, &query.rd) {
        (Some(next), _) => safe_path(next).map(str::to_owned),
        (None, Some(rd)) => apps.allows(rd),
        (None, None) => None,
    };
    if ctx.signed_in {
        let target = requested.or_else(|| stored_return_target(&req)).unwrap_or_else(|| DEFAULT_RETURN.to_owned());
        let mut response = redirect(&target);
        if safe_path(&target).is_none() {
            issue_forward_cookie(&req, &mut response)?;
            if SessionData::of(&req).remembered() {
                // The new cookie lasts as the session does.
                response.extensions_mut().insert(crate::web::cookies::RememberMe);
            }
        }
        return Ok(response);
    }
    let email = ctx.flash_email();
    let mut response = render(
        StatusCode::OK,
        &LoginPage {
            ctx,
            email,
            remember_me: false,
            remember_for: remember_for(&state),
            errors: FormErrors::default(),
        },
    );
    match requested {
        Some(target) => drop(response.extensions_mut().insert(SetReturnTarget(target))),
        None if stored_return_target(&req).is_some() => drop(response.extensions_mut().insert(ClearReturnTarget)),
        None => {}
    }
    Ok(response)
}

fn cookie_settings(req: &HttpRequest) -> web::Data<CookieSettings> {
    req.app_data::<web::Data<CookieSettings>>().cloned().expect("cookie settings")
}

/// Gives this browser's session a new forward-auth cookie, when forward
/// authentication is on.
fn issue_forward_cookie(req: &HttpRequest, response: &mut HttpResponse) -> Result<(), AppError> {
    if cookie_settings(req).forward.is_some() {
        let id = SessionData::issue_forward_id(req).map_err(|e| AppError::Internal(e.into()))?;
        response.extensions_mut().insert(IssueForwardCookie(id));
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "pages/continue.html")]
struct ContinuePage {
    ctx: PageContext,
    target: String,
    host: String,
}

/// `GET /login/continue?rd=URL`: the same-origin page between a sign-in's
/// POST and a guarded app, which a redirect from the POST could not reach
/// under the CSP's `form-action 'self'`. It leads on by a link and a
/// `<meta http-equiv="refresh">`, only to a guarded app's URL.
pub async fn continue_to_app(req: HttpRequest, ctx: PageContext, query: web::Query<NextQuery>) -> HttpResponse {
    let target = query.rd.as_deref().and_then(|rd| cookie_settings(&req).guarded_apps.allows(rd));
    let Some(target) = target.filter(|_| ctx.signed_in) else { return redirect(DEFAULT_RETURN) };
    let host = url::Url::parse(&target).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default();
    render(StatusCode::OK, &ContinuePage { ctx, target, host })
}

/// A wrong password and an unknown address get the same answer after the
/// same work (an Argon2 check against a dummy hash).
pub async fn submit(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    SignInForm(form): SignInForm<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let remember = form.remember_me.is_some();
    let email = EmailAddress::parse(&form.email).ok();
    // Throttled by what was typed, normalised, whether or not it has an account.
    let address = email.as_ref().map_or_else(|| form.email.trim().to_lowercase(), |email| email.as_str().to_owned());
    // Counted as a failure before the password is checked, so parallel
    // guesses cannot all slip under the limit; taken back when it is right.
    let hits = state
        .rate_limit(vec![Bucket::SignInAddress(address.clone()), Bucket::SignInIp(client.ip.clone())])
        .await
        .map_err(AppError::as_sign_in_lockout)?;
    // Whether it has a second factor is read with the account, so the
    // password step takes the same time either way.
    let (user, second_factor) = match email {
        Some(email) => {
            state
                .db
                .run(move |conn| {
                    let user = User::find_by_email(conn, email.as_str())?;
                    let second_factor = match &user {
                        Some(user) => two_factor::is_enabled(conn, user.id)?,
                        None => false,
                    };
                    Ok((user, second_factor))
                })
                .await?
        }
        None => (None, false),
    };
    let checked =
        state.hasher.verify(normalize_password(&form.password), user.as_ref().map(|u| u.password_hash.clone()));
    let password_matches = match checked.await {
        Ok(matches) => matches,
        Err(busy_or_broken) => {
            // Shed before the password was checked: that was no guess.
            let throttle = state.throttle;
            state.db.run(move |conn| throttle.release(conn, &hits)).await?;
            return Err(busy_or_broken.into());
        }
    };
    let known = user.as_ref().map(|user| user.id);
    let Some(user) = user.filter(|_| password_matches) else {
        record(&state, EventKind::SignInFailed, known, &client.ip, address, Settle::KeepCounted).await?;
        return Ok(wrong_credentials(ctx, &state, form.email, remember));
    };
    let settings = &state.config.settings;
    if let Some(block) =
        user.state().sign_in_block(settings.require_email_verification, settings.require_admin_approval)
    {
        let settle = Settle::Release(hits);
        record(&state, EventKind::SignInFailed, Some(user.id), &client.ip, block.describe().to_owned(), settle).await?;
        if block == SignInBlock::EmailUnverified {
            let flash = Flash::warning("Confirm your email address first. We can send you a new link and code.");
            return Ok(redirect_with_flash("/verify/resend", flash.with_email(user.email)));
        }
        return Ok(blocked_page(ctx, block));
    }
    let posted = form.next.as_deref().and_then(safe_path).map(str::to_owned);
    if second_factor {
        let mut response = ask_for_second_factor(&state, user.id, remember, hits).await?;
        if let Some(target) = posted.filter(|_| stored_return_target(&req).is_none()) {
            // Kept where the code step finds it, as the sign-in page keeps `?next=`.
            response.extensions_mut().insert(SetReturnTarget(target));
        }
        return Ok(response);
    }
    let proof = SecondFactor::NotOn;
    match complete_sign_in(&req, &state, client, user, remember, hits, posted, proof).await? {
        Some(response) => Ok(response),
        // Deleted while its password was checked: as if it never existed.
        None => Ok(wrong_credentials(ctx, &state, form.email, remember)),
    }
}

/// How long a right password waits for its second factor.
const SECOND_FACTOR_WAIT: Duration = Duration::from_secs(5 * 60);

/// A right password for an account with a second factor: no session yet,
/// only a challenge this browser holds (`SECOND_FACTOR_WAIT`), and the
/// code page. The address's failures stay counted until the code is right.
async fn ask_for_second_factor(
    state: &AppState,
    user_id: i64,
    remember: bool,
    hits: Vec<i64>,
) -> Result<HttpResponse, AppError> {
    let id = URL_SAFE_NO_PAD.encode(random_secret::<32>());
    let now = now();
    let challenge = Challenge {
        id_hash: Sha256::digest(id.as_bytes()).to_vec(),
        user_id,
        remember,
        created_at: now,
        expires_at: now + SECOND_FACTOR_WAIT.as_secs() as i64,
    };
    let throttle = state.throttle;
    state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                // A right password is no guess.
                throttle.release(conn, &hits)?;
                two_factor::open_challenge(conn, &challenge)
            })
        })
        .await?;
    let mut response = redirect("/login/two-factor");
    response.extensions_mut().insert(SecondFactorPending { id, lasts: SECOND_FACTOR_WAIT });
    Ok(response)
}

/// Whether the sign-in proved a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SecondFactor {
    /// The account had none when its password was checked.
    NotOn,
    /// A code was proven (`sign_in_code`).
    Proven,
}

/// Completes a sign-in once every factor is proven: records it (forgiving
/// the address's failures and `hits`), mails a new-browser alert when due,
/// starts the session under a new id, and leads on to the stored return
/// target (else `posted`, else the account page). `None`, with nothing
/// done, when the account was deleted meanwhile, or (`NotOn`) turned a
/// second factor on while its password was checked.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete_sign_in(
    req: &HttpRequest,
    state: &AppState,
    client: ClientInfo,
    user: User,
    remember: bool,
    hits: Vec<i64>,
    posted: Option<String>,
    second_factor: SecondFactor,
) -> Result<Option<HttpResponse>, AppError> {
    // A browser that never completed a sign-in to this account gets the
    // owner a notice, except the first sign-in after signing up.
    let (known, tag) = known_browser(req, user.id, &user.password_hash);
    let alert = (state.config.settings.sign_in_alerts && !known && user.last_sign_in_at.is_some()).then(|| {
        let facts = super::transition_context(&state.config, &client).facts();
        (user.email.clone(), facts)
    });
    let alerted = alert.is_some();
    let settle = Settle::Forgive { hits, address: user.email.clone(), alert, second_factor };
    if !record(state, EventKind::SignedIn, Some(user.id), &client.ip, String::new(), settle).await? {
        return Ok(None);
    }
    if alerted {
        state.mail.wake();
    }
    SessionData::start(req, SessionStart { user_id: user.id, remember, user_agent: client.user_agent, ip: client.ip })
        .map_err(|e| AppError::Internal(e.into()))?;
    let target = stored_return_target(req).or(posted).unwrap_or_else(|| DEFAULT_RETURN.to_owned());
    let mut response = lead_on(&target);
    response.extensions_mut().insert(ClearReturnTarget);
    issue_forward_cookie(req, &mut response)?;
    if remember {
        response.extensions_mut().insert(crate::web::cookies::RememberMe);
    }
    if let Some(tag) = tag {
        response.extensions_mut().insert(KnownBrowser(tag));
    }
    Ok(Some(response))
}

pub(super) fn blocked_page(ctx: PageContext, block: SignInBlock) -> HttpResponse {
    let (title, message) = match block {
        SignInBlock::AwaitingApproval => (
            "Awaiting approval",
            "Your address is confirmed. An administrator still has to approve your account; we will email you when they do.",
        ),
        SignInBlock::Rejected => ("Not approved", "An administrator did not approve this account."),
        SignInBlock::Disabled => ("Account disabled", "This account has been disabled by an administrator."),
        SignInBlock::EmailUnverified => ("Confirm your email", "Confirm your email address first."),
    };
    render(StatusCode::FORBIDDEN, &SignInBlockedPage { ctx, title, message })
}

/// Ends the session. A browser whose session already ended (in another
/// tab, or by the idle timeout) lands signed out as well: there is nothing
/// left to protect, so its stale CSRF token does not matter.
pub async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    client: ClientInfo,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(user_id) = SessionData::of(&req).user_id() else {
        return Ok(redirect_with_flash("/", Flash::info("You are signed out.")));
    };
    Form::<NoFields>::from_request(&req, &mut payload.into_inner()).await?;
    record(&state, EventKind::SignedOut, Some(user_id), &client.ip, String::new(), Settle::KeepCounted).await?;
    SessionData::end(&req);
    let mut response = redirect_with_flash("/", Flash::info("You are signed out."));
    response.extensions_mut().insert(ClearForwardCookie);
    Ok(response)
}

/// The answer to a wrong address or password: the form again, with what
/// was typed, the same for both.
fn wrong_credentials(ctx: PageContext, state: &AppState, email: String, remember_me: bool) -> HttpResponse {
    let errors = FormErrors::one("email", INVALID_CREDENTIALS);
    let page = LoginPage { ctx, email, remember_me, remember_for: remember_for(state), errors };
    render(StatusCode::UNAUTHORIZED, &page)
}

/// What becomes of the attempt counted before the password was checked.
enum Settle {
    /// A wrong password: it stays counted.
    KeepCounted,
    /// The right password, but the account may not sign in (yet): no guess.
    Release(Vec<i64>),
    /// Signed in: no guess, the address's earlier failures are forgotten,
    /// the moment is kept as the account's last sign-in, and `alert` (the
    /// account's address and what to tell) queues a new-browser notice.
    Forgive { hits: Vec<i64>, address: String, alert: Option<(String, EventFacts)>, second_factor: SecondFactor },
}

/// Records a sign-in event about an account (or an address without one)
/// and settles the counted attempt, in one transaction. A completed
/// sign-in first locks the account: false, with nothing recorded, when it
/// was deleted while its password was being checked, or turned a second
/// factor on then while none was proven.
async fn record(
    state: &AppState,
    kind: EventKind,
    user_id: Option<i64>,
    ip: &str,
    detail: String,
    settle: Settle,
) -> Result<bool, AppError> {
    let (ip, throttle, config) = (ip.to_owned(), state.throttle, state.config.clone());
    let recorded = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                if let (Settle::Forgive { second_factor, .. }, Some(id)) = (&settle, user_id) {
                    let unproven = *second_factor == SecondFactor::NotOn;
                    if !User::lock(conn, id)? || (unproven && two_factor::is_enabled(conn, id)?) {
                        return Ok(false);
                    }
                }
                audit::record(conn, Event { kind, user_id, actor_id: user_id, ip: &ip, detail: &detail }, now())?;
                match &settle {
                    Settle::KeepCounted => {}
                    Settle::Release(hits) => throttle.release(conn, hits)?,
                    Settle::Forgive { hits, address, alert, .. } => {
                        if let Some(id) = user_id {
                            User::record_sign_in(conn, id, now())?;
                            if let Some((email, facts)) = alert {
                                queue_notice(conn, MailKind::NewSignIn, email, id, facts, &config)?;
                            }
                        }
                        throttle.release(conn, hits)?;
                        throttle.clear(conn, &Bucket::SignInAddress(address.clone()))?;
                    }
                }
                Ok(true)
            })
        })
        .await?;
    Ok(recorded)
}
