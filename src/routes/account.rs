//! The signed-in user's own page: who they are, where they are signed in,
//! and changing the password.

use super::transition_context;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::NoFields;
use crate::accounts::{self, EndSessions, PasswordSet};
use crate::auth::prefetch::{PageData, PageNeed, Prefetched};
use crate::auth::{Reauthenticated, SessionData, SignedInUser};
use crate::db::now;
use crate::db::sessions::SessionListing;
use crate::db::users::User;
use crate::domain::{EmailAddress, describe_browser, normalize_password};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::cookies::{KnownBrowser, known_browser};
use crate::web::{
    AppError, ClientInfo, Flash, Form, FormErrors, Moment, PageContext, redirect, redirect_with_flash, render,
};

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    current_password: String,
    password: String,
    password_confirm: String,
}

/// One row of the sessions table on the page.
struct SessionView {
    /// Names the session in `/account/sessions/{id}/revoke`; not a secret.
    public_id: String,
    started: Moment,
    last_seen: Moment,
    /// "Firefox on Linux"; the raw `User-Agent` is in `user_agent`.
    browser: String,
    user_agent: String,
    ip: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    ctx: PageContext,
    email: String,
    status: String,
    is_admin: bool,
    /// This browser's session first, then the others, most recent first.
    sessions: Vec<SessionView>,
    /// A change of address waiting for its confirmation.
    pending_change: Option<super::email_change::PendingView>,
    /// Two-step sign-in is on.
    two_factor: bool,
    /// The password change form's mistakes.
    errors: FormErrors,
}

/// The sessions as the page lists them: this browser's first.
fn session_views(rows: Vec<SessionListing>, current: Option<&str>) -> Vec<SessionView> {
    let now = now();
    let mut views: Vec<SessionView> = rows
        .into_iter()
        .map(|row| SessionView {
            started: Moment::new(row.created_at, now),
            last_seen: Moment::new(row.last_seen_at, now),
            current: current == Some(row.public_id.as_str()),
            browser: describe_browser(&row.user_agent),
            public_id: row.public_id,
            user_agent: row.user_agent,
            ip: row.ip,
        })
        .collect();
    // Stable: the others keep their most-recent-first order.
    views.sort_by_key(|view| !view.current);
    views
}

async fn account_page(
    req: &HttpRequest,
    ctx: PageContext,
    state: &AppState,
    user_id: i64,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let session = SessionData::of(req);
    let Some(account) = session.account() else {
        return Ok(redirect("/login"));
    };
    let overview = match Prefetched::take(req) {
        Some(overview) => overview,
        // Not read with the session (a form's answer): a read of its own,
        // which on a connection the server closed simply runs again.
        None => {
            let need = PageNeed::AccountOverview;
            let PageData::AccountOverview(overview) =
                state.db.run_idempotent(move |conn| need.fetch(conn, user_id, now())).await?;
            overview
        }
    };
    let page = AccountPage {
        ctx,
        pending_change: overview.pending_change.map(super::email_change::PendingView::from),
        email: account.email,
        status: account.status,
        is_admin: account.is_admin,
        sessions: session_views(overview.sessions, session.public_id().as_deref()),
        two_factor: account.two_factor,
        errors,
    };
    Ok(render(status, &page))
}

pub async fn show(
    req: HttpRequest,
    user: SignedInUser,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    account_page(&req, ctx, &state, user.user_id, StatusCode::OK, FormErrors::default()).await
}

