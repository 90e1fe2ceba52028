//! Administration: sign-ups waiting for approval, the user list, a user's
//! recent security events, the event log, and mail that could not be sent.

use super::transition_context;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

use crate::accounts::{self, AdminAction, Refusal};
use crate::auth::{AdminUser, Reauthenticated};
use crate::db::DbConnection;
use crate::db::audit::{self, EventFilter, EventKind, EventRow};
use crate::db::outbox::{self, OutboxRow};
use crate::db::users::{ListFilter, PageFrom, User, tombstone_name};
use crate::db::{groups, now, two_factor};
use crate::domain::{Approval, EmailAddress};
use crate::mail::messages::{MailKind, plain_error};
use crate::mail::requeue_dead;
use crate::state::AppState;
use crate::web::return_to::{DEFAULT_RETURN, safe_path};
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, Moment, PageContext, redirect_with_flash, render};

const PAGE_SIZE: i64 = 50;
/// The navigation counts people waiting up to this, then says "99+".
const WAITING_COUNTED_UP_TO: i64 = 100;
const MAX_QUERY_CHARS: usize = 254;

#[derive(Deserialize)]
pub struct UserListQuery {
    #[serde(default)]
    q: String,
    /// A `ListFilter` name; empty for everyone.
    #[serde(default)]
    state: String,
    /// The page after this address.
    after: Option<String>,
    /// The page before this address.
    before: Option<String>,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    before: Option<i64>,
    /// An `EventKind` name; empty for every kind.
    kind: Option<String>,
    /// Only events about this account.
    user: Option<i64>,
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
    created: Moment,
    last_sign_in: Option<Moment>,
    verified: bool,
    approval: &'static str,
    disabled: bool,
    admin: bool,
    /// When the account was deleted: its page shows a tombstone.
    deleted: Option<Moment>,
    /// What the viewing administrator may do to this account now.
    actions: Vec<AdminAction>,
}

impl UserView {
    /// `user` as the administrator `viewer` sees them, with those of
    /// `offered` that apply.
    fn new(user: User, viewer: i64, offered: &[AdminAction]) -> Self {
        let approval = Approval::from_db(&user.approval).as_str();
        let actions = offered.iter().copied().filter(|action| action.applies_to(&user, viewer).is_ok()).collect();
        let now = now();
        Self {
            actions,
            id: user.id,
            created: Moment::new(user.created_at, now),
            last_sign_in: user.last_sign_in_at.map(|at| Moment::new(at, now)),
            verified: user.email_verified_at.is_some(),
            disabled: user.disabled_at.is_some(),
            admin: user.is_admin,
            deleted: user.deleted_at.map(|at| Moment::new(at, now)),
            email_unicode: EmailAddress::unicode_form(&user.email),
            email: if user.deleted_at.is_some() { tombstone_name(user.id) } else { user.email },
            approval,
        }
    }
}

pub struct EventView {
    id: i64,
    at: Moment,
    kind: String,
    user_id: Option<i64>,
    /// How the account is named (its address, or "deleted account #7"), when it is still there.
    user_email: Option<String>,
    actor_id: Option<i64>,
    actor_email: Option<String>,
    ip: String,
    detail: String,
}

/// Events as the admin pages show them: the accounts named by address,
/// read in one query.
fn event_views(conn: &mut DbConnection, rows: Vec<EventRow>) -> diesel::QueryResult<Vec<EventView>> {
    let ids: Vec<i64> = rows.iter().flat_map(|row| [row.user_id, row.actor_id]).flatten().collect();
    let emails: std::collections::HashMap<i64, String> = User::names_of(conn, &ids)?.into_iter().collect();
    let email_of = |id: Option<i64>| id.and_then(|id| emails.get(&id).cloned());
    Ok(rows
        .into_iter()
        .map(|row| EventView {
            id: row.id,
            at: Moment::new(row.at, now()),
            user_email: email_of(row.user_id),
            actor_email: email_of(row.actor_id),
            kind: row.kind,
            user_id: row.user_id,
            actor_id: row.actor_id,
            ip: row.ip,
            detail: row.detail,
        })
        .collect())
}

