//! `/account/delete`: a person deletes their own account, after "confirm
//! it's you" and typing their address again. What deletion removes and
//! keeps is `accounts::delete_account`'s to say.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::transition_context;
use crate::accounts::{self, DeletedBy, Refusal};
use crate::auth::{Reauthenticated, SessionData};
use crate::db::users::User;
use crate::domain::EmailAddress;
use crate::state::AppState;
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect_with_flash, render};

#[derive(Deserialize)]
pub struct DeleteForm {
    /// The account's address, typed again.
    confirm: String,
}

#[derive(Template)]
#[template(path = "pages/delete_account.html")]
struct DeletePage {
    ctx: PageContext,
    email: String,
    /// Administrators are told that the last of them cannot go.
    is_admin: bool,
    /// What was typed, shown again after a mistake.
    typed: String,
    errors: FormErrors,
}

async fn delete_page(
    state: &AppState,
    ctx: PageContext,
    user_id: i64,
    typed: String,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let user = state.db.run_idempotent(move |conn| User::find(conn, user_id)).await?.ok_or(AppError::NotFound)?;
    Ok(render(status, &DeletePage { ctx, email: user.email, is_admin: user.is_admin, typed, errors }))
}

/// `GET /account/delete`: what deletion does, and the form that does it.
pub async fn show(
    user: Reauthenticated,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    delete_page(&state, ctx, user.user_id, String::new(), StatusCode::OK, FormErrors::default()).await
}

/// `POST /account/delete` with `confirm` (the address typed again): deletes
/// the account and signs this browser out; 422 when the address does not
/// match, 409 for the site's last administrator.
pub async fn submit(
    req: HttpRequest,
    user: Reauthenticated,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<DeleteForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let Ok(typed) = EmailAddress::parse(&form.confirm) else {
        let errors = FormErrors::one("confirm", Refusal::NotTheAddress.describe());
        return delete_page(&state, ctx, user_id, form.confirm, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    };
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let by = DeletedBy::Owner { typed: typed.as_str() };
                accounts::delete_account(conn, user_id, by, transition_context(&config, &client))
            })
        })
        .await?;
    let (status, refusal) = match outcome {
        Ok(email) => {
            SessionData::end(&req);
            state.mail.wake();
            let flash = Flash::info(format!("Your account was deleted. A last email went to {email}."));
            return Ok(redirect_with_flash("/", flash));
        }
        Err(Refusal::NoSuchUser) => return Err(AppError::NotFound),
        Err(Refusal::NotTheAddress) => (StatusCode::UNPROCESSABLE_ENTITY, Refusal::NotTheAddress.describe()),
        Err(refusal) => (StatusCode::CONFLICT, own_refusal(refusal)),
    };
    delete_page(&state, ctx, user_id, form.confirm, status, FormErrors::one("confirm", refusal)).await
}

/// A refusal in words for the account's owner.
fn own_refusal(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::LastAdmin => {
            "You are the site's only administrator. Make someone else one first (usher create-admin on the server), \
             then delete your account."
        }
        other => other.describe(),
    }
}
