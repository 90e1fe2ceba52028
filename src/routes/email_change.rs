//! Changing one's address: asked for on `/account/email` (after "confirm
//! it's you"), completed from the link sent to the new address, undone from
//! the link sent to the old one. Links open a page with a button; only the
//! button (a POST) uses them, so mail scanners that open links do no harm.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{NoFields, transition_context};
use crate::accounts::{self, EmailChangeRefusal};
use crate::auth::{Reauthenticated, SessionData, SignedInUser};
use crate::db::email_changes::{self, EmailChange};
use crate::db::now;
use crate::db::users::User;
use crate::domain::{EmailAddress, PlainToken};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, Moment, PageContext, redirect_with_flash, render};

#[derive(Deserialize)]
pub struct ChangeForm {
    email: String,
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct LinkForm {
    token: String,
}

/// A change waiting for its confirmation, as the pages show it.
pub struct PendingView {
    pub(super) new_email: String,
    pub(super) requested: Moment,
}

impl From<EmailChange> for PendingView {
    fn from(change: EmailChange) -> Self {
        Self { requested: Moment::new(change.created_at, now()), new_email: change.new_email }
    }
}

#[derive(Template)]
#[template(path = "pages/email_change.html")]
struct ChangePage {
    ctx: PageContext,
    email: String,
    pending: Option<PendingView>,
    /// What was typed, shown again after a mistake.
    typed: String,
    errors: FormErrors,
}

/// The page a link opens: what pressing its button will do.
#[derive(Template)]
#[template(path = "pages/email_link.html")]
struct LinkPage {
    ctx: PageContext,
    title: &'static str,
    explanation: String,
    action: &'static str,
    button: &'static str,
    token: String,
}

#[derive(Template)]
#[template(path = "pages/email_link_failed.html")]
struct LinkFailedPage {
    ctx: PageContext,
    message: String,
    /// An undo link: its person may have no way into the account.
    undo: bool,
}

async fn change_page(
    state: &AppState,
    ctx: PageContext,
    user_id: i64,
    typed: String,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let (user, pending) = state
        .db
        .run_idempotent(move |conn| Ok((User::find(conn, user_id)?, email_changes::pending_for(conn, user_id, now())?)))
        .await?;
    let user = user.ok_or(AppError::NotFound)?;
    let pending = pending.map(PendingView::from);
    Ok(render(status, &ChangePage { ctx, email: user.email, pending, typed, errors }))
}

/// `GET /account/email`: the form for a new address, after "confirm it's you".
pub async fn show(
    user: Reauthenticated,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    change_page(&state, ctx, user.user_id, String::new(), StatusCode::OK, FormErrors::default()).await
}

/// `POST /account/email`: sends a confirmation link to the new address and
/// a notice to the current one; nothing changes until the link is used.
pub async fn request(
    user: Reauthenticated,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<ChangeForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let new_email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(problem) => {
            let mut errors = FormErrors::default();
            errors.add("email", problem);
            return change_page(&state, ctx, user_id, form.email, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let user = state.db.run(move |conn| User::find(conn, user_id)).await?.ok_or(AppError::NotFound)?;
    // Both addresses get mail: limited per account and per target address.
    let buckets = [&user.email, new_email.as_str()].map(|address| Bucket::MailAddress(address.to_owned()));
    let hits = state.rate_limit(buckets.to_vec()).await?;
    let (config, email) = (state.config.clone(), new_email.clone());
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                if !User::lock(conn, user_id)? {
                    return Ok(None);
                }
                let Some(user) = User::find(conn, user_id)? else { return Ok(None) };
                accounts::request_email_change(conn, &user, &email, transition_context(&config, &client)).map(Some)
            })
        })
        .await?
        .ok_or(AppError::NotFound)?;
    if let Err(refusal) = outcome {
        // Refused, so no mail went out: the request does not count.
        let throttle = state.throttle;
        state.db.run(move |conn| throttle.release(conn, &hits)).await?;
        let mut errors = FormErrors::default();
        errors.add("email", refusal.describe());
        return change_page(&state, ctx, user_id, form.email, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    }
    state.mail.wake();
    let flash = Flash::success(format!(
        "We sent a link to {}. Your address changes when you open it; until then it stays as it is.",
        new_email.as_str()
    ));
    Ok(redirect_with_flash("/account", flash))
}

/// `POST /account/email/cancel`: the pending change's link stops working.
pub async fn cancel(
    user: SignedInUser,
    client: ClientInfo,
    state: web::Data<AppState>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let config = state.config.clone();
    let cancelled = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                User::lock(conn, user.user_id)?;
                accounts::cancel_email_change(conn, user.user_id, transition_context(&config, &client))
            })
        })
        .await?;
    let flash = if cancelled {
        Flash::success("The change of address was cancelled; its link no longer works.")
    } else {
        Flash::info("There was no change of address to cancel.")
    };
    Ok(redirect_with_flash("/account", flash))
}