/// A mail that failed, as administrators see it.
pub struct FailedMailView {
    id: i64,
    /// What the mail is for, in words.
    purpose: &'static str,
    recipient: String,
    recipient_unicode: Option<String>,
    attempts: i32,
    /// Given up on (a button sends it again), or waiting for its next try.
    dead: bool,
    /// The last error in words, and as the transport said it.
    error: String,
    raw_error: String,
    failed_at: Option<Moment>,
}

impl From<OutboxRow> for FailedMailView {
    fn from(row: OutboxRow) -> Self {
        let raw_error = row.last_error.unwrap_or_default();
        Self {
            id: row.id,
            purpose: MailKind::parse(&row.kind).map_or("Mail", MailKind::purpose),
            recipient_unicode: EmailAddress::unicode_form(&row.recipient),
            recipient: row.recipient,
            attempts: row.attempts,
            dead: row.state == "dead",
            error: plain_error(&raw_error),
            raw_error,
            failed_at: row.finished_at.map(|at| Moment::new(at, now())),
        }
    }
}

/// The admin pages' navigation: which page this is, and how many people
/// wait for approval.
pub(super) struct AdminNav {
    pub(super) current: &'static str,
    /// How many wait, in words: "" for none, "7", or "99+" from 100 on.
    pub(super) waiting: String,
}

/// The navigation for the admin page `current` ("waiting", "users",
/// "groups", "invitations" or "events"), read in the page's own database
/// job (one trip, not two).
pub(super) fn admin_nav(conn: &mut DbConnection, current: &'static str) -> diesel::QueryResult<AdminNav> {
    let waiting = match User::count_waiting(conn, WAITING_COUNTED_UP_TO)? {
        0 => String::new(),
        n if n >= WAITING_COUNTED_UP_TO => format!("{}+", WAITING_COUNTED_UP_TO - 1),
        n => n.to_string(),
    };
    Ok(AdminNav { current, waiting })
}

#[derive(Template)]
#[template(path = "pages/admin/dashboard.html")]
struct DashboardPage {
    ctx: PageContext,
    nav: AdminNav,
    waiting: Vec<UserView>,
    failed_mail: Vec<FailedMailView>,
    approval_required: bool,
}

#[derive(Template)]
#[template(path = "pages/admin/users.html")]
struct UsersPage {
    ctx: PageContext,
    nav: AdminNav,
    /// Where the action buttons return to: this page.
    back: String,
    q: String,
    /// The filters offered, and the one chosen (kept by the search form).
    filters: Vec<FilterLink>,
    filter: &'static str,
    users: Vec<UserView>,
    next_page: Option<String>,
    previous_page: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/admin/user.html")]
struct UserPage {
    ctx: PageContext,
    nav: AdminNav,
    user: UserView,
    /// Where the action buttons return to: this page.
    back: String,
    events: Vec<EventView>,
    /// Recovery codes left when two-step sign-in is on; `None` when off.
    two_factor: Option<i64>,
    /// The stored groups the account is in, each with a button that takes
    /// it out (`admins`, the administrator flag, is shown apart).
    groups: Vec<String>,
    /// The groups it could be put in: every other one.
    joinable: Vec<String>,
    /// The mistakes of the group forms, after one was sent.
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "pages/admin/events.html")]
struct EventsPage {
    ctx: PageContext,
    nav: AdminNav,
    events: Vec<EventView>,
    next_page: Option<String>,
    /// The kinds to filter by, and the one chosen ("" for all).
    kinds: &'static [EventKind],
    kind: &'static str,
    /// The account the log is narrowed to: id and address.
    user: Option<(i64, String)>,
}

