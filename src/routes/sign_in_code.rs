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

use super::login::complete_sign_in;
use super::transition_context;
use crate::accounts::{self, Proof};
use crate::db::audit::{self, Event, EventKind};
use crate::db::now;
use crate::db::two_factor::{self, Challenge};
use crate::db::users::User;
use crate::mail::messages::codes_left_in_words;
use crate::state::AppState;
use crate::throttle::Bucket;
use crate::web::cookies::{ClearSecondFactor, RequestCookies};
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect_with_flash, render};

#[derive(Deserialize)]
pub struct CodeForm {
    /// Six digits from the authenticator app, or a recovery code.
    code: String,
}

#[derive(Template)]
#[template(path = "pages/sign_in_code.html")]
struct CodePage {
    ctx: PageContext,
    errors: FormErrors,
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

/// `GET /login/two-factor`: asks for the code.
pub async fn show(req: HttpRequest, ctx: PageContext, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if live_challenge(&req, &state).await?.is_none() {
        return Ok(start_again());
    }
    Ok(render(StatusCode::OK, &CodePage { ctx, errors: FormErrors::default() }))
}

/// `POST /login/two-factor` with `code`: a right code signs in (a recovery
/// code says how many are left); a wrong one gets the form again (422).
pub async fn submit(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let Some(challenge) = live_challenge(&req, &state).await? else { return Ok(start_again()) };
    let user_id = challenge.user_id;
    let hits = match state.rate_limit(vec![Bucket::SecondFactorAccount(user_id)]).await {
        Ok(hits) => hits,
        Err(refused) => {
            // Out of attempts: this challenge ends, and the limit holds for new ones.
            let id_hash = challenge.id_hash.clone();
            state.db.run(move |conn| two_factor::close_challenge(conn, &id_hash)).await?;
            return Err(refused.as_sign_in_lockout());
        }
    };
    let (config, keys, id_hash, for_context) =
        (state.config.clone(), state.keys.clone(), challenge.id_hash, client.clone());
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &for_context);
                if two_factor::live_challenge(conn, &id_hash, ctx.now)?.is_none() {
                    return Ok(None);
                }
                let proof = accounts::prove_for_sign_in(conn, user_id, &form.code, &keys, ctx)?;
                match proof {
                    Some(_) => drop(two_factor::close_challenge(conn, &id_hash)?),
                    None => {
                        let detail = "wrong second-factor code";
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
                Ok(Some((proof, User::find(conn, user_id)?)))
            })
        })
        .await?;
    let (proof, user) = match outcome {
        None => return Ok(start_again()),
        Some((None, _)) => {
            let errors = FormErrors::one(
                "code",
                "That code is not right. Type the code your app shows now (it changes every 30 seconds), or a recovery code you have not used.",
            );
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &CodePage { ctx, errors }));
        }
        Some((Some(proof), user)) => (proof, user),
    };
    let Some(user) = user else { return Ok(start_again()) };
    let Some(mut response) = complete_sign_in(&req, &state, client, user, challenge.remember, hits, None).await? else {
        return Ok(start_again());
    };
    response.extensions_mut().insert(ClearSecondFactor);
    if let Proof::RecoveryCode { left } = proof {
        state.mail.wake();
        response
            .extensions_mut()
            .insert(Flash::warning(format!("You signed in with a recovery code. {}", codes_left_in_words(left))));
    }
    Ok(response)
}
