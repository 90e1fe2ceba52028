//! Invitations. For administrators: `GET, POST /admin/invitations` lists
//! them and invites an address into chosen groups;
//! `POST /admin/invitations/{id}/revoke` withdraws one and
//! `POST /admin/invitations/{id}/resend` mails it again with a new link.
//! For the invited: `GET /invite?token=T` shows the sign-up form (looking
//! uses nothing), `POST /invite` creates the account and signs it in. The
//! rules are in `accounts/invitations.rs`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::admin::{AdminNav, admin_nav};
use super::login::{SecondFactor, complete_sign_in};
use super::{NoFields, transition_context};
use crate::accounts::{self, AcceptRefusal, InviteRefusal};
use crate::auth::AdminUser;
use crate::db::invitations::{self, InvitationState};
use crate::db::users::User;
use crate::db::{groups, now};
use crate::domain::{EmailAddress, GroupName, PlainToken};
use crate::mail::messages::lifetime;
use crate::state::AppState;
use crate::web::{
    AppError, ClientInfo, Flash, Form, FormErrors, Moment, PageContext, redirect, redirect_with_flash, render,
};

/// How many invitations the list shows, newest first.
const LISTED: i64 = 200;

/// An invitation as the list shows it.
pub struct InvitationView {
    id: i64,
    email: String,
    /// The same address with a Unicode domain, when it differs.
    email_unicode: Option<String>,
    state: &'static str,
    /// Withdrawn or sent again from the list: pending, or (re-send only) expired.
    revocable: bool,
    resendable: bool,
    groups: String,
    invited_by: String,
    created: Moment,
    expires: Moment,
    /// The account it created.
    user_id: Option<i64>,
}

/// A group the invitation form offers, ticked or not.
pub struct GroupChoice {
    name: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "pages/admin/invitations.html")]
struct InvitationsPage {
    ctx: PageContext,
    nav: AdminNav,
    invitations: Vec<InvitationView>,
    groups: Vec<GroupChoice>,
    /// The address typed, shown again after a mistake.
    typed: String,
    errors: FormErrors,
    /// The account the address typed has already.
    existing_user: Option<i64>,
    /// The pending invitation the address typed has already.
    pending_invitation: Option<i64>,
    /// How long a new invitation's link works, in words.
    lasts: String,
}

/// What the form sent, kept to show it again.
#[derive(Default)]
struct Typed {
    email: String,
    groups: Vec<String>,
}

/// What an invitation refused has to show besides its message.
#[derive(Default)]
struct Offer {
    existing_user: Option<i64>,
    pending_invitation: Option<i64>,
}

async fn invitations_page(
    state: &AppState,
    ctx: PageContext,
    typed: Typed,
    status: StatusCode,
    errors: FormErrors,
    offer: Offer,
) -> Result<HttpResponse, AppError> {
    let (rows, names, nav) = state
        .db
        .run(|conn| {
            let rows = invitations::newest(conn, LISTED)?;
            let inviters: Vec<i64> = rows.iter().map(|row| row.invited_by).collect();
            let names: std::collections::HashMap<i64, String> = User::names_of(conn, &inviters)?.into_iter().collect();
            Ok(((rows, names), groups::names(conn)?, admin_nav(conn, "invitations")?))
        })
        .await?;
    let now = now();
    let (rows, inviters) = rows;
    let invitations = rows
        .into_iter()
        .map(|row| {
            let state = row.state(now);
            InvitationView {
                id: row.id,
                email_unicode: EmailAddress::unicode_form(&row.email),
                state: state.as_str(),
                revocable: state == InvitationState::Pending,
                resendable: matches!(state, InvitationState::Pending | InvitationState::Expired),
                groups: row.groups().join(", "),
                invited_by: inviters.get(&row.invited_by).cloned().unwrap_or_default(),
                created: Moment::new(row.created_at, now),
                expires: Moment::new(row.expires_at, now),
                user_id: row.user_id,
                email: row.email,
            }
        })
        .collect();
    let groups = names.into_iter().map(|name| GroupChoice { checked: typed.groups.contains(&name), name }).collect();
    let page = InvitationsPage {
        ctx,
        nav,
        invitations,
        groups,
        typed: typed.email,
        errors,
        existing_user: offer.existing_user,
        pending_invitation: offer.pending_invitation,
        lasts: lifetime(state.config.settings.invitation_ttl),
    };
    Ok(render(status, &page))
}

/// `GET /admin/invitations`: the form that invites an address, and every
/// invitation with its state (pending, accepted, expired, revoked),
/// newest first.
pub async fn list(_admin: AdminUser, ctx: PageContext, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    invitations_page(&state, ctx, Typed::default(), StatusCode::OK, FormErrors::default(), Offer::default()).await
}

