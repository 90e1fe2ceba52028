//! Groups, kept by administrators: creating one, putting an account in it
//! and taking it out, each with its audit event in the caller's write
//! transaction. Forward authentication reads them
//! (`db::groups::member_names`). The built-in group `admins` is the
//! administrator flag: nobody creates, joins or leaves it here.

use diesel::QueryResult;

use super::Context;
use super::admin::lock_account;
use crate::db::DbConnection;
use crate::db::audit::{self, Event, EventKind};
use crate::db::groups::{self, Group};
use crate::domain::GroupName;

/// Why a change to groups was refused, in words for the administrator;
/// nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupRefusal {
    /// `admins` mirrors the administrator flag: not created, joined or left by hand.
    #[error(
        "admins is the built-in group of administrators: its members are the site's administrators, \
         so it cannot be created, joined or left here. Make someone an administrator with usher create-admin."
    )]
    BuiltIn,
    /// A group of that name exists already.
    #[error("There is already a group named {0}.")]
    Taken(String),
    /// No group has that name.
    #[error("There is no group named {0}. Create it on the groups page first.")]
    NoSuchGroup(String),
    /// The account does not exist or was deleted.
    #[error("There is no such account.")]
    NoSuchUser,
}

/// Creates the group `name`, by the administrator `actor`, and records
/// the event ("group created", the name as its detail), in the caller's
/// write transaction. Returns the new group.
///
/// # Errors
/// `GroupRefusal::BuiltIn` for `admins`; `GroupRefusal::Taken` when the
/// name is taken, also by a creation racing this one.
pub fn create_group(
    conn: &mut DbConnection,
    actor: i64,
    name: &GroupName,
    ctx: Context,
) -> QueryResult<Result<Group, GroupRefusal>> {
    if name.is_admins() {
        return Ok(Err(GroupRefusal::BuiltIn));
    }
    let Some(group) = groups::create(conn, name, ctx.now)? else {
        return Ok(Err(GroupRefusal::Taken(name.to_string())));
    };
    let event =
        Event { kind: EventKind::GroupCreated, user_id: None, actor_id: Some(actor), ip: ctx.ip, detail: &group.name };
    audit::record(conn, event, ctx.now)?;
    Ok(Ok(group))
}

/// Puts the account `user_id` in the group `name`, by the administrator
/// `actor`, under the account's lock (so a deletion cannot leave it a
/// membership), with the event "added to group". Returns whether it was
/// not in it yet: adding again changes nothing and records nothing.
///
/// # Errors
/// `GroupRefusal::BuiltIn` for `admins`, `NoSuchUser` for an account that
/// does not exist or was deleted, `NoSuchGroup` for an unknown name.
pub fn add_to_group(
    conn: &mut DbConnection,
    actor: i64,
    user_id: i64,
    name: &GroupName,
    ctx: Context,
) -> QueryResult<Result<bool, GroupRefusal>> {
    change_membership(conn, actor, user_id, name, ctx, Change::Add)
}

/// Takes the account `user_id` out of the group `name`, by the
/// administrator `actor`, with the event "removed from group". Returns
/// whether it was in it: if not, nothing changes and nothing is recorded.
///
/// # Errors
/// As [`add_to_group`].
pub fn remove_from_group(
    conn: &mut DbConnection,
    actor: i64,
    user_id: i64,
    name: &GroupName,
    ctx: Context,
) -> QueryResult<Result<bool, GroupRefusal>> {
    change_membership(conn, actor, user_id, name, ctx, Change::Remove)
}

#[derive(Clone, Copy)]
enum Change {
    Add,
    Remove,
}

fn change_membership(
    conn: &mut DbConnection,
    actor: i64,
    user_id: i64,
    name: &GroupName,
    ctx: Context,
    change: Change,
) -> QueryResult<Result<bool, GroupRefusal>> {
    if name.is_admins() {
        return Ok(Err(GroupRefusal::BuiltIn));
    }
    // Its only refusal: no such account, or a deleted one.
    if lock_account(conn, user_id, false)?.is_err() {
        return Ok(Err(GroupRefusal::NoSuchUser));
    }
    let Some(group) = groups::find_by_name(conn, name.as_str())? else {
        return Ok(Err(GroupRefusal::NoSuchGroup(name.to_string())));
    };
    let (changed, kind) = match change {
        Change::Add => (groups::add_member(conn, group.id, user_id, ctx.now)?, EventKind::AddedToGroup),
        Change::Remove => (groups::remove_member(conn, group.id, user_id)?, EventKind::RemovedFromGroup),
    };
    if changed {
        let event = Event { kind, user_id: Some(user_id), actor_id: Some(actor), ip: ctx.ip, detail: &group.name };
        audit::record(conn, event, ctx.now)?;
    }
    Ok(Ok(changed))
}
