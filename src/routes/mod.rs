//! One module per page family.

mod account;
mod health;
mod home;
mod login;
mod register;
mod verify;

use actix_web::web;

use crate::web::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::show))
        .service(
            web::resource("/register")
                .get(register::show)
                .post(register::submit),
        )
        .service(
            web::resource("/verify")
                .get(verify::show)
                .post(verify::submit),
        )
        .service(
            web::resource("/verify/resend")
                .get(verify::show_resend)
                .post(verify::resend),
        )
        .service(web::resource("/login").get(login::show).post(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/account", web::get().to(account::show))
        .route("/healthz", web::get().to(health::live))
        .route("/readyz", web::get().to(health::ready))
        .route("/static/usher.css", web::get().to(home::stylesheet));
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// A form that has no fields besides its CSRF token.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}
