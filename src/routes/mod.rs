//! One module per page family.

mod account;
mod admin;
mod delete_account;
mod email_change;
mod export;
mod forward_auth;
mod groups;
mod health;
mod home;
mod invitations;
mod login;
mod password;
mod reauth;
mod register;
mod sign_in_code;
mod two_factor;
mod verify;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use crate::accounts::Context;
use crate::auth::prefetch::{PageNeed, PageNeeds};
use crate::config::Config;
use crate::db::{DbConnection, now};
use crate::domain::EmailAddress;
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::ClientInfo;
use crate::web::return_to::CONTINUE_PAGE;
use crate::web::{AppError, Flash, answer_no_sooner, redirect_with_flash};

/// Middleware, outside the session's: names what the page a request goes
/// to will need read with its session (see `auth::prefetch`), here where
/// the routes are.
///
/// # Errors
/// Those of the rest of the request.
pub async fn read_with_session(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let need = match (req.method(), req.path()) {
        (&Method::GET, "/account") => Some(PageNeed::AccountOverview),
        _ => None,
    };
    let Some(need) = need else { return next.call(req).await };
    let needs = PageNeeds::new(need);
    req.extensions_mut().insert(needs.clone());
    needs.serve(next.call(req)).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home::show))
        .service(web::resource("/register").get(register::show).post(register::submit))
        .service(web::resource("/verify").get(verify::show).post(verify::submit))
        .service(web::resource("/verify/resend").get(verify::show_resend).post(verify::resend))
        .service(web::resource("/login").get(login::show).post(login::submit))
        .service(web::resource(CONTINUE_PAGE).get(login::continue_to_app))
        // Any method: nginx's sub-request keeps the original request's.
        .service(web::resource("/auth/forward").to(forward_auth::forward))
        .service(web::resource("/auth/request").to(forward_auth::request))
        .service(web::resource("/login/two-factor").get(sign_in_code::show).post(sign_in_code::submit))
        .service(web::resource("/logout").route(go_to("/")).post(login::logout))
        .service(web::resource("/account").get(account::show))
        .service(web::resource("/account/email").get(email_change::show).post(email_change::request))
        .service(web::resource("/account/email/cancel").route(go_to("/account")).post(email_change::cancel))
        .service(web::resource("/account/email/confirm").get(email_change::show_confirm).post(email_change::confirm))
        .service(web::resource("/account/email/revert").get(email_change::show_revert).post(email_change::revert))
        .service(web::resource("/account/delete").get(delete_account::show).post(delete_account::submit))
        .service(web::resource("/account/export").get(export::show).post(export::download))
        .service(web::resource("/account/reauth").get(reauth::show).post(reauth::submit))
        .service(web::resource("/account/two-factor").get(two_factor::show))
        .service(web::resource("/account/two-factor/enrol").route(go_to("/account/two-factor")).post(two_factor::enrol))
        .service(
            web::resource("/account/two-factor/confirm").route(go_to("/account/two-factor")).post(two_factor::confirm),
        )
        .service(
            web::resource("/account/two-factor/recovery-codes")
                .route(go_to("/account/two-factor"))
                .post(two_factor::renew_codes),
        )
        .service(
            web::resource("/account/two-factor/disable").route(go_to("/account/two-factor")).post(two_factor::disable),
        )
        .service(web::resource("/account/sessions/{id}/revoke").route(go_to("/account")).post(account::revoke_session))
        .service(web::resource("/account/password").route(go_to("/account")).post(account::change_password))
        .service(
            web::resource("/account/sessions/revoke-others")
                .route(go_to("/account"))
                .post(account::revoke_other_sessions),
        )
        .service(web::resource("/password/forgot").get(password::show_forgot).post(password::forgot))
        .service(web::resource("/password/reset").get(password::show_reset).post(password::reset))
        .service(web::resource("/admin").get(admin::dashboard))
        .service(web::resource("/admin/users").get(admin::users))
        .service(web::resource("/admin/users/{id}").get(admin::user))
        // Before the generic action route, which would take them for an action's name.
        .service(
            web::resource("/admin/users/{id}/reset-two-factor")
                .get(admin::confirm_reset_two_factor)
                .post(admin::reset_two_factor),
        )
        .service(web::resource("/admin/users/{id}/groups").get(groups::to_user_page).post(groups::add_member))
        .service(
            web::resource("/admin/users/{id}/groups/{name}/remove")
                .get(groups::to_user_page)
                .post(groups::remove_member),
        )
        .service(web::resource("/admin/users/{id}/{action}").get(admin::confirm).post(admin::act))
        .service(web::resource("/admin/groups").get(groups::list).post(groups::create))
        .service(web::resource("/admin/invitations").get(invitations::list).post(invitations::create))
        .service(web::resource("/admin/invitations/{id}/revoke").get(invitations::to_list).post(invitations::revoke))
        .service(web::resource("/admin/invitations/{id}/resend").get(invitations::to_list).post(invitations::resend))
        .service(web::resource("/invite").get(invitations::show).post(invitations::accept))
        .service(web::resource("/admin/events").get(admin::events))
        .service(web::resource("/admin/mail/{id}/retry").route(go_to("/admin")).post(admin::retry_mail))
        .service(web::resource("/healthz").get(health::live))
        .service(web::resource("/readyz").get(health::ready))
        .service(web::resource("/static/usher.css").get(home::stylesheet))
        .service(web::resource(["/static/favicon.svg", "/favicon.ico"]).get(home::icon));
}

