//! Administration: sign-ups waiting for approval, the user list, a user's
//! recent security events, the event log, and mail that could not be sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::accounts::{self, AdminAction, Context, Refusal};
use crate::auth::AdminUser;
use crate::db::audit::{self, EventRow};
use crate::db::now;
use crate::db::outbox::{self, OutboxRow};
use crate::db::users::User;
use crate::domain::{Approval, EmailAddress};
use crate::mail::requeue_dead;
use crate::state::AppState;
use crate::web::return_to::{DEFAULT_RETURN, safe_path};
use crate::web::{AppError, ClientInfo, Flash, Form, PageContext, redirect_with_flash, render};

const PAGE_SIZE: i64 = 50;
const MAX_QUERY_CHARS: usize = 254;

#[derive(Deserialize)]
pub struct UserListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    before: Option<i64>,
}

/// Where to go back to after an action.
#[derive(Deserialize)]
pub struct ActionForm {
    back: Option<String>,
}

/// A user as the admin pages show them.
pub struct UserView {
    id: i64,
    /// As stored: the domain in ASCII (punycode).
    email: String,
    /// The same address with a Unicode domain, shown beside it when it
    /// differs, so that a look-alike domain stands out.
    email_unicode: Option<String>,
    created: String,
    verified: bool,
    approval: &'static str,
    disabled: bool,
    admin: bool,
    /// What the viewing administrator may do to this account now.
    actions: Vec<AdminAction>,
}

impl UserView {
    /// `user` as the administrator `viewer` sees them.
    fn new(user: User, viewer: i64) -> Self {
        let approval = Approval::from_db(&user.approval).as_str();
        let actions = AdminAction::ALL.into_iter().filter(|action| action.applies_to(&user, viewer).is_ok()).collect();
        Self {
            actions,
            id: user.id,
            created: format_time(user.created_at),
            verified: user.email_verified_at.is_some(),
            disabled: user.disabled_at.is_some(),
            admin: user.is_admin,
            email_unicode: EmailAddress::unicode_form(&user.email),
            email: user.email,
            approval,
        }
    }
}

pub struct EventView {
    at: String,
    kind: String,
    user_id: Option<i64>,
    actor_id: Option<i64>,
    ip: String,
    detail: String,
}

impl From<EventRow> for EventView {
    fn from(row: EventRow) -> Self {
        Self {
            at: format_time(row.at),
            kind: row.kind,
            user_id: row.user_id,
            actor_id: row.actor_id,
            ip: row.ip,
            detail: row.detail,
        }
    }
}

pub struct DeadMailView {
    id: i64,
    kind: String,
    recipient: String,
    recipient_unicode: Option<String>,
    attempts: i32,
    error: String,
    failed_at: String,
}

impl From<OutboxRow> for DeadMailView {
    fn from(row: OutboxRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            recipient_unicode: EmailAddress::unicode_form(&row.recipient),
            recipient: row.recipient,
            attempts: row.attempts,
            error: row.last_error.unwrap_or_default(),
            failed_at: row.finished_at.map(format_time).unwrap_or_default(),
        }
    }
}

fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[derive(Template)]
#[template(path = "pages/admin/dashboard.html")]
struct DashboardPage {
    ctx: PageContext,
    waiting: Vec<UserView>,
    dead_mail: Vec<DeadMailView>,
    approval_required: bool,
}

