//! `/login/two-factor`: the second step of a sign-in for an account with a
//! second factor. The browser holds the challenge a right password opened
//! (`login::ask_for_second_factor`); a code from the authenticator app or a
//! recovery code completes the sign-in. Wrong codes count against the
//! account (`Bucket::SecondFactorAccount`); once they run out, the
//! challenge ends and the sign-in starts again later, password first.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::login::{SecondFactor, complete_sign_in};
use super::transition_context;
use crate::accounts::{self, CodeRefusal, Proof};
use crate::db::audit::{self, Event, EventKind};
use crate::db::now;
use crate::db::two_factor::{self, Challenge};
use crate::db::users::User;
use crate::domain::SignInBlock;
use crate::mail::messages::codes_left_in_words;
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::cookies::{ClearSecondFactor, RequestCookies};
use crate::web::forms::SignInForm;
use crate::web::return_to::DEFAULT_RETURN;
use crate::web::{AppError, ClientInfo, Flash, FormErrors, PageContext, redirect, redirect_with_flash, render};

#[derive(Deserialize)]
pub struct CodeForm {
    /// Six digits from the authenticator app, or a recovery code.
    code: String,
    /// The account the page asked for: a later password step in this
    /// browser (another tab, another account) replaces the challenge.
    account: i64,
}

#[derive(Template)]
#[template(path = "pages/sign_in_code.html")]
struct CodePage {
    ctx: PageContext,
    /// Whose code is asked for: the address typed with the password.
    email: String,
    account: i64,
    errors: FormErrors,
}

impl CodePage {
    async fn render(
        state: &AppState,
        ctx: PageContext,
        account: i64,
        status: StatusCode,
        errors: FormErrors,
    ) -> Result<HttpResponse, AppError> {
        let email = state.db.run_idempotent(move |conn| User::find(conn, account)).await?.map(|user| user.email);
        let Some(email) = email else { return Ok(start_again()) };
        Ok(render(status, &CodePage { ctx, email, account, errors }))
    }
}

/// The hash of this browser's challenge id, if it holds one.
fn challenge_hash(req: &HttpRequest) -> Option<Vec<u8>> {
    let id = req.extensions().get::<RequestCookies>().and_then(|cookies| cookies.second_factor.clone())?;
    Some(Sha256::digest(id.as_bytes()).to_vec())
}

/// This browser's challenge, if it is still open.
async fn live_challenge(req: &HttpRequest, state: &AppState) -> Result<Option<Challenge>, AppError> {
    let Some(id_hash) = challenge_hash(req) else { return Ok(None) };
    Ok(state.db.run_idempotent(move |conn| two_factor::live_challenge(conn, &id_hash, now())).await?)
}

/// No open challenge: back to the password, saying why.
fn start_again() -> HttpResponse {
    let flash = Flash::warning("Your sign-in took too long or was completed elsewhere. Sign in again.");
    let mut response = redirect_with_flash("/login", flash);
    response.extensions_mut().insert(ClearSecondFactor);
    response
}

/// A browser that never typed a password here: to the sign-in page.
fn no_challenge(req: &HttpRequest) -> Option<HttpResponse> {
    challenge_hash(req).is_none().then(|| redirect("/login"))
}

/// `GET /login/two-factor`: asks for the code.
pub async fn show(req: HttpRequest, ctx: PageContext, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if ctx.signed_in {
        // Back from the page a completed sign-in led to.
        return Ok(redirect(DEFAULT_RETURN));
    }
    if let Some(response) = no_challenge(&req) {
        return Ok(response);
    }
    let Some(challenge) = live_challenge(&req, &state).await? else { return Ok(start_again()) };
    CodePage::render(&state, ctx, challenge.user_id, StatusCode::OK, FormErrors::default()).await
}

/// What the code step found, under the account's lock.
enum Step {
    /// The challenge ended meanwhile (completed in another request, expired).
    Gone,
    /// The account may no longer sign in (disabled, rejected…).
    Blocked(SignInBlock),
    /// The code, checked; the account, as it is now.
    Checked(Result<Proof, CodeRefusal>, Box<User>),
}

