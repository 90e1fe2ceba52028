use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::auth::{SessionData, SignedInUser};
use crate::db::users::User;
use crate::state::AppState;
use crate::web::{AppError, PageContext, render};

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    ctx: PageContext,
    email: String,
    status: &'static str,
}

pub async fn show(
    req: HttpRequest,
    user: SignedInUser,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(account) = state
        .db
        .run(move |conn| User::find(conn, user.user_id))
        .await?
    else {
        // Deleted while signed in.
        SessionData::end(&req);
        return Ok(crate::web::redirect("/login"));
    };
    let page = AccountPage {
        ctx,
        email: account.email.clone(),
        status: account.state().describe(),
    };
    Ok(render(StatusCode::OK, &page))
}
