use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::db::audit::{self, Event, EventKind};
use crate::db::users::{NewUser, User};
use crate::db::{DbConnection, now};
use crate::domain::{Approval, EmailAddress};
use crate::mail::{MailKind, queue, queue_verification_for_registration};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::{
    AppError, ClientInfo, Flash, Form, FormErrors, PageContext, answer_no_sooner, redirect_with_flash, render,
};

#[derive(Deserialize)]
pub struct RegisterForm {
    email: String,
    password: String,
    password_confirm: String,
}

#[derive(Template)]
#[template(path = "pages/register.html")]
struct RegisterPage {
    ctx: PageContext,
    email: String,
    errors: FormErrors,
}

/// What `/register` says where sign-up is not open (`USHER_REGISTRATION`).
#[derive(Template)]
#[template(path = "pages/register_closed.html")]
struct SignUpClosedPage {
    ctx: PageContext,
    invite_only: bool,
}

/// Where sign-up is not open, whether it is by invitation (else closed);
/// `None` where anyone may sign up.
fn sign_up_not_open(state: &AppState) -> Option<bool> {
    let mode = state.config.settings.registration;
    (!mode.is_open()).then(|| mode.admits_invitations())
}

/// The page that says sign-up is closed (`USHER_REGISTRATION=closed`),
/// with `status`: invitations too lead nowhere then.
pub(super) fn closed_page(ctx: PageContext, status: StatusCode) -> HttpResponse {
    render(status, &SignUpClosedPage { ctx, invite_only: false })
}

/// The sign-up form; where sign-up is by invitation or closed, a page
/// saying how to get in instead.
pub async fn show(ctx: PageContext, state: web::Data<AppState>) -> HttpResponse {
    if let Some(invite_only) = sign_up_not_open(&state) {
        return render(StatusCode::OK, &SignUpClosedPage { ctx, invite_only });
    }
    render(StatusCode::OK, &RegisterPage { ctx, email: String::new(), errors: FormErrors::default() })
}

/// Answers the same whether or not the address is taken: a taken address
/// gets an email instead of an error on the page. Where sign-up is not
/// open: 403 with the page `show` gives, and nothing done.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    // Refused before the form is read: whatever was sent, the same words.
    if let Some(invite_only) = sign_up_not_open(&state) {
        return Ok(render(StatusCode::FORBIDDEN, &SignUpClosedPage { ctx, invite_only }));
    }
    let Form(form) = Form::<RegisterForm>::from_request(&req, &mut payload.into_inner()).await?;
    let started = Instant::now();
    let mut errors = FormErrors::default();
    let email = EmailAddress::parse(&form.email).map_err(|problem| errors.add("email", problem)).ok();
    // Without a valid address the password is still checked, so every mistake shows at once.
    let password = state
        .check_new_password(&form.password, &form.password_confirm, email.as_ref())
        .await?
        .map_err(|problems| errors.add_password_problems(problems))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        let page = RegisterPage { ctx, email: form.email, errors };
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    // Counted once the form is valid: a sign-up may send mail to the address.
    let buckets = vec![Bucket::SignUpIp(client.ip.clone()), Bucket::MailAddress(email.as_str().to_owned())];
    if let Err(refused) = state.rate_limit(buckets).await {
        // The form stays filled in (but the passwords), with the wait, rather than a dead end.
        let AppError::TooManyRequests(_) = refused else { return Err(refused) };
        let page = RegisterPage { ctx, email: form.email, errors: FormErrors::one("email", &refused) };
        let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page);
        if let Some(seconds) = refused.retry_after() {
            response.headers_mut().insert(RETRY_AFTER, seconds.into());
        }
        return Ok(response);
    }
    let password_hash = state.hasher.hash(password).await?;
    let config = state.config.clone();
    let address = email.clone();
    state.db.run(move |conn| register(conn, &address, &password_hash, &client.ip, &config)).await?;
    answer_no_sooner(started).await;
    state.mail.wake();
    // The same words whether the address is new or taken: the mail a taken
    // address gets has no code, so this promises only an email.
    let flash = Flash::info("Check your inbox: we sent you an email with the next step.");
    Ok(redirect_with_flash("/verify", flash.with_email(email.as_str())))
}

/// Creates the account and queues its verification mail. A taken address
/// gets a note to its verified owner, or, if nobody verified it yet, a
/// verification that carries this registration's password.
fn register(
    conn: &mut DbConnection,
    email: &EmailAddress,
    password_hash: &str,
    ip: &str,
    config: &Config,
) -> diesel::QueryResult<()> {
    conn.write(|conn| {
        let now = now();
        let approval = if config.settings.require_admin_approval { Approval::Pending } else { Approval::Approved };
        let new_user = NewUser {
            email: email.as_str(),
            password_hash,
            email_verified_at: None,
            approval: approval.as_str(),
            is_admin: false,
            created_at: now,
            updated_at: now,
        };
        if let Some(user_id) = User::insert(conn, &new_user)? {
            queue(conn, MailKind::VerifyEmail, email.as_str(), Some(user_id), config)?;
            audit::record(conn, Event::own(EventKind::Registered, user_id, ip), now)?;
            return Ok(());
        }
        let Some(owner) = User::find_by_email(conn, email.as_str())? else {
            return Ok(());
        };
        if owner.email_verified_at.is_some() {
            queue(conn, MailKind::SignupAttempt, email.as_str(), Some(owner.id), config)?;
        } else {
            // Whoever proves the mailbox gets the password they chose here.
            queue_verification_for_registration(conn, email.as_str(), owner.id, password_hash, config)?;
        }
        Ok(())
    })
}
