//! The `audit_events` table: who did what to which account, when, from where.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::audit_events;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Registered,
    EmailVerified,
    SignedIn,
    SignInFailed,
    SignedOut,
    ResetRequested,
    PasswordReset,
    PasswordChanged,
    Approved,
    Rejected,
    Disabled,
    Enabled,
    AdminCreated,
    /// A person ended some of their own sessions from the account page.
    SessionsEnded,
    /// A person typed their password again before a sensitive action.
    Reauthenticated,
    EmailChangeRequested,
    EmailChanged,
    EmailChangeCancelled,
    /// A change of address undone from the link sent to the old address.
    EmailChangeReverted,
    /// The account was deleted (by its owner or an administrator); the
    /// event stays linked to its tombstone.
    AccountDeleted,
    /// A second factor (an authenticator app) was turned on.
    TwoFactorEnabled,
    /// A second factor was turned off by its owner, or reset by an
    /// administrator or from the command line.
    TwoFactorDisabled,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRenewed,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// An administrator created a group; its name is the detail.
    GroupCreated,
    /// An administrator put the account in a group (the detail).
    AddedToGroup,
    /// An administrator took the account out of a group (the detail).
    RemovedFromGroup,
    /// An administrator invited an address (the detail) to sign up.
    InvitationSent,
    /// An administrator withdrew an invitation (its address is the detail).
    InvitationRevoked,
    /// An administrator sent an invitation again, with a new link.
    InvitationResent,
    /// An invitation's link created the account.
    InvitationAccepted,
}

impl EventKind {
    /// Every kind, in the order the event log's filter lists them.
    pub const ALL: [Self; 31] = [
        Self::Registered,
        Self::EmailVerified,
        Self::SignedIn,
        Self::SignInFailed,
        Self::SignedOut,
        Self::ResetRequested,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::Approved,
        Self::Rejected,
        Self::Disabled,
        Self::Enabled,
        Self::AdminCreated,
        Self::SessionsEnded,
        Self::Reauthenticated,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::EmailChangeCancelled,
        Self::EmailChangeReverted,
        Self::AccountDeleted,
        Self::TwoFactorEnabled,
        Self::TwoFactorDisabled,
        Self::RecoveryCodesRenewed,
        Self::RecoveryCodeUsed,
        Self::GroupCreated,
        Self::AddedToGroup,
        Self::RemovedFromGroup,
        Self::InvitationSent,
        Self::InvitationRevoked,
        Self::InvitationResent,
        Self::InvitationAccepted,
    ];

    /// The kind stored as `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::EmailVerified => "email verified",
            Self::SignedIn => "signed in",
            Self::SignInFailed => "sign-in failed",
            Self::SignedOut => "signed out",
            Self::ResetRequested => "password reset requested",
            Self::PasswordReset => "password reset",
            Self::PasswordChanged => "password changed",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
            Self::AdminCreated => "made administrator",
            Self::SessionsEnded => "sessions ended",
            Self::Reauthenticated => "confirmed it was them",
            Self::EmailChangeRequested => "address change requested",
            Self::EmailChanged => "address changed",
            Self::EmailChangeCancelled => "address change cancelled",
            Self::EmailChangeReverted => "address change undone",
            Self::AccountDeleted => "account deleted",
            Self::TwoFactorEnabled => "two-step sign-in turned on",
            Self::TwoFactorDisabled => "two-step sign-in turned off",
            Self::RecoveryCodesRenewed => "new recovery codes",
            Self::RecoveryCodeUsed => "recovery code used",
            Self::GroupCreated => "group created",
            Self::AddedToGroup => "added to group",
            Self::RemovedFromGroup => "removed from group",
            Self::InvitationSent => "invitation sent",
            Self::InvitationRevoked => "invitation withdrawn",
            Self::InvitationResent => "invitation sent again",
            Self::InvitationAccepted => "invitation accepted",
        }
    }
}

/// One event to record. `detail` is free text for admins (an address that
/// has no account, say), never a password or a token.
pub struct Event<'a> {
    pub kind: EventKind,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub ip: &'a str,
    pub detail: &'a str,
}

impl<'a> Event<'a> {
    /// An event a person caused on their own account.
    pub fn own(kind: EventKind, user_id: i64, ip: &'a str) -> Self {
        Self { kind, user_id: Some(user_id), actor_id: Some(user_id), ip, detail: "" }
    }
}

#[derive(Queryable, Clone, Debug)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub ip: String,
    pub detail: String,
}

pub fn record(conn: &mut DbConnection, event: Event, now: i64) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::at.eq(now),
            audit_events::kind.eq(event.kind.as_str()),
            audit_events::user_id.eq(event.user_id),
            audit_events::actor_id.eq(event.actor_id),
            audit_events::ip.eq(event.ip),
            audit_events::detail.eq(event.detail),
        ))
        .execute(conn)?;
    Ok(())
}

diesel::define_sql_function! {
    /// SQL's `replace(text, from, to)`, the same in SQLite and PostgreSQL.
    fn replace(text: diesel::sql_types::Text, from: diesel::sql_types::Text, to: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Replaces each of `addresses` with `instead` in the details of the
/// events about `user_id` (a failed sign-in keeps the typed address, a
/// change of address both).
pub fn scrub_addresses(conn: &mut DbConnection, user_id: i64, addresses: &[String], instead: &str) -> QueryResult<()> {
    for address in addresses {
        let scrubbed = replace(audit_events::detail, address, instead);
        // Only the rows that change: on PostgreSQL every update leaves a dead row.
        let naming =
            audit_events::table.filter(audit_events::user_id.eq(user_id)).filter(audit_events::detail.ne(scrubbed));
        diesel::update(naming).set(audit_events::detail.eq(scrubbed)).execute(conn)?;
    }
    Ok(())
}

/// Makes the events of `kinds` that name `detail` and no account events
/// about `user_id` (an invitation's events, once it created the account),
/// so that they go where the account's events go (`scrub_addresses`).
pub fn adopt(conn: &mut DbConnection, kinds: &[EventKind], detail: &str, user_id: i64) -> QueryResult<usize> {
    let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
    diesel::update(
        audit_events::table
            .filter(audit_events::user_id.is_null())
            .filter(audit_events::kind.eq_any(kinds))
            .filter(audit_events::detail.eq(detail)),
    )
    .set(audit_events::user_id.eq(user_id))
    .execute(conn)
}

/// Which events a page of the log shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    /// Events about this account.
    pub user_id: Option<i64>,
    /// Older than this event id, when paging on.
    pub before: Option<i64>,
}

/// Newest first, filtered; each filter is served by an index ending in `id`
/// (`audit_events_by_kind`, `audit_events_by_user`), so a page deep in the
/// log costs what the first one does.
pub fn page(conn: &mut DbConnection, filter: EventFilter, limit: i64) -> QueryResult<Vec<EventRow>> {
    let mut query = audit_events::table.order(audit_events::id.desc()).limit(limit).into_boxed();
    if let Some(kind) = filter.kind {
        query = query.filter(audit_events::kind.eq(kind.as_str()));
    }
    if let Some(user_id) = filter.user_id {
        query = query.filter(audit_events::user_id.eq(user_id));
    }
    if let Some(before) = filter.before {
        query = query.filter(audit_events::id.lt(before));
    }
    query.load(conn)
}

pub fn latest_for_user(conn: &mut DbConnection, user_id: i64, limit: i64) -> QueryResult<Vec<EventRow>> {
    audit_events::table.filter(audit_events::user_id.eq(user_id)).order(audit_events::id.desc()).limit(limit).load(conn)
}
