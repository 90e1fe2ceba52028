//! "Confirm it's you": the password typed again before a sensitive action
//! (ASVS 3.7.1). A page that needs it sends the person here
//! (`/account/reauth?next=…`); the target waits in the return-target cookie
//! and the confirmed person goes back to it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::{SessionData, SignedInUser};
use crate::db::audit::{self, Event, EventKind};
use crate::db::now;
use crate::db::users::User;
use crate::domain::normalize_password;
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::return_to::{
    ClearReturnTarget, DEFAULT_RETURN, SetReturnTarget, lead_on, safe_path, stored_return_target,
};
use crate::web::{AppError, ClientInfo, Form, FormErrors, PageContext, redirect, render};

#[derive(Deserialize)]
pub struct ReauthQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct ReauthForm {
    password: String,
}

#[derive(Template)]
#[template(path = "pages/reauth.html")]
struct ReauthPage {
    ctx: PageContext,
    email: String,
    /// How long a confirmation lasts, in words.
    lasts: String,
    errors: FormErrors,
}

fn page(ctx: PageContext, state: &AppState, email: String, status: StatusCode, errors: FormErrors) -> HttpResponse {
    let lasts = crate::mail::messages::lifetime(state.config.settings.reauth_ttl);
    render(status, &ReauthPage { ctx, email, lasts, errors })
}

/// `GET /account/reauth?next=…`: asks for the password. `next` (a
/// same-site path) is kept in the return-target cookie.
pub async fn show(
    req: HttpRequest,
    _user: SignedInUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<ReauthQuery>,
) -> HttpResponse {
    let email = SessionData::of(&req).account().map(|account| account.email).unwrap_or_default();
    let mut response = page(ctx, &state, email, StatusCode::OK, FormErrors::default());
    if let Some(target) = query.next.as_deref().and_then(safe_path) {
        response.extensions_mut().insert(SetReturnTarget(target.to_owned()));
    }
    response
}

/// `POST /account/reauth`: a right password marks the session confirmed
/// now and returns to the waiting page. Guesses count in the sign-in
/// throttle of the account's address, like failed sign-ins.
pub async fn submit(
    req: HttpRequest,
    user: SignedInUser,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<ReauthForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let Some(account) = state.db.run(move |conn| User::find(conn, user_id)).await? else {
        return Ok(redirect("/login"));
    };
    let hits = state
        .rate_limit(vec![Bucket::SignInAddress(account.email.clone())])
        .await
        .map_err(AppError::as_sign_in_lockout)?;
    let right = state.hasher.verify(normalize_password(&form.password), Some(account.password_hash.clone())).await?;
    let (throttle, ip) = (state.throttle, client.ip);
    let kind = if right { EventKind::Reauthenticated } else { EventKind::SignInFailed };
    state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let detail = if right { "" } else { "confirming it was them" };
                let event = Event { kind, user_id: Some(user_id), actor_id: Some(user_id), ip: &ip, detail };
                audit::record(conn, event, now())?;
                if right { throttle.release(conn, &hits) } else { Ok(()) }
            })
        })
        .await?;
    if !right {
        let mut errors = FormErrors::default();
        errors.add("password", "That is not your password.");
        return Ok(page(ctx, &state, account.email, StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    SessionData::mark_reauthenticated(&req).map_err(|e| AppError::Internal(e.into()))?;
    let target = stored_return_target(&req).unwrap_or_else(|| DEFAULT_RETURN.to_owned());
    let mut response = lead_on(&target);
    response.extensions_mut().insert(ClearReturnTarget);
    Ok(response)
}
