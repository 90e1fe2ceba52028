//! `/account/two-factor`: a person turns two-step sign-in (an
//! authenticator app, RFC 6238) on or off and renews their recovery codes.
//! Every step needs a recent password ("confirm it's you"); what each does
//! is `accounts::two_factor`'s to say.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{NoFields, transition_context};
use crate::accounts::{self, CodeRefusal, SecondFactorState};
use crate::auth::{Reauthenticated, SessionData};
use crate::db::two_factor;
use crate::db::users::User;
use crate::domain::{TotpSecret, qr_svg};
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect, redirect_with_flash, render};

const PAGE: &str = "/account/two-factor";

/// A code whose 30-second step was accepted already (RFC 6238 §5.2).
pub(super) const ALREADY_USED: &str =
    "That code was used already. Wait for your app to show the next one (a new code every 30 seconds), then type it.";

#[derive(Deserialize)]
pub struct RenewForm {
    /// The set of recovery codes the page was shown with
    /// (`two_factor::codes_generation`): a form sent again renews nothing.
    set: i64,
}

#[derive(Deserialize)]
pub struct CodeForm {
    /// Six digits from the authenticator app (or, to turn it off, a
    /// recovery code).
    code: String,
}

/// A pending enrolment as the page shows it.
struct EnrolmentView {
    /// Inline SVG markup of the `otpauth://` URI's QR code.
    qr_svg: String,
    /// The base32 secret in groups of four, for typing in.
    grouped_secret: String,
    otpauth_uri: String,
}

#[derive(Template)]
#[template(path = "pages/two_factor.html")]
struct TwoFactorPage {
    ctx: PageContext,
    enrolment: Option<EnrolmentView>,
    /// `Some(left)` when two-step sign-in is on.
    codes_left: Option<i64>,
    /// `USHER_REQUIRE_TWO_FACTOR` holds this account: it cannot be turned off.
    required: bool,
    /// Names the current set of recovery codes, for the renewal form.
    codes_set: i64,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/recovery_codes.html")]
struct RecoveryCodesPage {
    ctx: PageContext,
    /// Said above the codes: what just happened.
    heading: &'static str,
    lead: String,
    codes: Vec<String>,
}

fn enrolment_view(secret: &TotpSecret, site: &str, email: &str) -> EnrolmentView {
    let otpauth_uri = secret.otpauth_uri(site, email);
    EnrolmentView {
        qr_svg: qr_svg(&otpauth_uri, "QR code to scan with an authenticator app"),
        grouped_secret: secret.grouped(),
        otpauth_uri,
    }
}

async fn page(
    state: &AppState,
    ctx: PageContext,
    user_id: i64,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let keys = state.keys.clone();
    let (user, second_factor, codes_set) = state
        .db
        .run(move |conn| {
            Ok((
                User::find(conn, user_id)?,
                accounts::second_factor_state(conn, user_id, &keys)?,
                two_factor::codes_generation(conn, user_id)?,
            ))
        })
        .await?;
    let user = user.ok_or(AppError::NotFound)?;
    let (enrolment, codes_left) = match &second_factor {
        SecondFactorState::Off => (None, None),
        SecondFactorState::Pending(secret) => {
            (Some(enrolment_view(secret, &state.config.settings.site_name, &user.email)), None)
        }
        SecondFactorState::On { codes_left } => (None, Some(*codes_left)),
    };
    let required = state.config.settings.require_two_factor.applies_to(user.is_admin);
    Ok(render(status, &TwoFactorPage { ctx, enrolment, codes_left, required, codes_set, errors }))
}

/// `GET /account/two-factor`: whether it is on, and the forms that change it.
pub async fn show(
    user: Reauthenticated,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    page(&state, ctx, user.user_id, StatusCode::OK, FormErrors::default()).await
}

/// `POST /account/two-factor/enrol`: a new secret waits for its first code
/// on the page (a pending one is replaced).
pub async fn enrol(
    user: Reauthenticated,
    state: web::Data<AppState>,
    Form(_): Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let (user_id, keys) = (user.user_id, state.keys.clone());
    let started = state
        .db
        .run(move |conn| conn.write(|conn| accounts::start_enrolment(conn, user_id, &keys, crate::db::now())))
        .await?;
    if started.is_none() {
        return Ok(redirect_with_flash(PAGE, Flash::info("Two-step sign-in is already on.")));
    }
    Ok(redirect(PAGE))
}

/// `POST /account/two-factor/confirm` with `code`: the first code turns it
/// on, ends the other sessions and shows the recovery codes once.
pub async fn confirm(
    req: HttpRequest,
    user: Reauthenticated,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let keep = SessionData::of(&req).public_id().unwrap_or_default();
    let (config, keys) = (state.config.clone(), state.keys.clone());
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
                accounts::confirm_enrolment(conn, user_id, &keep, &form.code, &keys, ctx)
            })
        })
        .await?;
    match outcome {
        Ok(enabled) => {
            // The session keeps its id (it was authenticated, not changed), so the
            // page's forms work, and a reload finds it on and says so.
            state.mail.wake();
            let lead = match enabled.sessions_ended {
                0 => "From now on, signing in needs your password and a code from your app.".to_owned(),
                1 => "From now on, signing in needs your password and a code from your app. Your other session was signed out.".to_owned(),
                n => format!("From now on, signing in needs your password and a code from your app. Your {n} other sessions were signed out."),
            };
            let page =
                RecoveryCodesPage { ctx, heading: "Two-step sign-in is on", lead, codes: enabled.recovery_codes };
            Ok(render(StatusCode::OK, &page))
        }
        Err(refusal @ (CodeRefusal::WrongCode | CodeRefusal::AlreadyUsed)) => {
            let message = match refusal {
                CodeRefusal::AlreadyUsed => ALREADY_USED,
                _ => {
                    "That code is not right. Type the 6 digits your app shows now for the key on this page (if you \
                     started again in another tab, the key changed: scan it again). If it keeps failing, check that \
                     the time on your device is right."
                }
            };
            page(&state, ctx, user_id, StatusCode::UNPROCESSABLE_ENTITY, FormErrors::one("code", message)).await
        }
        Err(CodeRefusal::NothingToDo) => Ok(redirect_with_flash(
            PAGE,
            Flash::info(
                "Nothing to turn on: it is on already, or its setup was started again. Here is where it stands.",
            ),
        )),
        Err(CodeRefusal::KeyUnavailable) => Err(key_unavailable()),
    }
}