#[derive(Template)]
#[template(path = "pages/admin/users.html")]
struct UsersPage {
    ctx: PageContext,
    /// Where the action buttons return to: this page.
    back: String,
    q: String,
    users: Vec<UserView>,
    next_page: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/admin/user.html")]
struct UserPage {
    ctx: PageContext,
    user: UserView,
    /// Where the action buttons return to: this page.
    back: String,
    events: Vec<EventView>,
}

#[derive(Template)]
#[template(path = "pages/admin/events.html")]
struct EventsPage {
    ctx: PageContext,
    events: Vec<EventView>,
    next_page: Option<String>,
}

pub async fn dashboard(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (waiting, dead) =
        state.db.run(|conn| Ok((User::awaiting_approval(conn, 100)?, outbox::dead(conn, 50)?))).await?;
    let page = DashboardPage {
        ctx,
        waiting: waiting.into_iter().map(|user| UserView::new(user, admin.user_id)).collect(),
        dead_mail: dead.into_iter().map(DeadMailView::from).collect(),
        approval_required: state.config.settings.require_admin_approval,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn users(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<UserListQuery>,
) -> Result<HttpResponse, AppError> {
    let UserListQuery { q, after } = query.into_inner();
    if q.chars().count() > MAX_QUERY_CHARS || after.as_ref().is_some_and(|a| a.chars().count() > MAX_QUERY_CHARS) {
        return Err(AppError::BadRequest("The search is too long.".into()));
    }
    let prefix = EmailAddress::search_prefix(&q);
    let rows = state.db.run(move |conn| User::page(conn, &prefix, after.as_deref(), PAGE_SIZE)).await?;
    let next_page = (rows.len() as i64 == PAGE_SIZE).then(|| {
        let last = rows.last().map(|user| user.email.clone()).unwrap_or_default();
        serde_urlencoded::to_string([("q", q.as_str()), ("after", last.as_str())]).unwrap_or_default()
    });
    let back = if q.is_empty() {
        "/admin/users".to_owned()
    } else {
        format!("/admin/users?{}", serde_urlencoded::to_string([("q", q.as_str())]).unwrap_or_default())
    };
    let page = UsersPage {
        ctx,
        back,
        q,
        users: rows.into_iter().map(|user| UserView::new(user, admin.user_id)).collect(),
        next_page,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn user(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let found =
        state.db.run(move |conn| Ok(User::find(conn, id)?.zip(Some(audit::latest_for_user(conn, id, 20)?)))).await?;
    let Some((user, events)) = found else {
        return Err(AppError::NotFound);
    };
    let back = format!("/admin/users/{}", user.id);
    let page = UserPage {
        ctx,
        user: UserView::new(user, admin.user_id),
        back,
        events: events.into_iter().map(EventView::from).collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn events(
    _admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, AppError> {
    let before = query.before;
    let rows = state.db.run(move |conn| audit::page(conn, before, PAGE_SIZE)).await?;
    let next_page = (rows.len() as i64 == PAGE_SIZE).then(|| format!("before={}", rows.last().map_or(0, |e| e.id)));
    let page = EventsPage { ctx, events: rows.into_iter().map(EventView::from).collect(), next_page };
    Ok(render(StatusCode::OK, &page))
}

/// Where a confirmation page goes back to.
#[derive(Deserialize)]
pub struct ConfirmQuery {
    back: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/admin/confirm.html")]
struct ConfirmPage {
    ctx: PageContext,
    user: UserView,
    action: AdminAction,
    consequences: &'static [&'static str],
    back: String,
}

/// `GET /admin/users/{id}/{reject|disable}`: what the action will do, and
/// the button that does it. Actions that take nothing away have no page.
pub async fn confirm(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    path: web::Path<(i64, AdminAction)>,
    query: web::Query<ConfirmQuery>,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    if !action.is_destructive() {
        return Err(AppError::NotFound);
    }
    let back = query.back.as_deref().and_then(safe_path).unwrap_or("/admin").to_owned();
    let user = state.db.run(move |conn| User::find(conn, id)).await?.ok_or(AppError::NotFound)?;
    if let Err(refusal) = action.applies_to(&user, admin.user_id) {
        return Ok(redirect_with_flash(&back, Flash::error(refusal.describe())));
    }
    let page = ConfirmPage {
        ctx,
        user: UserView::new(user, admin.user_id),
        action,
        consequences: action.consequences(),
        back,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /admin/users/{id}/{approve|reject|disable|enable}`.
pub async fn act(
    admin: AdminUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<(i64, AdminAction)>,
    Form(form): Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (target, action) = path.into_inner();
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = Context { config: &config, ip: &client.ip, user_agent: &client.user_agent, now: now() };
                accounts::act_on_account(conn, admin.user_id, target, action, ctx)
            })
        })
        .await?;
    let back = form.back.as_deref().and_then(safe_path).unwrap_or(DEFAULT_RETURN).to_owned();
    let flash = match outcome {
        Ok(email) => Flash::success(format!("{email} was {}.", action.done())),
        Err(Refusal::NoSuchUser) => return Err(AppError::NotFound),
        Err(refusal) => Flash::error(refusal.describe()),
    };
    state.mail.wake();
    Ok(redirect_with_flash(&back, flash))
}

/// Sends a dead mail again, as if newly queued.
pub async fn retry_mail(
    _admin: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    _form: Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let config = state.config.clone();
    let revived = state.db.run(move |conn| requeue_dead(conn, id, &config)).await?;
    if !revived {
        return Err(AppError::NotFound);
    }
    state.mail.wake();
    Ok(redirect_with_flash("/admin", Flash::success("The mail was queued again.")))
}