/// The token of a link, or a plain-words 400 when it was cut short.
fn link_token(raw: &str) -> Result<PlainToken, AppError> {
    PlainToken::parse(raw)
        .ok_or_else(|| AppError::BadRequest("This link is incomplete. Copy the whole link from the email.".into()))
}

/// Which link failed: the way on differs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Confirm,
    Undo,
}

fn link_failed(ctx: PageContext, refusal: &EmailChangeRefusal, link: Link) -> HttpResponse {
    let status = match refusal {
        EmailChangeRefusal::InvalidLink => StatusCode::GONE,
        EmailChangeRefusal::OtherAccount => StatusCode::FORBIDDEN,
        EmailChangeRefusal::Taken(_) => StatusCode::CONFLICT,
        EmailChangeRefusal::Unchanged => StatusCode::UNPROCESSABLE_ENTITY,
    };
    render(status, &LinkFailedPage { ctx, message: refusal.describe(), undo: link == Link::Undo })
}

/// `GET /account/email/confirm?token=T`: a page with the button that
/// completes the change, for the account that asked (anyone else is sent
/// to sign in and back). Opening it changes nothing.
pub async fn show_confirm(
    user: SignedInUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let token = link_token(query.token.as_deref().unwrap_or_default())?;
    let hash = token.hash();
    let Some(change) = state.db.run(move |conn| email_changes::peek_confirm(conn, &hash, now())).await? else {
        return Ok(link_failed(ctx, &EmailChangeRefusal::InvalidLink, Link::Confirm));
    };
    if change.user_id != user.user_id {
        return Ok(link_failed(ctx, &EmailChangeRefusal::OtherAccount, Link::Confirm));
    }
    let page = LinkPage {
        ctx,
        title: "Confirm your new address",
        explanation: format!("Press the button to make {} the address of this account.", change.new_email),
        action: "/account/email/confirm",
        button: "Confirm my new address",
        token: token.expose().to_owned(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /account/email/confirm`: completes the change; this session goes
/// on, the account's others end.
pub async fn confirm(
    req: HttpRequest,
    user: SignedInUser,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<LinkForm>,
) -> Result<HttpResponse, AppError> {
    let hash = link_token(&form.token)?.hash();
    let config = state.config.clone();
    let keep = SessionData::of(&req).public_id().unwrap_or_default();
    let outcome = state
        .db
        .run(move |conn| {
            let ctx = transition_context(&config, &client);
            conn.write(|conn| accounts::confirm_email_change(conn, &hash, user.user_id, &keep, ctx))
        })
        .await?;
    match outcome {
        Ok(email) => {
            state.mail.wake();
            Ok(redirect_with_flash("/account", Flash::success(format!("Your address is now {email}."))))
        }
        Err(refusal) => Ok(link_failed(ctx, &refusal, Link::Confirm)),
    }
}

/// `GET /account/email/revert?token=T`: a page with the button that undoes
/// a change. Opening it changes nothing.
pub async fn show_revert(
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let token = link_token(query.token.as_deref().unwrap_or_default())?;
    let hash = token.hash();
    let Some(change) = state.db.run(move |conn| email_changes::peek_revert(conn, &hash, now())).await? else {
        return Ok(link_failed(ctx, &EmailChangeRefusal::InvalidLink, Link::Undo));
    };
    let page = LinkPage {
        ctx,
        title: "Undo the change of address",
        explanation: format!(
            "Press the button to give the account its address {} back. Everyone signed in to it, on any device, \
             will be signed out, and we will send a link to that address to choose a new password.",
            change.old_email
        ),
        action: "/account/email/revert",
        button: "Undo the change",
        token: token.expose().to_owned(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /account/email/revert`: undoes the change and signs everyone out.
pub async fn revert(
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<LinkForm>,
) -> Result<HttpResponse, AppError> {
    let hash = link_token(&form.token)?.hash();
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| accounts::revert_email_change(conn, &hash, transition_context(&config, &client)))
        })
        .await?;
    match outcome {
        Ok(email) => {
            state.mail.wake();
            // Every session of the account ended, this browser's too if it was one.
            let flash = Flash::success(format!(
                "The account's address is {email} again, and everyone was signed out. \
                 We sent a link there to choose a new password: whoever changed the address may know the old one."
            ))
            .with_email(email);
            Ok(redirect_with_flash("/login", flash))
        }
        Err(refusal) => Ok(link_failed(ctx, &refusal, Link::Undo)),
    }
}
