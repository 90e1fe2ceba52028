//! Proving an address: by the emailed link (a GET shows a button, only the
//! POST uses the token, so mail scanners that prefetch links do no harm) or
//! by typing the emailed code.

use super::transition_context;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::answer_mail_request;
use crate::accounts;
use crate::config::Config;
use crate::db::email_tokens::{self, Purpose};
use crate::db::users::User;
use crate::db::{DbConnection, now};
use crate::domain::{CodeHasher, EmailAddress, PlainToken, VerificationCode};
use crate::mail::{MailKind, queue};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::return_to::sign_in_page;
use crate::web::{
    AppError, ClientInfo, Flash, Form, FormErrors, PageContext, answer_no_sooner, redirect_with_flash, render,
};

const WRONG_CODE: &str = "That code is wrong or has expired. Check the latest email, or ask for a new code.";

#[derive(Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    token: Option<String>,
    email: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
pub struct ResendForm {
    email: String,
}

#[derive(Template)]
#[template(path = "pages/verify_link.html")]
struct ConfirmLinkPage {
    ctx: PageContext,
    token: String,
}

#[derive(Template)]
#[template(path = "pages/verify_code.html")]
struct EnterCodePage {
    ctx: PageContext,
    email: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/verify_failed.html")]
struct LinkFailedPage {
    ctx: PageContext,
}

#[derive(Template)]
#[template(path = "pages/resend.html")]
struct ResendPage {
    ctx: PageContext,
    email: String,
    errors: FormErrors,
}

/// The emailed link shows a button, or at once that it no longer works;
/// looking never uses it.
pub async fn show(
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    match &query.token {
        Some(raw) => {
            let token = PlainToken::parse(raw).ok_or_else(|| {
                AppError::BadRequest("This confirmation link is incomplete. Copy the whole link from the email.".into())
            })?;
            let hash = token.hash();
            let live =
                state.db.run(move |conn| email_tokens::peek_link(conn, Purpose::VerifyLink, &hash, now())).await?;
            if live.is_none() {
                return Ok(render(StatusCode::GONE, &LinkFailedPage { ctx }));
            }
            Ok(render(StatusCode::OK, &ConfirmLinkPage { ctx, token: token.expose().to_owned() }))
        }
        None => {
            let email = ctx.flash_email();
            Ok(render(StatusCode::OK, &EnterCodePage { ctx, email, errors: FormErrors::default() }))
        }
    }
}

pub async fn submit(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<VerifyForm>,
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    let verified = match (form.token, form.email, form.code) {
        (Some(token), None, None) => {
            let token = PlainToken::parse(&token)
                .ok_or_else(|| AppError::BadRequest("This confirmation link is malformed.".into()))?;
            let config = state.config.clone();
            state.db.run(move |conn| verify_by_link(conn, &token, &client, &config)).await?
        }
        (None, Some(email), Some(code)) => {
            let mut errors = FormErrors::default();
            let address = EmailAddress::parse(&email).map_err(|problem| errors.add("email", problem)).ok();
            let code = VerificationCode::parse(&code);
            if code.is_none() {
                errors.add("code", "Enter the 6-digit code from the email.");
            }
            let (Some(address), Some(code)) = (address, code) else {
                return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &EnterCodePage { ctx, email, errors }));
            };
            state.rate_limit(vec![Bucket::CodeAddress(address.as_str().to_owned())]).await?;
            let (codes, config) = (state.codes.clone(), state.config.clone());
            let verified =
                state.db.run(move |conn| verify_by_code(conn, &address, &code, &codes, &client, &config)).await?;
            answer_no_sooner(started).await;
            if verified.is_none() {
                let page = EnterCodePage { ctx, email, errors: FormErrors::one("code", WRONG_CODE) };
                return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
            }
            verified
        }
        _ => {
            return Err(AppError::BadRequest("Send either a token, or an email address and a code.".into()));
        }
    };
    let Some(address) = verified else {
        return Ok(render(StatusCode::GONE, &LinkFailedPage { ctx }));
    };
    let message = if state.config.settings.require_admin_approval {
        "Your address is confirmed. An administrator will review your account; we will email you."
    } else {
        "Your address is confirmed. You can sign in now."
    };
    Ok(redirect_with_flash(&sign_in_page(&req), Flash::success(message).with_email(address)))
}

/// Uses the link token (one claim wins) and marks the address verified;
/// returns the address, or `None` if the link no longer works.
fn verify_by_link(
    conn: &mut DbConnection,
    token: &PlainToken,
    client: &ClientInfo,
    config: &Config,
) -> diesel::QueryResult<Option<String>> {
    conn.write(|conn| {
        let now = now();
        let hash = token.hash();
        // The account's lock comes first in every transaction on its tokens.
        let Some(owner) = email_tokens::peek_link(conn, Purpose::VerifyLink, &hash, now)? else {
            return Ok(None);
        };
        User::lock(conn, owner)?;
        let Some(claimed) = email_tokens::claim_link(conn, Purpose::VerifyLink, &hash, now)? else {
            return Ok(None);
        };
        accounts::verify_email(conn, &claimed, transition_context(config, client))
    })
}

/// Counts the try before comparing, then uses the code. Unknown addresses
/// take the same path up to the comparison and fail like a wrong code.
fn verify_by_code(
    conn: &mut DbConnection,
    email: &EmailAddress,
    code: &VerificationCode,
    codes: &CodeHasher,
    client: &ClientInfo,
    config: &Config,
) -> diesel::QueryResult<Option<String>> {
    conn.write(|conn| {
        let now = now();
        let Some(user) = User::find_by_email(conn, email.as_str())? else {
            return Ok(None);
        };
        User::lock(conn, user.id)?;
        let expected = codes.hash(user.id, code);
        for (token_id, stored_hash) in email_tokens::count_code_attempt(conn, user.id, now)? {
            if !expected.matches(&stored_hash) {
                continue;
            }
            if let Some(claimed) = email_tokens::claim_by_id(conn, token_id, now)? {
                return accounts::verify_email(conn, &claimed, transition_context(config, client));
            }
        }
        Ok(None)
    })
}

pub async fn show_resend(ctx: PageContext) -> HttpResponse {
    let email = ctx.flash_email();
    render(StatusCode::OK, &ResendPage { ctx, email, errors: FormErrors::default() })
}

/// Answers the same for any address; only an account still waiting for
/// verification gets mail.
pub async fn resend(
    ctx: PageContext,
    state: web::Data<AppState>,
    Form(form): Form<ResendForm>,
) -> Result<HttpResponse, AppError> {
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(problem) => {
            let page = ResendPage { ctx, email: form.email, errors: FormErrors::one("email", problem) };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let config = state.config.clone();
    let queue_verification =
        move |conn: &mut DbConnection, email: &EmailAddress| match User::find_by_email(conn, email.as_str())? {
            Some(user) if user.email_verified_at.is_none() => {
                queue(conn, MailKind::VerifyEmail, email.as_str(), Some(user.id), &config).map(drop)
            }
            _ => Ok(()),
        };
    let message = "If that address has an account waiting for confirmation, we sent it a new link and code.";
    answer_mail_request(&state, email, queue_verification, "/verify", message).await
}
