//! What happens when an administrator acts on an account, and the rule
//! that guards every such action: the site always keeps an enabled,
//! approved administrator.

use diesel::QueryResult;

use super::Context;
use super::deletion::DeletedBy;
use crate::db::audit::{self, Event, EventKind};
use crate::db::users::{NewUser, User};
use crate::db::{DbConnection, sessions, two_factor};
use crate::domain::{Approval, EmailAddress};
use crate::mail::{MailKind, queue};

/// What an administrator can do to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminAction {
    Approve,
    Reject,
    Disable,
    Enable,
    /// Deletes the account, leaving a tombstone (`deletion.rs`).
    Delete,
}

impl AdminAction {
    /// Every action, in the order the admin pages offer them.
    pub const ALL: [Self; 5] = [Self::Approve, Self::Reject, Self::Disable, Self::Enable, Self::Delete];

    /// The actions offered on every row of a list of accounts; deleting,
    /// which cannot be undone, only on the account's own page.
    pub const IN_LISTS: [Self; 4] = [Self::Approve, Self::Reject, Self::Disable, Self::Enable];

    /// The action's segment in `/admin/users/{id}/{action}`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::Delete => "delete",
        }
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Approve => "Approve",
            Self::Reject => "Reject",
            Self::Disable => "Disable",
            Self::Enable => "Enable",
            Self::Delete => "Delete",
        }
    }

    /// The button's CSS class: the usual action plain, the others quieter,
    /// disabling and deleting in red.
    pub fn style(self) -> &'static str {
        match self {
            Self::Approve => "",
            Self::Reject | Self::Enable => "secondary",
            Self::Disable | Self::Delete => "danger",
        }
    }

    /// Actions that take something away: the admin pages ask first, on a
    /// page that names the consequences.
    pub fn is_destructive(self) -> bool {
        self.removes_access()
    }

    /// Whether the action makes sense for `user`, acted on by the
    /// administrator `actor`: the admin pages offer only these, and
    /// `act_on_account` refuses the others. Reject is for sign-ups still
    /// waiting; nobody rejects, disables or deletes their own account here;
    /// a deleted account takes no action.
    ///
    /// # Errors
    /// The refusal, in words for the administrator.
    pub fn applies_to(self, user: &User, actor: i64) -> Result<(), Refusal> {
        let approval = Approval::from_db(&user.approval);
        let disabled = user.disabled_at.is_some();
        if user.deleted_at.is_some() {
            return Err(Refusal::NoSuchUser);
        }
        if self.removes_access() && user.id == actor {
            return Err(Refusal::OwnAccount);
        }
        match self {
            Self::Approve if approval == Approval::Approved => Err(Refusal::Unchanged),
            Self::Reject if approval != Approval::Pending => Err(Refusal::NotWaiting),
            Self::Disable if disabled => Err(Refusal::Unchanged),
            Self::Enable if !disabled => Err(Refusal::Unchanged),
            _ => Ok(()),
        }
    }

    /// What a destructive action will do, in words for the confirmation
    /// page; the same facts `act_on_account` carries out.
    pub fn consequences(self) -> &'static [&'static str] {
        match self {
            Self::Reject => &[
                "stop this sign-up from ever signing in (you can approve it later after all);",
                "email the person that their account was not approved.",
            ],
            Self::Disable => &[
                "end every session of this account at once;",
                "stop it signing in until an administrator enables it again;",
                "send no email.",
            ],
            Self::Delete => &[
                "end every session of this account at once, and stop it signing in for good;",
                "remove its address, password, links and mail not yet sent (this cannot be undone);",
                "keep its events in the log, under its number (\"deleted account #\" and the id);",
                "email the person that their account was deleted; the address can sign up again as a new account.",
            ],
            Self::Approve | Self::Enable => &[],
        }
    }

    /// The past participle, for "ann@example.com was disabled."
    pub fn done(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
            Self::Disable => "disabled",
            Self::Enable => "enabled",
            Self::Delete => "deleted",
        }
    }

    /// Actions that can take an administrator's access away.
    fn removes_access(self) -> bool {
        matches!(self, Self::Reject | Self::Disable | Self::Delete)
    }
}

/// Why an action was refused; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchUser,
    /// Administrators cannot reject, disable or delete their own account here.
    OwnAccount,
    /// It would leave no enabled, approved administrator.
    LastAdmin,
    /// Reject is for sign-ups still waiting for approval.
    NotWaiting,
    /// The account is in that state already.
    Unchanged,
    /// Its owner, deleting it, typed another address than the account's.
    NotTheAddress,
}

impl Refusal {
    /// The refusal in plain words, for the administrator.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoSuchUser => "There is no such account.",
            Self::OwnAccount => {
                "You cannot reject, disable or delete your own account here. To delete it, use your account page."
            }
            Self::LastAdmin => "That would leave the site without an enabled, approved administrator.",
            Self::NotWaiting => {
                "Only sign-ups waiting for approval can be rejected. To stop someone signing in, disable the account."
            }
            Self::Unchanged => "The account is in that state already.",
            Self::NotTheAddress => "That is not your account's address. Type it exactly as shown above.",
        }
    }
}