/// The stored key cannot be decrypted: the server's settings are at fault.
fn key_unavailable() -> AppError {
    AppError::Internal(anyhow::anyhow!("the stored authenticator key cannot be decrypted"))
}

/// `POST /account/two-factor/recovery-codes`: a new set, shown once; the
/// old set stops working.
pub async fn renew_codes(
    user: Reauthenticated,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<RenewForm>,
) -> Result<HttpResponse, AppError> {
    let (user_id, config) = (user.user_id, state.config.clone());
    let codes = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
                accounts::renew_recovery_codes(conn, user_id, form.set, ctx)
            })
        })
        .await?;
    let Some(codes) = codes else {
        let flash = Flash::warning(
            "No new codes were made: this form was sent before (the codes shown then are the ones that work), or \
             two-step sign-in is off.",
        );
        return Ok(redirect_with_flash(PAGE, flash));
    };
    state.mail.wake();
    let lead = "Your earlier recovery codes no longer work.".to_owned();
    Ok(render(StatusCode::OK, &RecoveryCodesPage { ctx, heading: "New recovery codes", lead, codes }))
}

/// `POST /account/two-factor/disable` with `code` (a current code or a
/// recovery code): turns it off and ends the other sessions.
pub async fn disable(
    req: HttpRequest,
    user: Reauthenticated,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let session = SessionData::of(&req);
    let is_admin = session.account().is_some_and(|account| account.is_admin);
    if state.config.settings.require_two_factor.applies_to(is_admin) {
        let errors = FormErrors::one(
            "code",
            "This site requires two-step sign-in for your account, so it cannot be turned off. If you lose your \
             device, use a recovery code, or ask an administrator to reset it.",
        );
        return page(&state, ctx, user_id, StatusCode::CONFLICT, errors).await;
    }
    let keep = session.public_id().unwrap_or_default();
    // Guesses here count like wrong codes at sign-in.
    let hits = state.rate_limit(vec![Bucket::SecondFactorAccount(user_id)]).await?;
    let (config, keys, throttle) = (state.config.clone(), state.keys.clone(), state.throttle);
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
                let outcome = accounts::turn_off(conn, user_id, &keep, &form.code, &keys, ctx)?;
                if !matches!(outcome, Err(CodeRefusal::WrongCode | CodeRefusal::AlreadyUsed)) {
                    throttle.release(conn, &hits)?;
                }
                Ok(outcome)
            })
        })
        .await?;
    match outcome {
        Ok(ended) => {
            state.mail.wake();
            let others = match ended {
                0 => String::new(),
                1 => " Your other session was signed out.".to_owned(),
                n => format!(" Your {n} other sessions were signed out."),
            };
            Ok(redirect_with_flash("/account", Flash::info(format!("Two-step sign-in is off.{others}"))))
        }
        Err(refusal @ (CodeRefusal::WrongCode | CodeRefusal::AlreadyUsed)) => {
            let message = match refusal {
                CodeRefusal::AlreadyUsed => ALREADY_USED,
                _ => "That code is not right. Type the code your app shows now, or a recovery code you have not used.",
            };
            page(&state, ctx, user_id, StatusCode::UNPROCESSABLE_ENTITY, FormErrors::one("code", message)).await
        }
        Err(CodeRefusal::NothingToDo) => Ok(redirect_with_flash(PAGE, Flash::info("Two-step sign-in is already off."))),
        Err(CodeRefusal::KeyUnavailable) => Err(key_unavailable()),
    }
}