/// Needs the current password; keeps this session under a new id and ends
/// the others.
pub async fn change_password(
    req: HttpRequest,
    user: SignedInUser,
    client: ClientInfo,
    ctx: PageContext,
    state: web::Data<AppState>,
    Form(form): Form<ChangePasswordForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let Some(account) = state.db.run(move |conn| User::find(conn, user_id)).await? else {
        return Ok(redirect("/login"));
    };
    // Guessing the current password here counts like failed sign-ins.
    let hits = state.rate_limit(vec![Bucket::SignInAddress(account.email.clone())]).await?;
    let current_ok =
        state.hasher.verify(normalize_password(&form.current_password), Some(account.password_hash.clone())).await?;
    let mut errors = FormErrors::default();
    if current_ok {
        let throttle = state.throttle;
        state.db.run(move |conn| throttle.release(conn, &hits)).await?;
    } else {
        errors.add("current_password", "Your current password is not right.");
    }
    let email = EmailAddress::parse(&account.email).ok();
    let password = state
        .check_new_password(&form.password, &form.password_confirm, email.as_ref())
        .await?
        .map_err(|problems| errors.add_password_problems(problems))
        .ok();
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return account_page(&req, ctx, &state, user_id, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    };
    let password_hash = state.hasher.hash(password).await?;
    // This browser knew the old password: signing in here next is no news.
    let (_, tag) = known_browser(&req, account.id, &password_hash);
    let keep = SessionData::of(&req).public_id().unwrap_or_default();
    let config = state.config.clone();
    let ended = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                User::lock(conn, account.id)?;
                let how = PasswordSet::Change { keep_session: &keep };
                let ctx = transition_context(&config, &client);
                accounts::set_password(conn, &account, &password_hash, how, ctx)
            })
        })
        .await?;
    state.mail.wake();
    SessionData::renew(&req).map_err(|e| AppError::Internal(e.into()))?;
    // The current password was just typed: it counts as "confirm it's you".
    SessionData::mark_reauthenticated(&req).map_err(|e| AppError::Internal(e.into()))?;
    let flash = match ended {
        0 => "Your password was changed.".to_owned(),
        1 => "Your password was changed. Your other session was signed out.".to_owned(),
        n => format!("Your password was changed. Your {n} other sessions were signed out."),
    };
    let mut response = redirect_with_flash("/account", Flash::success(flash));
    if let Some(tag) = tag {
        response.extensions_mut().insert(KnownBrowser(tag));
    }
    Ok(response)
}

/// `POST /account/sessions/revoke-others`, after "confirm it's you".
pub async fn revoke_other_sessions(
    req: HttpRequest,
    user: Reauthenticated,
    client: ClientInfo,
    state: web::Data<AppState>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let keep = SessionData::of(&req).public_id().unwrap_or_default();
    let config = state.config.clone();
    let ended = state
        .db
        .run(move |conn| {
            let ctx = transition_context(&config, &client);
            conn.write(|conn| accounts::end_sessions(conn, user.user_id, EndSessions::AllBut(&keep), ctx))
        })
        .await?;
    let flash = match ended {
        0 => Flash::info("There were no other sessions."),
        1 => Flash::success("Signed out 1 other session."),
        n => Flash::success(format!("Signed out {n} other sessions.")),
    };
    Ok(redirect_with_flash("/account", flash))
}

/// `POST /account/sessions/{id}/revoke`, after "confirm it's you": ends one
/// session of this account, named by its public id. Another account's
/// session, or one already gone, is "not found" alike. This browser's own
/// session is simply signed out.
pub async fn revoke_session(
    req: HttpRequest,
    user: Reauthenticated,
    client: ClientInfo,
    state: web::Data<AppState>,
    id: web::Path<String>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let config = state.config.clone();
    let this_browser = SessionData::of(&req).public_id().as_deref() == Some(id.as_str());
    let ended = state
        .db
        .run(move |conn| {
            let ctx = transition_context(&config, &client);
            conn.write(|conn| accounts::end_sessions(conn, user.user_id, EndSessions::One(&id), ctx))
        })
        .await?;
    if ended == 0 {
        return Err(AppError::NotFound);
    }
    if this_browser {
        SessionData::end(&req);
        return Ok(redirect_with_flash("/", Flash::info("You are signed out.")));
    }
    Ok(redirect_with_flash("/account", Flash::success("That session was signed out.")))
}