pub async fn dashboard(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (waiting, dead, nav) = state
        .db
        .run(|conn| Ok((User::awaiting_approval(conn, 100)?, outbox::failing(conn, 50)?, admin_nav(conn, "waiting")?)))
        .await?;
    let page = DashboardPage {
        ctx,
        nav,
        waiting: waiting.into_iter().map(|user| UserView::new(user, admin.user_id, &AdminAction::IN_LISTS)).collect(),
        failed_mail: dead.into_iter().map(FailedMailView::from).collect(),
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
    let UserListQuery { q, state: filter, after, before } = query.into_inner();
    let too_long = |text: &Option<String>| text.as_ref().is_some_and(|text| text.chars().count() > MAX_QUERY_CHARS);
    if q.chars().count() > MAX_QUERY_CHARS || too_long(&after) || too_long(&before) {
        return Err(AppError::BadRequest("The search is too long.".into()));
    }
    let filter =
        ListFilter::parse(&filter).ok_or_else(|| AppError::BadRequest("There is no such list of users.".into()))?;
    let prefix = EmailAddress::search_prefix(&q);
    let (after_db, before_db) = (after.clone(), before.clone());
    let ((rows, more), nav) = state
        .db
        .run(move |conn| {
            let from = match (&after_db, &before_db) {
                (_, Some(before)) => PageFrom::Before(before),
                (Some(after), None) => PageFrom::After(after),
                (None, None) => PageFrom::Start,
            };
            Ok((User::page(conn, filter, &prefix, from, PAGE_SIZE)?, admin_nav(conn, "users")?))
        })
        .await?;
    let link = |key: &str, email: Option<&User>| {
        let email = email.map(|user| user.email.as_str()).unwrap_or_default();
        list_query(filter, &q, Some((key, email)))
    };
    // Read forward, `more` lies after; read backward, before. Where the
    // page was reached from lies on the other side.
    let (more_after, more_before) = if before.is_some() { (true, more) } else { (more, after.is_some()) };
    let next_page = (more_after && !rows.is_empty()).then(|| link("after", rows.last()));
    let previous_page = (more_before && !rows.is_empty()).then(|| link("before", rows.first()));
    // The actions return to this very page: the same search, the same place.
    let place = match (&after, &before) {
        (_, Some(before)) => Some(("before", before.as_str())),
        (Some(after), None) => Some(("after", after.as_str())),
        (None, None) => None,
    };
    let back = match list_query(filter, &q, place) {
        query if query.is_empty() => "/admin/users".to_owned(),
        query => format!("/admin/users?{query}"),
    };
    let page = UsersPage {
        ctx,
        nav,
        back,
        filters: ListFilter::ALL.into_iter().map(|each| FilterLink::new(each, filter, &q)).collect(),
        filter: filter.as_str(),
        q,
        users: rows.into_iter().map(|user| UserView::new(user, admin.user_id, &AdminAction::IN_LISTS)).collect(),
        next_page,
        previous_page,
    };
    Ok(render(StatusCode::OK, &page))
}

/// A link to the user list under one filter, keeping the search.
pub struct FilterLink {
    label: &'static str,
    href: String,
    current: bool,
}

impl FilterLink {
    fn new(filter: ListFilter, chosen: ListFilter, q: &str) -> Self {
        let label = match filter {
            ListFilter::Everyone => "Everyone",
            ListFilter::Waiting => "Waiting",
            ListFilter::Verified => "Address confirmed",
            ListFilter::Unverified => "Address not confirmed",
            ListFilter::Disabled => "Disabled",
            ListFilter::Admins => "Administrators",
        };
        let href = match list_query(filter, q, None) {
            query if query.is_empty() => "/admin/users".to_owned(),
            query => format!("/admin/users?{query}"),
        };
        Self { label, href, current: filter == chosen }
    }
}

/// The query string of a user list page: the filter and search when set,
/// and where the page starts (`after` or `before` an address).
fn list_query(filter: ListFilter, q: &str, place: Option<(&str, &str)>) -> String {
    let fields = [("state", filter.as_str()), ("q", q)].into_iter().filter(|(_, value)| !value.is_empty());
    serde_urlencoded::to_string(fields.chain(place).collect::<Vec<_>>()).unwrap_or_default()
}

/// `GET /admin/users/{id}`: the account, its groups and its recent events.
pub async fn user(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    user_page(&state, ctx, admin.user_id, id.into_inner(), StatusCode::OK, FormErrors::default()).await
}

/// The page of the account `id` as the administrator `admin_id` sees it,
/// with `status` and the group forms' `errors` (none on a plain visit).
///
/// # Errors
/// `AppError::NotFound` for an account that never existed; a deleted
/// one shows its tombstone.
pub(super) async fn user_page(
    state: &AppState,
    ctx: PageContext,
    admin_id: i64,
    id: i64,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let found = state
        .db
        .run(move |conn| {
            let Some(user) = User::find(conn, id)? else { return Ok(None) };
            let rows = audit::latest_for_user(conn, id, 20)?;
            let two_factor = match two_factor::is_enabled(conn, id)? {
                true => Some(two_factor::codes_left(conn, id)?),
                false => None,
            };
            let in_groups = groups::member_names(conn, id)?;
            let all_groups = groups::names(conn)?;
            Ok(Some((user, event_views(conn, rows)?, admin_nav(conn, "users")?, two_factor, in_groups, all_groups)))
        })
        .await?;
    let Some((user, events, nav, two_factor, groups, all_groups)) = found else {
        return Err(AppError::NotFound);
    };
    let back = format!("/admin/users/{}", user.id);
    let user = UserView::new(user, admin_id, &AdminAction::ALL);
    let joinable = all_groups.into_iter().filter(|name| !groups.contains(name)).collect();
    let page = UserPage { ctx, nav, user, back, events, two_factor, groups, joinable, errors };
    Ok(render(status, &page))
}

/// `GET /admin/events`: the event log, newest first, by kind and by account.
pub async fn events(
    _admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, AppError> {
    let EventsQuery { before, kind, user } = query.into_inner();
    let kind = match kind.as_deref().filter(|kind| !kind.is_empty()) {
        Some(name) => Some(EventKind::parse(name).ok_or(AppError::NotFound)?),
        None => None,
    };
    let filter = EventFilter { kind, user_id: user, before };
    let (rows, user, nav) = state
        .db
        .run(move |conn| {
            let rows = audit::page(conn, filter, PAGE_SIZE)?;
            let rows = event_views(conn, rows)?;
            let user = match filter.user_id {
                Some(id) => User::names_of(conn, &[id])?.pop(),
                None => None,
            };
            Ok((rows, user, admin_nav(conn, "events")?))
        })
        .await?;
    let next_page = (rows.len() as i64 == PAGE_SIZE).then(|| {
        let kind = filter.kind.map_or("", EventKind::as_str);
        let last = rows.last().map_or(0, |event| event.id);
        let user = filter.user_id.map(|id| id.to_string()).unwrap_or_default();
        serde_urlencoded::to_string([("kind", kind), ("user", &user), ("before", &last.to_string())])
            .unwrap_or_default()
    });
    let kind = filter.kind.map_or("", EventKind::as_str);
    let page = EventsPage { ctx, nav, events: rows, next_page, kinds: &EventKind::ALL, kind, user };
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
    nav: AdminNav,
    user: UserView,
    action: AdminAction,
    consequences: &'static [&'static str],
    back: String,
}

/// `GET /admin/users/{id}/{reject|disable|delete}`: what the action will do, and
/// the button that does it, after "confirm it's you". Actions that take
/// nothing away have no page.
pub async fn confirm(
    req: HttpRequest,
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    path: web::Path<(i64, AdminAction)>,
    query: web::Query<ConfirmQuery>,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    if !action.is_destructive() {
        // Nothing to confirm: the account's page holds its button.
        return Ok(crate::web::redirect(&format!("/admin/users/{id}")));
    }
    if let Err(required) = Reauthenticated::check(&req) {
        return Ok(required.error_response());
    }
    let back = query.back.as_deref().and_then(safe_path).unwrap_or("/admin").to_owned();
    let (user, nav) = state.db.run(move |conn| Ok((User::find(conn, id)?, admin_nav(conn, "users")?))).await?;
    let user = user.ok_or(AppError::NotFound)?;
    if let Err(refusal) = action.applies_to(&user, admin.user_id) {
        return Ok(redirect_with_flash(&back, Flash::error(refusal.describe())));
    }
    let page = ConfirmPage {
        ctx,
        nav,
        user: UserView::new(user, admin.user_id, &AdminAction::ALL),
        action,
        consequences: action.consequences(),
        back,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /admin/users/{id}/{approve|reject|disable|enable|delete}`.
pub async fn act(
    req: HttpRequest,
    admin: AdminUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<(i64, AdminAction)>,
    Form(form): Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (target, action) = path.into_inner();
    if let (true, Err(required)) = (action.is_destructive(), Reauthenticated::check(&req)) {
        return Ok(required.error_response());
    }
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                let ctx = transition_context(&config, &client);
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

#[derive(Template)]
#[template(path = "pages/admin/confirm_reset_two_factor.html")]
struct ConfirmResetPage {
    ctx: PageContext,
    nav: AdminNav,
    user: UserView,
    back: String,
}

/// Why an administrator may not reset this account's second factor, if so:
/// their own is turned off from their account page, with a code.
fn reset_refusal(user: Option<&User>, admin_id: i64, on: bool) -> Result<(), Result<&'static str, AppError>> {
    match user {
        None => Err(Err(AppError::NotFound)),
        Some(user) if user.deleted_at.is_some() => Err(Err(AppError::NotFound)),
        Some(user) if user.id == admin_id => {
            Err(Ok("Turn off your own two-step sign-in from your account page, with a code from your app."))
        }
        Some(_) if !on => Err(Ok("This account has no two-step sign-in to reset.")),
        Some(_) => Ok(()),
    }
}

/// `GET /admin/users/{id}/reset-two-factor`: what a reset does, and its
/// button, after "confirm it's you".
pub async fn confirm_reset_two_factor(
    req: HttpRequest,
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    if let Err(required) = Reauthenticated::check(&req) {
        return Ok(required.error_response());
    }
    let id = id.into_inner();
    let (user, on, nav) = state
        .db
        .run(move |conn| Ok((User::find(conn, id)?, two_factor::is_enabled(conn, id)?, admin_nav(conn, "users")?)))
        .await?;
    let back = format!("/admin/users/{id}");
    match reset_refusal(user.as_ref(), admin.user_id, on) {
        Err(Err(error)) => return Err(error),
        Err(Ok(refusal)) => return Ok(redirect_with_flash(&back, Flash::error(refusal))),
        Ok(()) => {}
    }
    let user = UserView::new(user.ok_or(AppError::NotFound)?, admin.user_id, &AdminAction::ALL);
    Ok(render(StatusCode::OK, &ConfirmResetPage { ctx, nav, user, back }))
}

/// `POST /admin/users/{id}/reset-two-factor`: turns the account's second
/// factor off for someone who lost their device; they are told by email.
pub async fn reset_two_factor(
    req: HttpRequest,
    admin: AdminUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<i64>,
    _form: Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    if let Err(required) = Reauthenticated::check(&req) {
        return Ok(required.error_response());
    }
    let id = id.into_inner();
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| {
                // Under the account's lock: no deletion or change slips in between.
                if !User::lock(conn, id)? {
                    return Ok(Err(Err(())));
                }
                let user = User::find(conn, id)?;
                let on = two_factor::is_enabled(conn, id)?;
                if let Err(refusal) = reset_refusal(user.as_ref(), admin.user_id, on) {
                    return Ok(Err(refusal.map_err(|_| ())));
                }
                let by = accounts::ResetBy::Admin(admin.user_id);
                accounts::reset_two_factor(conn, id, by, transition_context(&config, &client))?;
                Ok(Ok(user.map(|user| user.email).unwrap_or_default()))
            })
        })
        .await?;
    let back = format!("/admin/users/{id}");
    let flash = match outcome {
        Ok(email) => Flash::success(format!("Two-step sign-in of {email} was reset; they were told by email.")),
        Err(Ok(refusal)) => Flash::error(refusal),
        Err(Err(())) => return Err(AppError::NotFound),
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
    Ok(redirect_with_flash("/admin", Flash::info("The mail was queued again. It shows below until it has gone out.")))
}
