//! Extractors that let a handler run only for the right visitor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use super::SessionData;
use crate::web::AppError;
use crate::web::return_to::return_target_of;

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
            None => Err(SignInRequired { next: return_target_of(req) }),
        };
        ready(result)
    }
}

/// A signed-in administrator. The session store reads the account with the
/// session on every request, so a demoted or disabled admin loses access at
/// once. Anonymous visitors are sent to sign in; other users get 403.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser {
    pub user_id: i64,
}

impl FromRequest for AdminUser {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let result =
            SignedInUser::from_request(req, payload).into_inner().map_err(actix_web::Error::from).and_then(|user| {
                match SessionData::of(req).account() {
                    Some(account) if account.is_admin => Ok(Self { user_id: user.user_id }),
                    _ => Err(AppError::Forbidden.into()),
                }
            });
        ready(result)
    }
}