/// `POST /admin/invitations`: invites `email` into the ticked `groups`
/// (any number of them). A bad address or group shows the form again
/// (422); an address that has an account (409) links to it and sends
/// nothing; one with a pending invitation (409) offers to send that again.
pub async fn create(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    client: ClientInfo,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let mut typed = Typed::default();
    let mut emails = 0;
    for (name, value) in fields {
        match name.as_str() {
            "email" => {
                emails += 1;
                typed.email = value;
            }
            "groups" => typed.groups.push(value),
            _ => {}
        }
    }
    if emails > 1 {
        return Err(AppError::BadRequest("The form has a repeated field.".into()));
    }
    let mut errors = FormErrors::default();
    let email = EmailAddress::parse(&typed.email).map_err(|problem| errors.add("email", problem)).ok();
    let mut group_names = Vec::new();
    for name in &typed.groups {
        match GroupName::parse(name) {
            Ok(name) => group_names.push(name),
            Err(problem) => errors.add("groups", problem),
        }
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return invitations_page(&state, ctx, typed, status, errors, Offer::default()).await;
    };
    let config = state.config.clone();
    let address = email.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
                accounts::invite(conn, admin.user_id, &address, &group_names, ctx)
            })
        })
        .await?;
    let refusal = match outcome {
        Ok(_) => {
            state.mail.wake();
            let lasts = lifetime(state.config.settings.invitation_ttl);
            let message = format!("{} was invited. The link in the mail works once, for {lasts}.", email.as_str());
            return Ok(redirect_with_flash("/admin/invitations", Flash::success(message)));
        }
        Err(refusal) => refusal,
    };
    let (status, offer) = match &refusal {
        InviteRefusal::AlreadyUser { user_id, .. } => {
            (StatusCode::CONFLICT, Offer { existing_user: Some(*user_id), ..Offer::default() })
        }
        InviteRefusal::AlreadyInvited { invitation_id, .. } => {
            (StatusCode::CONFLICT, Offer { pending_invitation: Some(*invitation_id), ..Offer::default() })
        }
        InviteRefusal::SignUpClosed => (StatusCode::CONFLICT, Offer::default()),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, Offer::default()),
    };
    let field = match refusal {
        InviteRefusal::BuiltInGroup | InviteRefusal::NoSuchGroup(_) => "groups",
        _ => "email",
    };
    invitations_page(&state, ctx, typed, status, FormErrors::one(field, refusal), offer).await
}

/// `POST /admin/invitations/{id}/revoke`: withdraws a pending invitation.
pub async fn revoke(
    admin: AdminUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<i64>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let outcome = on_invitation(&state, admin.user_id, client, id.into_inner(), accounts::revoke_invitation).await?;
    let flash = match outcome {
        Ok(email) => Flash::success(format!("The invitation of {email} was withdrawn; its link no longer works.")),
        Err(InviteRefusal::NoSuchInvitation) => return Err(AppError::NotFound),
        Err(refusal) => Flash::error(refusal.to_string()),
    };
    Ok(redirect_with_flash("/admin/invitations", flash))
}

/// `POST /admin/invitations/{id}/resend`: mails a pending or expired
/// invitation again with a new link; the older link stops working.
pub async fn resend(
    admin: AdminUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<i64>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let outcome = on_invitation(&state, admin.user_id, client, id.into_inner(), accounts::resend_invitation).await?;
    let flash = match outcome {
        Ok(email) => {
            state.mail.wake();
            Flash::success(format!(
                "The invitation of {email} was sent again, with a new link that works for {}. The older link no longer works.",
                lifetime(state.config.settings.invitation_ttl)
            ))
        }
        Err(InviteRefusal::NoSuchInvitation) => return Err(AppError::NotFound),
        Err(InviteRefusal::AlreadyUser { email, .. }) => {
            Flash::error(format!("{email} is already a user; nothing was sent."))
        }
        Err(refusal) => Flash::error(refusal.to_string()),
    };
    Ok(redirect_with_flash("/admin/invitations", flash))
}

/// An administrator's rule about one invitation (`accounts::revoke_invitation`,
/// `resend_invitation`): the invited address, or why not.
type InvitationRule =
    fn(&mut crate::db::DbConnection, i64, i64, accounts::Context) -> diesel::QueryResult<Result<String, InviteRefusal>>;

/// Runs `rule` on invitation `id` for `actor` in a write transaction.
async fn on_invitation(
    state: &AppState,
    actor: i64,
    client: ClientInfo,
    id: i64,
    rule: InvitationRule,
) -> Result<Result<String, InviteRefusal>, AppError> {
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| conn.write(|conn| rule(conn, actor, id, transition_context(&config, &client))))
        .await?;
    Ok(outcome)
}