/// Applies `action` by the administrator `actor` to the account `target`,
/// with its audit event, ended sessions and mail, in the caller's write
/// transaction. Returns the account's address. Actions that could take
/// away an administrator's access run under `lock_admin_changes`, so two
/// administrators acting on each other at once cannot both pass the check.
pub fn act_on_account(
    conn: &mut DbConnection,
    actor: i64,
    target: i64,
    action: AdminAction,
    ctx: Context,
) -> QueryResult<Result<String, Refusal>> {
    let user = match lock_account(conn, target, action.removes_access())? {
        Ok(user) => user,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Err(refusal) = action.applies_to(&user, actor) {
        return Ok(Err(refusal));
    }
    if action.removes_access() && is_last_admin(conn, &user)? {
        return Ok(Err(Refusal::LastAdmin));
    }
    let (kind, mail) = match action {
        AdminAction::Approve => {
            User::set_approval(conn, target, Approval::Approved, ctx.now)?;
            (EventKind::Approved, Some(MailKind::AccountApproved))
        }
        AdminAction::Reject => {
            User::set_approval(conn, target, Approval::Rejected, ctx.now)?;
            if ctx.config.settings.require_admin_approval {
                sessions::delete_all_for_user(conn, target)?;
                two_factor::close_challenges_for(conn, target)?;
            }
            (EventKind::Rejected, Some(MailKind::AccountRejected))
        }
        AdminAction::Disable => {
            User::set_disabled(conn, target, true, ctx.now)?;
            sessions::delete_all_for_user(conn, target)?;
            two_factor::close_challenges_for(conn, target)?;
            super::email_change::cancel_pending(conn, target)?;
            (EventKind::Disabled, None)
        }
        AdminAction::Enable => {
            User::set_disabled(conn, target, false, ctx.now)?;
            (EventKind::Enabled, None)
        }
        AdminAction::Delete => {
            // Records its own event and says its own goodbye.
            super::deletion::erase(conn, &user, DeletedBy::Admin(actor), ctx)?;
            return Ok(Ok(user.email));
        }
    };
    if let Some(mail) = mail {
        queue(conn, mail, &user.email, Some(target), ctx.config)?;
    }
    let event = Event { kind, user_id: Some(target), actor_id: Some(actor), ip: ctx.ip, detail: "" };
    audit::record(conn, event, ctx.now)?;
    Ok(Ok(user.email))
}

/// Locks the account `id` for a change and reads it; with
/// `removes_access`, first serialises the changes that could take an
/// administrator's access away (`lock_admin_changes`). A deleted account
/// is no account.
pub(super) fn lock_account(
    conn: &mut DbConnection,
    id: i64,
    removes_access: bool,
) -> QueryResult<Result<User, Refusal>> {
    if removes_access {
        lock_admin_changes(conn)?;
    }
    if !User::lock(conn, id)? {
        return Ok(Err(Refusal::NoSuchUser));
    }
    Ok(User::find(conn, id)?.filter(|user| user.deleted_at.is_none()).ok_or(Refusal::NoSuchUser))
}

/// Whether `user` is the site's only enabled, approved administrator: the
/// lock that keeps the site from losing its last one.
pub(super) fn is_last_admin(conn: &mut DbConnection, user: &User) -> QueryResult<bool> {
    let active = user.is_admin && user.disabled_at.is_none() && Approval::from_db(&user.approval) == Approval::Approved;
    Ok(active && User::count_active_admins(conn)? <= 1)
}

/// Serialises the transactions that may take an administrator's access
/// away until the caller's transaction ends. SQLite's write transactions
/// (`BEGIN IMMEDIATE`) already run one at a time; PostgreSQL takes a
/// transaction-level advisory lock, since locking only the target row
/// would let two administrators disable each other at once.
fn lock_admin_changes(conn: &mut DbConnection) -> QueryResult<()> {
    /// An arbitrary key, the same in every instance.
    const ADMIN_CHANGES: i64 = 0x7573_6865_7261_646d; // "usheradm"
    if let DbConnection::Postgres(pg) = conn {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(ADMIN_CHANGES)
            .execute(pg)?;
    }
    Ok(())
}

/// Why `create_admin` refused; nothing changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateAdminRefusal {
    /// Whoever registered the address chose its password, and nobody has
    /// proven the mailbox: promoting it would give them the site.
    #[error(
        "{0} has an account whose address was never confirmed, so whoever registered it chose its password. \
         Confirm the address from its email first, or use another address."
    )]
    Unconfirmed(String),
}

/// Makes `email` an administrator who can sign in at once (verified,
/// approved, enabled), creating the account with `password_hash` when it
/// does not exist (a new account has no links or sessions to end). An
/// existing account keeps its password, so it must have proven its address.
/// Records the audit event. Returns whether the account was created. `None`
/// as the hash for a missing account is a caller's error and rolls back.
pub fn create_admin(
    conn: &mut DbConnection,
    email: &EmailAddress,
    password_hash: Option<&str>,
    now: i64,
) -> QueryResult<Result<bool, CreateAdminRefusal>> {
    let (user_id, created) = match (User::find_by_email(conn, email.as_str())?, password_hash) {
        (Some(user), _) if user.email_verified_at.is_none() => {
            return Ok(Err(CreateAdminRefusal::Unconfirmed(email.as_str().to_owned())));
        }
        (Some(user), _) => (user.id, false),
        (None, Some(hash)) => {
            let admin = NewUser {
                email: email.as_str(),
                password_hash: hash,
                email_verified_at: Some(now),
                approval: Approval::Approved.as_str(),
                is_admin: true,
                created_at: now,
                updated_at: now,
            };
            (User::insert(conn, &admin)?.ok_or(diesel::result::Error::RollbackTransaction)?, true)
        }
        (None, None) => return Err(diesel::result::Error::RollbackTransaction),
    };
    User::promote_to_admin(conn, user_id, now)?;
    let event =
        Event { kind: EventKind::AdminCreated, user_id: Some(user_id), actor_id: None, ip: "command line", detail: "" };
    audit::record(conn, event, now)?;
    Ok(Ok(created))
}
