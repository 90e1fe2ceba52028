//! The `outbox` table: mail written in the same transaction as the change
//! that causes it, sent later by the mail worker.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::outbox;
use super::users::SCRUBBED_ADDRESS;
use crate::domain::random_secret;

#[derive(Queryable, Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub user_id: Option<i64>,
    pub message_id: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub send_before: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub finished_at: Option<i64>,
    pub password_hash: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub minted_token_id: Option<i64>,
    /// What a notice reports about its event (`mail::EventFacts` as JSON).
    pub event: Option<String>,
    /// For mail about a change of address: the `email_changes` row.
    pub email_change_id: Option<i64>,
    /// For an invitation's mail: the `invitations` row.
    pub invitation_id: Option<i64>,
}

/// Where a row ends when the worker is done with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalState {
    Sent,
    /// Gave up: too many attempts or a permanent SMTP error. Shown to admins.
    Dead,
    /// Its link would have expired before delivery.
    Expired,
    /// No longer needed (e.g. the address was verified meanwhile).
    Skipped,
}

impl FinalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Dead => "dead",
            Self::Expired => "expired",
            Self::Skipped => "skipped",
        }
    }
}

pub struct NewMail<'a> {
    pub kind: &'a str,
    pub recipient: &'a str,
    pub user_id: Option<i64>,
    pub send_before: i64,
    /// For a verification answering a registration: that registration's password.
    pub password_hash: Option<&'a str>,
    /// For a notice: the facts of the event it reports, as JSON.
    pub event: Option<&'a str>,
    /// For mail about a change of address: its `email_changes` row.
    pub email_change_id: Option<i64>,
    /// For an invitation's mail: its `invitations` row.
    pub invitation_id: Option<i64>,
}

/// Queues a mail with a stable Message-ID, so a retried send is recognised
/// as the same message.
pub fn enqueue(conn: &mut DbConnection, mail: NewMail, mail_domain: &str, now: i64) -> QueryResult<i64> {
    let unique: String = random_secret::<16>().iter().map(|b| format!("{b:02x}")).collect();
    let message_id = format!("<{unique}@{mail_domain}>");
    diesel::insert_into(outbox::table)
        .values((
            outbox::kind.eq(mail.kind),
            outbox::recipient.eq(mail.recipient),
            outbox::user_id.eq(mail.user_id),
            outbox::message_id.eq(message_id),
            outbox::created_at.eq(now),
            outbox::send_before.eq(mail.send_before),
            outbox::password_hash.eq(mail.password_hash),
            outbox::event.eq(mail.event),
            outbox::email_change_id.eq(mail.email_change_id),
            outbox::invitation_id.eq(mail.invitation_id),
            outbox::next_attempt_at.eq(now),
        ))
        .returning(outbox::id)
        .get_result(conn)
}

/// Ids of pending mail that is due and not leased by a live worker.
pub fn due(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<i64>> {
    outbox::table
        .select(outbox::id)
        .filter(outbox::state.eq("pending"))
        .filter(outbox::next_attempt_at.le(now))
        .filter(outbox::lease_until.is_null().or(outbox::lease_until.lt(now)))
        .order(outbox::id)
        .limit(limit)
        .get_results(conn)
}

/// Whether an older row of account `user_id` than row `id` is still to be
/// sent now (pending and due). An account's mail goes out in the order it
/// was queued: a newer link voids the older ones only when it is sent, so a
/// newer mail sent first would have its own link voided by the older one.
pub fn has_older_due(conn: &mut DbConnection, user_id: i64, id: i64, now: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        outbox::table
            .filter(outbox::user_id.eq(user_id))
            .filter(outbox::id.lt(id))
            .filter(outbox::state.eq("pending"))
            .filter(outbox::next_attempt_at.le(now)),
    ))
    .get_result(conn)
}

/// Takes a lease on one row and counts the attempt, in one statement: of
/// several workers (on several instances) exactly one gets it.
pub fn lease(conn: &mut DbConnection, id: i64, owner: &str, now: i64, until: i64) -> QueryResult<Option<OutboxRow>> {
    diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::state.eq("pending"))
            .filter(outbox::lease_until.is_null().or(outbox::lease_until.lt(now))),
    )
    .set((outbox::lease_owner.eq(owner), outbox::lease_until.eq(until), outbox::attempts.eq(outbox::attempts + 1)))
    .returning(outbox::all_columns)
    .get_result(conn)
    .optional()
}

/// Ends a row's life and wipes its encrypted message; a mail that belongs
/// to no live account (a deleted account's goodbye, or mail queued while it
/// was being deleted) also forgets its recipient. False if this worker no
/// longer holds the lease. Two statements: run it in a transaction.
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    state: FinalState,
    error: Option<&str>,
    now: i64,
) -> QueryResult<bool> {
    let finished = diesel::update(outbox::table.find(id).filter(outbox::lease_owner.eq(owner)))
        .set((
            outbox::state.eq(state.as_str()),
            outbox::last_error.eq(error),
            outbox::finished_at.eq(now),
            outbox::lease_owner.eq(None::<String>),
            outbox::lease_until.eq(None::<i64>),
            outbox::payload.eq(None::<Vec<u8>>),
            outbox::password_hash.eq(None::<String>),
            outbox::event.eq(None::<String>),
        ))
        .execute(conn)?;
    if finished == 0 {
        return Ok(false);
    }
    let unowned = diesel::dsl::sql::<diesel::sql_types::Bool>(
        "(user_id IS NULL OR EXISTS (SELECT 1 FROM users WHERE users.id = outbox.user_id AND users.deleted_at IS NOT NULL))",
    );
    diesel::update(outbox::table.find(id).filter(unowned))
        .set((outbox::last_error.eq(error_without_recipient()), outbox::recipient.eq("")))
        .execute(conn)?;
    Ok(true)
}