/// `GET` of the addresses that only take a `POST`: the list, where their
/// buttons are.
pub async fn to_list(_admin: AdminUser) -> HttpResponse {
    redirect("/admin/invitations")
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The sign-up form of an invitation.
#[derive(Deserialize)]
pub struct AcceptForm {
    token: String,
    password: String,
    password_confirm: String,
}

#[derive(Template)]
#[template(path = "pages/invite.html")]
struct InvitePage {
    ctx: PageContext,
    /// The invited address: fixed, shown, not sent back.
    email: String,
    token: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/invite_failed.html")]
struct InviteFailedPage {
    ctx: PageContext,
    refusal: AcceptRefusal,
}

impl InviteFailedPage {
    fn title(&self) -> &'static str {
        match self.refusal {
            AcceptRefusal::Unknown => "This invitation link is not valid",
            AcceptRefusal::Expired => "This invitation has expired",
            AcceptRefusal::Revoked => "This invitation was withdrawn",
            AcceptRefusal::Used => "This invitation was used already",
            AcceptRefusal::AccountExists => "There is already an account with this address",
            AcceptRefusal::InviterGone => "This invitation no longer stands",
            AcceptRefusal::SignUpClosed => "Sign-up is closed",
        }
    }

    fn status(&self) -> StatusCode {
        match self.refusal {
            AcceptRefusal::Unknown => StatusCode::NOT_FOUND,
            AcceptRefusal::AccountExists => StatusCode::CONFLICT,
            AcceptRefusal::SignUpClosed => StatusCode::FORBIDDEN,
            AcceptRefusal::Expired | AcceptRefusal::Revoked | AcceptRefusal::Used | AcceptRefusal::InviterGone => {
                StatusCode::GONE
            }
        }
    }
}

fn failed(ctx: PageContext, refusal: AcceptRefusal) -> HttpResponse {
    let page = InviteFailedPage { ctx, refusal };
    render(page.status(), &page)
}

fn parse_token(raw: &str) -> Result<PlainToken, AppError> {
    PlainToken::parse(raw).ok_or_else(|| {
        AppError::BadRequest("This invitation link is incomplete. Copy the whole link from the email.".into())
    })
}

/// `GET /invite?token=T`: the sign-up form for the invited address, if
/// the invitation can still be accepted; else a page that says why.
/// Looking uses nothing.
pub async fn show(
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    if sign_up_closed(&state) {
        return Ok(super::register::closed_page(ctx, StatusCode::OK));
    }
    let token = parse_token(query.token.as_deref().unwrap_or_default())?;
    let hash = token.hash();
    let checked = state.db.run(move |conn| accounts::check_invitation(conn, &hash, now())).await?;
    Ok(match checked {
        Ok(invitation) => {
            let page = InvitePage {
                ctx,
                email: display_address(&invitation.email),
                token: token.expose().to_owned(),
                errors: FormErrors::default(),
            };
            render(StatusCode::OK, &page)
        }
        Err(refusal) => failed(ctx, refusal),
    })
}

/// `POST /invite`: creates the invited account with the password chosen
/// (verified, approved, in the invitation's groups) if this request wins
/// the link, and signs it in as a sign-in would. A password the policy
/// refuses shows the form again (422); a link that can no longer be used,
/// also by a second submission, gets a page that says why, and changes
/// nothing.
pub async fn accept(
    req: HttpRequest,
    ctx: PageContext,
    client: ClientInfo,
    state: web::Data<AppState>,
    Form(form): Form<AcceptForm>,
) -> Result<HttpResponse, AppError> {
    let token = parse_token(&form.token)?;
    let hash = token.hash();
    let checked = state.db.run(move |conn| accounts::check_invitation(conn, &hash, now())).await?;
    let invitation = match checked {
        Ok(invitation) => invitation,
        Err(refusal) => return Ok(failed(ctx, refusal)),
    };
    let email = EmailAddress::parse(&invitation.email).map_err(|e| AppError::Internal(e.into()))?;
    let password = match state.check_new_password(&form.password, &form.password_confirm, Some(&email)).await? {
        Ok(password) => password,
        Err(problems) => {
            let mut errors = FormErrors::default();
            errors.add_password_problems(problems);
            let page =
                InvitePage { ctx, email: display_address(&invitation.email), token: token.expose().to_owned(), errors };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let password_hash = state.hasher.hash(password).await?;
    let (config, hash, ip, user_agent) =
        (state.config.clone(), token.hash(), client.ip.clone(), client.user_agent.clone());
    let accepted = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = accounts::Context { config: &config, ip: &ip, user_agent: &user_agent, now: now() };
                accounts::accept_invitation(conn, &hash, &password_hash, ctx)
            })
        })
        .await?;
    let user = match accepted {
        Ok(user) => user,
        Err(refusal) => return Ok(failed(ctx, refusal)),
    };
    state.mail.wake();
    match complete_sign_in(&req, &state, client, user, false, Vec::new(), None, SecondFactor::NotOn).await? {
        Some(response) => Ok(response),
        // Deleted the instant it was made: the link was used all the same.
        None => Ok(failed(ctx, AcceptRefusal::Used)),
    }
}

/// Whether sign-up is closed altogether, invitations included.
fn sign_up_closed(state: &AppState) -> bool {
    !state.config.settings.registration.admits_invitations()
}

/// The address as stored, with its Unicode form beside it when that differs.
fn display_address(stored: &str) -> String {
    match EmailAddress::unicode_form(stored) {
        Some(unicode) => format!("{unicode} ({stored})"),
        None => stored.to_owned(),
    }
}
