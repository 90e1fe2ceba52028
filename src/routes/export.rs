//! `GET /account/export`: what a person's own data download holds, after
//! "confirm it's you"; its button, `POST /account/export`, downloads it as
//! JSON (GDPR article 20). A page and a button rather than a link that
//! downloads: a download leaves the browser on the page it came from, which
//! after signing in or "confirm it's you" would be that form. Never a
//! password hash, a token, a code or another person's address.
//!
//! The shape is versioned (`"version": 1`); a change that removes or
//! renames a field raises the version. Times are RFC 3339 in UTC.
//!
//! ```json
//! { "format": "usher-account-export", "version": 1, "exported_at": "…",
//!   "account": { "id": 7, "email": "…", "email_verified_at": "…" | null,
//!                "approval": "approved", "administrator": false,
//!                "disabled_at": null, "created_at": "…", "last_sign_in_at": "…" | null },
//!   "pending_email_change": { "new_email": "…", "requested_at": "…", "expires_at": "…" } | null,
//!   "two_step_sign_in": { "turned_on_at": "…", "recovery_codes_left": 9 } | null,
//!   "groups": [ "staff", "wiki-editors" ] (an administrator is in `admins` too: see "administrator"),
//!   "sessions": [ { "started_at": "…", "last_seen_at": "…", "browser": "Firefox on Linux",
//!                   "user_agent": "…", "ip": "…", "keep_signed_in": false, "this_browser": true } ],
//!   "events": [ { "at": "…", "event": "signed in", "ip": "…" (empty for an administrator's action),
//!                 "by": "you" | "someone using the address" | "an administrator" | "the system",
//!                 "detail": "…" } ] }
//! ```

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Serialize;

use super::NoFields;
use crate::auth::{Reauthenticated, SessionData};
use crate::db::audit::{self, EventKind, EventRow};
use crate::db::email_changes::{self, EmailChange};
use crate::db::sessions::{self, SessionListing};
use crate::db::users::User;
use crate::db::{groups, now, two_factor};
use crate::domain::{Approval, describe_browser};
use crate::state::AppState;
use crate::web::{AppError, Form, PageContext, render};

/// The name of this format and its version.
const FORMAT: &str = "usher-account-export";
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Export {
    format: &'static str,
    version: u32,
    exported_at: String,
    account: AccountData,
    pending_email_change: Option<PendingChangeData>,
    /// Whether two-step sign-in is on; never its key or codes.
    two_step_sign_in: Option<TwoStepData>,
    /// The groups an administrator put the account in, sorted.
    groups: Vec<String>,
    sessions: Vec<SessionEntry>,
    events: Vec<EventData>,
}

#[derive(Serialize)]
struct AccountData {
    id: i64,
    email: String,
    email_verified_at: Option<String>,
    approval: &'static str,
    administrator: bool,
    disabled_at: Option<String>,
    created_at: String,
    last_sign_in_at: Option<String>,
}

#[derive(Serialize)]
struct TwoStepData {
    turned_on_at: String,
    recovery_codes_left: i64,
}

#[derive(Serialize)]
struct PendingChangeData {
    new_email: String,
    requested_at: String,
    expires_at: String,
}

#[derive(Serialize)]
struct SessionEntry {
    started_at: String,
    last_seen_at: String,
    browser: String,
    user_agent: String,
    ip: String,
    keep_signed_in: bool,
    this_browser: bool,
}

#[derive(Serialize)]
struct EventData {
    at: String,
    event: String,
    ip: String,
    /// "you", "someone using the address", "an administrator" or "the
    /// system": never another person's address.
    by: &'static str,
    detail: String,
}

/// Unix seconds as RFC 3339 in UTC.
fn time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(String::new, |at| at.to_rfc3339())
}

impl From<&User> for AccountData {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            email_verified_at: user.email_verified_at.map(time),
            approval: Approval::from_db(&user.approval).as_str(),
            administrator: user.is_admin,
            disabled_at: user.disabled_at.map(time),
            created_at: time(user.created_at),
            last_sign_in_at: user.last_sign_in_at.map(time),
        }
    }
}

