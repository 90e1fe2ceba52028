//! One module per page family.

mod account;
mod admin;
mod health;
mod home;
mod login;
mod password;
mod register;
mod verify;

use actix_web::web;

use crate::web::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home::show))
        .service(web::resource("/register").get(register::show).post(register::submit))
        .service(web::resource("/verify").get(verify::show).post(verify::submit))
        .service(web::resource("/verify/resend").get(verify::show_resend).post(verify::resend))
        .service(web::resource("/login").get(login::show).post(login::submit))
        .service(web::resource("/logout").post(login::logout))
        .service(web::resource("/account").get(account::show))
        .service(web::resource("/account/password").post(account::change_password))
        .service(web::resource("/account/sessions/revoke-others").post(account::revoke_other_sessions))
        .service(web::resource("/password/forgot").get(password::show_forgot).post(password::forgot))
        .service(web::resource("/password/reset").get(password::show_reset).post(password::reset))
        .service(web::resource("/admin").get(admin::dashboard))
        .service(web::resource("/admin/users").get(admin::users))
        .service(web::resource("/admin/users/{id}").get(admin::user))
        .service(web::resource("/admin/users/{id}/{action}").post(admin::act))
        .service(web::resource("/admin/events").get(admin::events))
        .service(web::resource("/admin/mail/{id}/retry").post(admin::retry_mail))
        .service(web::resource("/healthz").get(health::live))
        .service(web::resource("/readyz").get(health::ready))
        .service(web::resource("/static/usher.css").get(home::stylesheet));
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// A form that has no fields besides its CSRF token.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}