/// `POST /login/two-factor` with `code`: a right code signs in (a recovery
/// code says how many are left); a wrong one gets the form again (422).
pub async fn submit(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    // Like the password form: a second press of the button, after the first
    // signed in, carries the browser's token and lands on the account page.
    SignInForm(form): SignInForm<CodeForm>,
) -> Result<HttpResponse, AppError> {
    if ctx.signed_in {
        return Ok(redirect(DEFAULT_RETURN));
    }
    if let Some(response) = no_challenge(&req) {
        return Ok(response);
    }
    let Some(challenge) = live_challenge(&req, &state).await? else { return Ok(start_again()) };
    let user_id = challenge.user_id;
    if form.account != user_id {
        let flash = Flash::warning(
            "This browser started signing in to another account since, in another tab. Sign in again to the one you want.",
        );
        return Ok(redirect_with_flash("/login", flash));
    }
    let hits = match state.rate_limit(vec![Bucket::SecondFactorAccount(user_id)]).await {
        Ok(hits) => hits,
        Err(refused) => return out_of_attempts(&state, ctx, &client, challenge, refused).await,
    };
    let blank = form.code.trim().is_empty();
    let (config, keys, throttle) = (state.config.clone(), state.keys.clone(), state.throttle);
    let (id_hash, for_context) = (challenge.id_hash, client.clone());
    let step = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &for_context);
                // Two submissions of one challenge take turns; the second finds it gone.
                if !two_factor::lock_challenge(conn, &id_hash, ctx.now)? || !User::lock(conn, user_id)? {
                    throttle.release(conn, &hits)?;
                    return Ok(Step::Gone);
                }
                let Some(user) = User::find(conn, user_id)? else { return Ok(Step::Gone) };
                let settings = &config.settings;
                if let Some(block) =
                    user.state().sign_in_block(settings.require_email_verification, settings.require_admin_approval)
                {
                    two_factor::close_challenge(conn, &id_hash)?;
                    return Ok(Step::Blocked(block));
                }
                let checked = accounts::prove_for_sign_in(conn, user_id, &form.code, &keys, ctx)?;
                match checked {
                    Ok(_) => {
                        two_factor::close_challenge(conn, &id_hash)?;
                        throttle.release(conn, &hits)?;
                    }
                    Err(CodeRefusal::KeyUnavailable) => throttle.release(conn, &hits)?,
                    Err(_) => {
                        let detail = "wrong two-step code";
                        let event = Event {
                            kind: EventKind::SignInFailed,
                            user_id: Some(user_id),
                            actor_id: Some(user_id),
                            ip: ctx.ip,
                            detail,
                        };
                        audit::record(conn, event, ctx.now)?;
                    }
                }
                Ok(Step::Checked(checked, Box::new(user)))
            })
        })
        .await?;
    let (proof, user) = match step {
        Step::Gone => return Ok(start_again()),
        Step::Blocked(block) => {
            let mut response = super::login::blocked_page(ctx, block);
            response.extensions_mut().insert(ClearSecondFactor);
            return Ok(response);
        }
        Step::Checked(Err(CodeRefusal::KeyUnavailable), _) => {
            return Err(AppError::Internal(anyhow::anyhow!("the stored authenticator key cannot be decrypted")));
        }
        Step::Checked(Err(refusal), _) => {
            let message = match refusal {
                CodeRefusal::AlreadyUsed => super::two_factor::ALREADY_USED,
                _ if blank => "Type the code from your app, or a recovery code.",
                _ => {
                    "That code is not right. Type the code your app shows now (it changes every 30 seconds), or a \
                     recovery code you have not used."
                }
            };
            let (status, errors) = (StatusCode::UNPROCESSABLE_ENTITY, FormErrors::one("code", message));
            return CodePage::render(&state, ctx, user_id, status, errors).await;
        }
        Step::Checked(Ok(proof), user) => (proof, *user),
    };
    let proven = SecondFactor::Proven;
    let Some(mut response) =
        complete_sign_in(&req, &state, client, user, challenge.remember, Vec::new(), None, proven).await?
    else {
        return Ok(start_again());
    };
    response.extensions_mut().insert(ClearSecondFactor);
    if let Proof::RecoveryCode { left } = proof {
        state.mail.wake();
        let flash = Flash::warning(format!("You signed in with a recovery code. {}", codes_left_in_words(left)));
        response.extensions_mut().insert(flash);
    }
    Ok(response)
}

/// Out of attempts for this account: this challenge ends (its cookie
/// goes), the owner is mailed, and the next password step waits out the
/// same limit.
async fn out_of_attempts(
    state: &AppState,
    ctx: PageContext,
    client: &ClientInfo,
    challenge: Challenge,
    refused: AppError,
) -> Result<HttpResponse, AppError> {
    let (config, client) = (state.config.clone(), client.clone());
    state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
                accounts::end_code_step_out_of_attempts(conn, &challenge.id_hash, challenge.user_id, ctx)
            })
        })
        .await?;
    state.mail.wake();
    let mut response = refused.page(&ctx);
    response.extensions_mut().insert(ClearSecondFactor);
    Ok(response)
}