/// `last_error` with the recipient's address scrubbed, for an UPDATE that
/// also wipes `recipient`: both databases evaluate SET's expressions on the
/// row as it was, so `replace` still sees the address.
fn error_without_recipient() -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Text>> {
    diesel::dsl::sql(&format!("replace(last_error, recipient, '{SCRUBBED_ADDRESS}')"))
}

/// Keeps the composed (encrypted) message, so every retry sends the same
/// bytes with the same links. False if the lease was lost.
pub fn store_payload(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    payload: &[u8],
    minted_token_id: Option<i64>,
) -> QueryResult<bool> {
    let stored = diesel::update(outbox::table.find(id).filter(outbox::lease_owner.eq(owner)))
        .set((outbox::payload.eq(payload), outbox::minted_token_id.eq(minted_token_id)))
        .execute(conn)?;
    Ok(stored == 1)
}

/// Extends this worker's lease on a row to `until`. False if the lease is
/// no longer ours (it ran out and another worker took the row, or the row
/// is finished).
pub fn renew_lease(conn: &mut DbConnection, id: i64, owner: &str, until: i64) -> QueryResult<bool> {
    let renewed = diesel::update(outbox::table.find(id).filter(outbox::lease_owner.eq(owner)))
        .set(outbox::lease_until.eq(until))
        .execute(conn)?;
    Ok(renewed == 1)
}

/// Hands a row back untouched, for when the worker could not attempt it
/// (the database failed while composing): the attempt is not counted.
pub fn release(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<bool> {
    let released = diesel::update(outbox::table.find(id).filter(outbox::lease_owner.eq(owner)))
        .set((
            outbox::lease_owner.eq(None::<String>),
            outbox::lease_until.eq(None::<i64>),
            outbox::attempts.eq(outbox::attempts - 1),
        ))
        .execute(conn)?;
    Ok(released == 1)
}

/// Releases the lease and schedules another attempt.
pub fn retry_later(conn: &mut DbConnection, id: i64, owner: &str, error: &str, at: i64) -> QueryResult<bool> {
    let released = diesel::update(outbox::table.find(id).filter(outbox::lease_owner.eq(owner)))
        .set((
            outbox::last_error.eq(error),
            outbox::next_attempt_at.eq(at),
            outbox::lease_owner.eq(None::<String>),
            outbox::lease_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(released == 1)
}

/// Deletes up to `batch` rows that were finished before `before`.
pub fn delete_finished_batch(conn: &mut DbConnection, before: i64, batch: i64) -> QueryResult<usize> {
    let finished: Vec<i64> = outbox::table
        .select(outbox::id)
        .filter(outbox::state.ne("pending"))
        .filter(outbox::finished_at.lt(before))
        .limit(batch)
        .load(conn)?;
    if finished.is_empty() {
        return Ok(0);
    }
    diesel::delete(outbox::table.filter(outbox::id.eq_any(finished))).execute(conn)
}

/// Mail that could not be sent, newest first, for administrators.
pub fn dead(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table.filter(outbox::state.eq("dead")).order(outbox::id.desc()).limit(limit).load(conn)
}

/// Mail that failed: given up on (`dead`), or still pending after a failed
/// attempt (it will be tried again). Newest first.
pub fn failing(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::state.eq("dead").or(outbox::state.eq("pending").and(outbox::last_error.is_not_null())))
        .order(outbox::id.desc())
        .limit(limit)
        .load(conn)
}

/// Forgets a deleted account's mail: what is still to be sent goes; what
/// was sent or failed stays for the record, without its recipient or
/// contents.
pub fn forget_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<()> {
    let of_user = outbox::table.filter(outbox::user_id.eq(user_id));
    diesel::delete(of_user.filter(outbox::state.eq("pending"))).execute(conn)?;
    diesel::update(of_user)
        .set((
            outbox::last_error.eq(error_without_recipient()),
            outbox::recipient.eq(""),
            outbox::payload.eq(None::<Vec<u8>>),
            outbox::password_hash.eq(None::<String>),
            outbox::event.eq(None::<String>),
        ))
        .execute(conn)
        .map(drop)
}

/// Puts a dead row back in the queue with fresh attempts; its links are
/// minted anew when it is composed. Not a row whose recipient was wiped.
pub fn revive_dead(conn: &mut DbConnection, id: i64, send_before: i64, now: i64) -> QueryResult<bool> {
    let dead = outbox::table.find(id).filter(outbox::state.eq("dead")).filter(outbox::recipient.ne(""));
    let revived = diesel::update(dead)
        .set((
            outbox::state.eq("pending"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::send_before.eq(send_before),
            outbox::finished_at.eq(None::<i64>),
            outbox::payload.eq(None::<Vec<u8>>),
        ))
        .execute(conn)?;
    Ok(revived == 1)
}

/// Whether mail for invitation `invitation_id` was queued after row `id`:
/// then that newer mail carries the invitation's link, not this one.
pub fn newer_for_invitation(conn: &mut DbConnection, invitation_id: i64, id: i64) -> QueryResult<bool> {
    let newer: i64 = outbox::table
        .filter(outbox::invitation_id.eq(invitation_id))
        .filter(outbox::id.gt(id))
        .count()
        .get_result(conn)?;
    Ok(newer > 0)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<OutboxRow>> {
    outbox::table.find(id).first(conn).optional()
}
