//! Extractors that let a handler run only for the right visitor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use super::SessionData;
use crate::web::AppError;
use crate::web::return_to::return_target_of;

/// A signed-in user. The session store has already checked that the
/// account may still sign in; anyone else is sent to the sign-in page, and
/// someone who must first set up two-step sign-in to its setup.
#[derive(Clone, Copy, Debug)]
pub struct SignedInUser {
    pub user_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInRequired {
    /// Anonymous: sign in, then come back to `next`.
    #[error("sign-in required")]
    SignIn { next: String },
    /// `USHER_REQUIRE_TWO_FACTOR` holds this account to set up two-step
    /// sign-in before any other page.
    #[error("two-step sign-in must be set up first")]
    EnrolFirst,
}

/// Where someone who must set up two-step sign-in may still go: its
/// setup and "confirm it's you" (signing out takes no guard).
const ENROLMENT_PATHS: [&str; 2] = ["/account/two-factor", "/account/reauth"];

/// Whether `USHER_REQUIRE_TWO_FACTOR` holds the signed-in account of
/// `req` to set up two-step sign-in before reaching this page.
fn enrolment_due(req: &HttpRequest) -> bool {
    use crate::config::RequireTwoFactor;
    let Some(state) = req.app_data::<actix_web::web::Data<crate::state::AppState>>() else { return false };
    let policy = state.config.settings.require_two_factor;
    // Checked first: with the default (off), no signed-in request parses the loaded account here.
    if policy == RequireTwoFactor::Off {
        return false;
    }
    let Some(account) = SessionData::of(req).account() else { return false };
    let required = policy.applies_to(account.is_admin);
    let path = req.path();
    let exempt = ENROLMENT_PATHS
        .iter()
        .any(|allowed| path.strip_prefix(allowed).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
    required && !account.two_factor && !exempt
}

impl ResponseError for SignInRequired {
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next } => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                crate::web::redirect(&format!("/login?{query}"))
            }
            Self::EnrolFirst => {
                let flash = crate::web::Flash::warning(
                    "This site asks you to set up two-step sign-in before anything else. It takes a minute.",
                );
                crate::web::redirect_with_flash("/account/two-factor", flash)
            }
        }
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
            Some(_) if enrolment_due(req) => Err(SignInRequired::EnrolFirst),
            Some(user_id) => Ok(Self { user_id }),
            None => Err(SignInRequired::SignIn { next: return_target_of(req) }),
        };
        ready(result)
    }
}

/// A signed-in user who typed their password within `USHER_REAUTH_TTL`
/// (at sign-in, on "confirm it's you", or changing it): ASVS 3.7.1. Anyone
/// else signed in is sent to `/account/reauth` and back: a `GET` to itself,
/// a form posted too late to the page the form was on (the action's own
/// URL may answer only `POST`). Anonymous visitors are sent to sign in.
#[derive(Clone, Copy, Debug)]
pub struct Reauthenticated {
    pub user_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReauthRequired {
    #[error("sign-in required")]
    SignIn(SignInRequired),
    #[error("re-authentication required")]
    Password { next: String },
}

impl ResponseError for ReauthRequired {
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn(sign_in) => sign_in.error_response(),
            Self::Password { next } => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                crate::web::redirect(&format!("/account/reauth?{query}"))
            }
        }
    }

    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SEE_OTHER
    }
}

impl Reauthenticated {
    /// The signed-in user of `req` if their password is recent enough.
    pub fn check(req: &HttpRequest) -> Result<Self, ReauthRequired> {
        let session = SessionData::of(req);
        let Some(user_id) = session.user_id() else {
            return Err(ReauthRequired::SignIn(SignInRequired::SignIn { next: return_target_of(req) }));
        };
        if enrolment_due(req) {
            return Err(ReauthRequired::SignIn(SignInRequired::EnrolFirst));
        }
        let ttl = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map_or(0, |state| state.config.settings.reauth_ttl.as_secs() as i64);
        let fresh = session.reauthenticated_at().is_some_and(|at| crate::db::now() - at < ttl);
        if fresh { Ok(Self { user_id }) } else { Err(ReauthRequired::Password { next: return_target_of(req) }) }
    }
}

impl FromRequest for Reauthenticated {
    type Error = ReauthRequired;
    type Future = Ready<Result<Self, ReauthRequired>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::check(req))
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
