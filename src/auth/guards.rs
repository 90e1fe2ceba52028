//! Extractors that let a handler run only for the right visitor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use super::SessionData;

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