impl From<EmailChange> for PendingChangeData {
    fn from(change: EmailChange) -> Self {
        Self { new_email: change.new_email, requested_at: time(change.created_at), expires_at: time(change.expires_at) }
    }
}

fn session_entry(row: SessionListing, current: Option<&str>) -> SessionEntry {
    SessionEntry {
        started_at: time(row.created_at),
        last_seen_at: time(row.last_seen_at),
        browser: describe_browser(&row.user_agent),
        this_browser: current == Some(row.public_id.as_str()),
        user_agent: row.user_agent,
        ip: row.ip,
        keep_signed_in: row.remember,
    }
}

/// Who caused an event, in words. Events anyone can cause by typing the
/// address (a failed sign-in, a reset request, a sign-up) are not "you".
/// An administrator's IP address is theirs, not the account's: left out.
fn event_data(row: EventRow) -> EventData {
    let by_anyone = [EventKind::SignInFailed, EventKind::ResetRequested, EventKind::Registered]
        .iter()
        .any(|kind| kind.as_str() == row.kind);
    let by = match row.actor_id {
        _ if by_anyone => "someone using the address",
        Some(actor) if Some(actor) == row.user_id => "you",
        Some(_) => "an administrator",
        None => "the system",
    };
    let ip = if by == "an administrator" { String::new() } else { row.ip };
    EventData { at: time(row.at), event: row.kind, ip, by, detail: row.detail }
}

/// Events about the account kept in the export: as many as the audit log
/// holds, up to this many (the newest).
const MAX_EVENTS: i64 = 10_000;

#[derive(Template)]
#[template(path = "pages/export.html")]
struct ExportPage {
    ctx: PageContext,
    email: String,
}

/// `GET /account/export`, after "confirm it's you": what the file holds,
/// and its button.
pub async fn show(
    user: Reauthenticated,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let account = state.db.run_idempotent(move |conn| User::find(conn, user_id)).await?.ok_or(AppError::NotFound)?;
    Ok(render(StatusCode::OK, &ExportPage { ctx, email: account.email }))
}

/// `POST /account/export`, after "confirm it's you": the download.
pub async fn download(
    req: HttpRequest,
    user: Reauthenticated,
    state: web::Data<AppState>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let user_id = user.user_id;
    let (account, pending, two_step, groups, session_rows, event_rows) = state
        .db
        .run_idempotent(move |conn| {
            let now = now();
            let two_step = match two_factor::find(conn, user_id)?.and_then(|row| row.enabled_at) {
                Some(on) => Some(TwoStepData {
                    turned_on_at: time(on),
                    recovery_codes_left: two_factor::codes_left(conn, user_id)?,
                }),
                None => None,
            };
            Ok((
                User::find(conn, user_id)?,
                email_changes::pending_for(conn, user_id, now)?,
                two_step,
                groups::member_names(conn, user_id)?,
                sessions::list_live_for_user(conn, user_id, now)?,
                audit::latest_for_user(conn, user_id, MAX_EVENTS)?,
            ))
        })
        .await?;
    let account = account.ok_or(AppError::NotFound)?;
    let current = SessionData::of(&req).public_id();
    let export = Export {
        format: FORMAT,
        version: VERSION,
        exported_at: time(now()),
        account: AccountData::from(&account),
        pending_email_change: pending.map(PendingChangeData::from),
        two_step_sign_in: two_step,
        groups,
        sessions: session_rows.into_iter().map(|row| session_entry(row, current.as_deref())).collect(),
        events: event_rows.into_iter().map(event_data).collect(),
    };
    let body = serde_json::to_vec_pretty(&export).map_err(|e| AppError::Internal(e.into()))?;
    let day =
        chrono::DateTime::from_timestamp(now(), 0).map_or_else(String::new, |at| at.format("%Y-%m-%d").to_string());
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CONTENT_DISPOSITION, format!("attachment; filename=\"account-{day}.json\"")))
        .body(body))
}
