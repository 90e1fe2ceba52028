//! Groups, for administrators: `GET, POST /admin/groups` lists them and
//! creates one; on an account's page, `POST /admin/users/{id}/groups`
//! puts the account in one and `POST /admin/users/{id}/groups/{name}/remove`
//! takes it out. The rules are in `accounts/groups.rs`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::admin::{AdminNav, admin_nav, user_page};
use super::{NoFields, transition_context};
use crate::accounts::{self, GroupRefusal};
use crate::auth::AdminUser;
use crate::db::groups::{self, GroupSummary};
use crate::domain::GroupName;
use crate::state::AppState;
use crate::web::{AppError, ClientInfo, Flash, Form, FormErrors, PageContext, redirect, redirect_with_flash, render};

/// The form that creates a group.
#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
}

/// The form that puts an account in a group: the group's name.
#[derive(Deserialize)]
pub struct AddForm {
    group: String,
}

#[derive(Template)]
#[template(path = "pages/admin/groups.html")]
struct GroupsPage {
    ctx: PageContext,
    nav: AdminNav,
    /// How many administrators there are: the built-in group's members.
    admins: i64,
    groups: Vec<GroupSummary>,
    /// The name typed, shown again after a mistake.
    typed: String,
    errors: FormErrors,
}

async fn groups_page(
    state: &AppState,
    ctx: PageContext,
    typed: String,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let (admins, groups, nav) = state
        .db
        .run(|conn| {
            Ok((groups::count_administrators(conn)?, groups::list_with_counts(conn)?, admin_nav(conn, "groups")?))
        })
        .await?;
    Ok(render(status, &GroupsPage { ctx, nav, admins, groups, typed, errors }))
}

/// `GET /admin/groups`: every group with its number of members (the
/// built-in `admins` first), and the form that creates one.
pub async fn list(_admin: AdminUser, ctx: PageContext, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    groups_page(&state, ctx, String::new(), StatusCode::OK, FormErrors::default()).await
}

/// `POST /admin/groups`: creates the group `name`. A name that is not
/// one, `admins` (422) or a taken name (409) shows the form again with
/// what was typed and why.
pub async fn create(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    client: ClientInfo,
    Form(form): Form<CreateForm>,
) -> Result<HttpResponse, AppError> {
    let name = match GroupName::parse(&form.name) {
        Ok(name) => name,
        Err(problem) => {
            let errors = FormErrors::one("name", problem);
            return groups_page(&state, ctx, form.name, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.write(|conn| accounts::create_group(conn, admin.user_id, &name, transition_context(&config, &client)))
        })
        .await?;
    match outcome {
        Ok(group) => {
            let message = format!("Group {} was created. Put people in it from their page under Users.", group.name);
            Ok(redirect_with_flash("/admin/groups", Flash::success(message)))
        }
        Err(refusal) => {
            let status = match refusal {
                GroupRefusal::Taken(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            groups_page(&state, ctx, form.name, status, FormErrors::one("name", refusal)).await
        }
    }
}

/// `POST /admin/users/{id}/groups`: puts the account in the group named
/// by `group`, then back to its page.
pub async fn add_member(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    client: ClientInfo,
    id: web::Path<i64>,
    Form(form): Form<AddForm>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let name = match GroupName::parse(&form.group) {
        Ok(name) => name,
        Err(problem) => {
            let errors = FormErrors::one("group", problem);
            return user_page(&state, ctx, admin.user_id, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let outcome = change_membership(&state, admin.user_id, client, id, name.clone(), accounts::add_to_group).await?;
    let done = |added: bool| match added {
        true => Flash::success(format!("Added to {name}.")),
        false => Flash::info(format!("Already in {name}; nothing changed.")),
    };
    answer(&state, ctx, admin.user_id, id, outcome.map(done)).await
}

/// `POST /admin/users/{id}/groups/{name}/remove`: takes the account out
/// of the group, then back to its page.
pub async fn remove_member(
    admin: AdminUser,
    ctx: PageContext,
    state: web::Data<AppState>,
    client: ClientInfo,
    path: web::Path<(i64, String)>,
    _form: Form<NoFields>,
) -> Result<HttpResponse, AppError> {
    let (id, typed) = path.into_inner();
    // A name that cannot be a group's names no group.
    let Ok(name) = GroupName::parse(&typed) else {
        return answer(&state, ctx, admin.user_id, id, Err(GroupRefusal::NoSuchGroup(typed))).await;
    };
    let outcome =
        change_membership(&state, admin.user_id, client, id, name.clone(), accounts::remove_from_group).await?;
    let done = |removed: bool| match removed {
        true => Flash::success(format!("Removed from {name}.")),
        false => Flash::info(format!("Not in {name}; nothing changed.")),
    };
    answer(&state, ctx, admin.user_id, id, outcome.map(done)).await
}

/// A rule of `accounts` that puts account `id` in or out of group `name`,
/// for `actor`.
type MembershipRule = fn(
    &mut crate::db::DbConnection,
    i64,
    i64,
    &GroupName,
    crate::accounts::Context,
) -> diesel::QueryResult<Result<bool, GroupRefusal>>;

/// Runs `rule` in a write transaction: whether it changed anything, or why not.
async fn change_membership(
    state: &AppState,
    actor: i64,
    client: ClientInfo,
    id: i64,
    name: GroupName,
    rule: MembershipRule,
) -> Result<Result<bool, GroupRefusal>, AppError> {
    let config = state.config.clone();
    let outcome = state
        .db
        .run(move |conn| conn.write(|conn| rule(conn, actor, id, &name, transition_context(&config, &client))))
        .await?;
    Ok(outcome)
}

/// After a change of membership: back to the account's page with `flash`,
/// or the page again with the refusal in words (404 for an unknown
/// group, 422 for `admins`); an unknown or deleted account is a 404.
async fn answer(
    state: &AppState,
    ctx: PageContext,
    admin_id: i64,
    id: i64,
    outcome: Result<Flash, GroupRefusal>,
) -> Result<HttpResponse, AppError> {
    let refusal = match outcome {
        Ok(flash) => return Ok(redirect_with_flash(&format!("/admin/users/{id}"), flash)),
        Err(GroupRefusal::NoSuchUser) => return Err(AppError::NotFound),
        Err(refusal) => refusal,
    };
    let status = match refusal {
        GroupRefusal::NoSuchGroup(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    user_page(state, ctx, admin_id, id, status, FormErrors::one("group", refusal)).await
}

/// `GET` of the addresses that only take a group form's `POST`: the
/// account's page, where those forms are.
pub async fn to_user_page(_admin: AdminUser, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let id: i64 = req.match_info().get("id").and_then(|id| id.parse().ok()).ok_or(AppError::NotFound)?;
    Ok(redirect(&format!("/admin/users/{id}")))
}