/// The context of an account transition caused by this client now.
fn transition_context<'a>(config: &'a Config, client: &'a ClientInfo) -> Context<'a> {
    Context { config, ip: &client.ip, user_agent: &client.user_agent, now: now() }
}

/// What "resend my link" and "forgot my password" share: rate-limited per
/// address, mail queued only when `queue_mail` finds an account it is for,
/// and the same answer for every address, given no sooner than the floor.
async fn answer_mail_request(
    state: &AppState,
    email: EmailAddress,
    queue_mail: impl FnOnce(&mut DbConnection, &EmailAddress) -> diesel::QueryResult<()> + Send + 'static,
    redirect_to: &str,
    message: &str,
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    state.rate_limit(vec![Bucket::MailAddress(email.as_str().to_owned())]).await?;
    let address = email.clone();
    state.db.run(move |conn| conn.write(|conn| queue_mail(conn, &address))).await?;
    answer_no_sooner(started).await;
    state.mail.wake();
    Ok(redirect_with_flash(redirect_to, Flash::info(message).with_email(email.as_str())))
}

/// For the `GET` of an address that only takes a form's `POST` (the
/// address bar shows it after a form's mistakes; a restored tab or a
/// bookmark asks for it): the page that form lives on.
fn go_to(page: &'static str) -> actix_web::Route {
    web::get().to(move || async move { crate::web::redirect(page) })
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// A form that has no fields besides its CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_session::{Session, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpRequest, HttpResponse, test, web};

    use super::read_with_session;
    use crate::auth::prefetch::Prefetched;
    use crate::auth::{DbSessionStore, SessionPolicy};
    use crate::db::testing::{database, user};
    use crate::db::{DatabaseUrl, Db};

    async fn sign_in(session: Session, user_id: web::Path<i64>) -> HttpResponse {
        session.insert("user_id", user_id.into_inner()).unwrap();
        HttpResponse::Ok().finish()
    }

    /// Says whether the session load brought this page's data.
    async fn page(req: HttpRequest) -> HttpResponse {
        let overview = Prefetched::take(&req);
        HttpResponse::Ok().body(overview.map_or("read apart".to_owned(), |o| format!("{} sessions", o.sessions.len())))
    }

    /// `GET /account`'s data comes with the session's own read, through
    /// actix-session's store, and only for that page.
    #[actix_web::test]
    async fn the_account_page_gets_its_data_from_the_session_load() {
        let (dir, mut conn) = database();
        let ann = user(&mut conn, "ann@example.com");
        let db = Db::new(&DatabaseUrl::parse(&dir.path().join("usher.db").to_string_lossy()), 4);
        let hour = Duration::from_secs(3600);
        let policy = SessionPolicy {
            idle_ttl: hour,
            absolute_ttl: hour,
            remember_ttl: hour,
            require_verification: true,
            require_approval: true,
        };
        let sessions = SessionMiddleware::new(DbSessionStore::new(db, policy), Key::generate());
        let app = test::init_service(
            App::new()
                .route("/sign-in/{id}", web::get().to(sign_in))
                .route("/account", web::get().to(page))
                .route("/account", web::post().to(page))
                .route("/admin", web::get().to(page))
                .wrap(sessions)
                .wrap(from_fn(read_with_session)),
        )
        .await;
        let signed_in =
            test::call_service(&app, test::TestRequest::get().uri(&format!("/sign-in/{ann}")).to_request()).await;
        let cookie = signed_in.response().cookies().next().expect("a session cookie").into_owned();

        let body = |req: test::TestRequest| {
            let req = req.cookie(cookie.clone()).to_request();
            async { String::from_utf8(test::call_and_read_body(&app, req).await.to_vec()).unwrap() }
        };
        assert_eq!(body(test::TestRequest::get().uri("/account")).await, "1 sessions");
        assert_eq!(body(test::TestRequest::post().uri("/account")).await, "read apart");
        assert_eq!(body(test::TestRequest::get().uri("/admin")).await, "read apart");
    }
}
