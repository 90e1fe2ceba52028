//! Extractors that let a handler run only for the right visitor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use super::SessionData;
use crate::web::AppError;

/// A signed-in user. The session store has already checked that the
/// account may still sign in; anyone else is sent to the sign-in page.
#[derive(Clone, Copy, Debug)]
pub struct SignedInUser {
    pub user_id: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("sign-in required")]
pub struct SignInRequired {
    next: String,
}

impl ResponseError for SignInRequired {
    fn error_response(&self) -> HttpResponse {
        let query = serde_urlencoded::to_string([("next", &self.next)]).unwrap_or_default();
        crate::web::redirect(&format!("/login?{query}"))
    }

    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SEE_OTHER
    }
}

impl FromRequest for SignedInUser {
    type Error = SignInRequired;
    type Future = Ready<Result<Self, SignInRequired>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match SessionData::of(req).user_id() {
            Some(user_id) => Ok(Self { user_id }),
            None => Err(SignInRequired { next: req.uri().path().to_owned() }),
        };
        ready(result)
    }
}

/// A signed-in administrator. Checked against the database on every
/// request, so a demoted or disabled admin loses access at once. Anonymous
/// visitors are sent to sign in; other users get 403.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser {
    pub user_id: i64,
}

impl FromRequest for AdminUser {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedInUser::from_request(req, payload).into_inner();
        let state = req.app_data::<actix_web::web::Data<crate::state::AppState>>().cloned();
        Box::pin(async move {
            let user = signed_in?;
            let state = state.expect("app state");
            let user_id = user.user_id;
            let account =
                state.db.run(move |conn| crate::db::users::User::find(conn, user_id)).await.map_err(AppError::from)?;
            match account {
                Some(account) if account.is_admin && account.disabled_at.is_none() => Ok(Self { user_id }),
                _ => Err(AppError::Forbidden.into()),
            }
        })
    }
}
