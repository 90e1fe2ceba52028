//! Getting back into an account: a single-use emailed link to choose a new
//! password. The pages answer the same whether or not an address has an
//! account.

use super::transition_context;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::answer_mail_request;
use crate::accounts::{self, PasswordSet};
use crate::config::Config;
use crate::db::audit::{self, Event, EventKind};
use crate::db::email_tokens::{self, Purpose};
use crate::db::users::User;
use crate::db::{DbConnection, now};
use crate::domain::{EmailAddress, PlainToken};
use crate::mail::{MailKind, queue};
use crate::state::AppState;
use crate::web::cookies::{KnownBrowser, known_browser};
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect_with_flash, render};

#[derive(Deserialize)]
pub struct ForgotForm {
    email: String,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
    password_confirm: String,
}

#[derive(Template)]
#[template(path = "pages/forgot.html")]
struct ForgotPage {
    ctx: PageContext,
    email: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/reset.html")]
struct ResetPage {
    ctx: PageContext,
    token: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/reset_failed.html")]
struct ResetFailedPage {
    ctx: PageContext,
}

pub async fn show_forgot(ctx: PageContext) -> HttpResponse {
    let email = ctx.flash_email();
    render(StatusCode::OK, &ForgotPage { ctx, email, errors: FormErrors::default() })
}

/// Queues a reset mail for an enabled account; answers the same for any
/// address. The link is minted when the mail is sent, voiding older ones.
pub async fn forgot(
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<ForgotForm>,
) -> Result<HttpResponse, AppError> {
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(problem) => {
            let page = ForgotPage { ctx, email: form.email, errors: FormErrors::one("email", problem) };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let config = state.config.clone();
    let queue_reset =
        move |conn: &mut DbConnection, email: &EmailAddress| match User::find_by_email(conn, email.as_str())? {
            Some(user) if user.disabled_at.is_none() => {
                queue(conn, MailKind::PasswordReset, &user.email, Some(user.id), &config)?;
                audit::record(conn, Event::own(EventKind::ResetRequested, user.id, &client.ip), now())
            }
            _ => Ok(()),
        };
    let message = "If an account uses that address, we sent it a link to choose a new password. \
                   It works once, for a short time.";
    answer_mail_request(&state, email, queue_reset, "/password/forgot", message).await
}

fn parse_token(raw: &str) -> Result<PlainToken, AppError> {
    PlainToken::parse(raw).ok_or_else(|| {
        AppError::BadRequest("This reset link is incomplete. Copy the whole link from the email.".into())
    })
}

/// Shows the form if the link is still good; looking does not use it.
pub async fn show_reset(
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let token = parse_token(query.token.as_deref().unwrap_or_default())?;
    let hash = token.hash();
    let live = state.db.run(move |conn| email_tokens::peek_link(conn, Purpose::ResetLink, &hash, now())).await?;
    if live.is_none() {
        return Ok(render(StatusCode::GONE, &ResetFailedPage { ctx }));
    }
    Ok(render(StatusCode::OK, &ResetPage { ctx, token: token.expose().to_owned(), errors: FormErrors::default() }))
}

/// Sets the new password if this request wins the link (of concurrent
/// submissions exactly one does), then ends every session of the account.
pub async fn reset(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<ResetForm>,
) -> Result<HttpResponse, AppError> {
    let token = parse_token(&form.token)?;
    let hash = token.hash();
    let owner = state
        .db
        .run(move |conn| {
            let Some(user_id) = email_tokens::peek_link(conn, Purpose::ResetLink, &hash, now())? else {
                return Ok(None);
            };
            User::find(conn, user_id)
        })
        .await?;
    let Some(owner) = owner else {
        return Ok(render(StatusCode::GONE, &ResetFailedPage { ctx }));
    };
    let email = EmailAddress::parse(&owner.email).map_err(|e| AppError::Internal(e.into()))?;
    let password = match state.check_new_password(&form.password, &form.password_confirm, Some(&email)).await? {
        Ok(password) => password,
        Err(problems) => {
            let mut errors = FormErrors::default();
            errors.add_password_problems(problems);
            let page = ResetPage { ctx, token: token.expose().to_owned(), errors };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let password_hash = state.hasher.hash(password).await?;
    let (config, hash) = (state.config.clone(), password_hash.clone());
    let done = state.db.run(move |conn| complete_reset(conn, &token, &hash, &client, &config)).await?;
    let Some(user_id) = done else {
        return Ok(render(StatusCode::GONE, &ResetFailedPage { ctx }));
    };
    state.mail.wake();
    let flash = Flash::success("Your password was changed. Sign in with the new one.");
    let mut response = redirect_with_flash("/login", flash.with_email(email.as_str()));
    // This browser proved the mailbox: signing in here next is no news.
    if let (_, Some(tag)) = known_browser(&req, user_id, &password_hash) {
        response.extensions_mut().insert(KnownBrowser(tag));
    }
    Ok(response)
}

/// Claims the link and, in the same transaction, sets the password as a
/// reset does (`accounts::set_password`); the account's id, or `None` if
/// the link is no longer good.
fn complete_reset(
    conn: &mut DbConnection,
    token: &PlainToken,
    password_hash: &str,
    client: &ClientInfo,
    config: &Config,
) -> diesel::QueryResult<Option<i64>> {
    conn.write(|conn| {
        let now = now();
        let hash = token.hash();
        // The account's lock comes first in every transaction on its tokens.
        let Some(owner) = email_tokens::peek_link(conn, Purpose::ResetLink, &hash, now)? else {
            return Ok(None);
        };
        User::lock(conn, owner)?;
        let Some(claimed) = email_tokens::claim_link(conn, Purpose::ResetLink, &hash, now)? else {
            return Ok(None);
        };
        let Some(user) = User::find(conn, claimed.user_id)? else {
            return Ok(None);
        };
        accounts::set_password(conn, &user, password_hash, PasswordSet::Reset, transition_context(config, client))?;
        Ok(Some(user.id))
    })
}
