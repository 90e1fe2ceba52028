//! Ending a person's own sessions from their account page: one of them, or
//! every one but the browser asking.

use diesel::QueryResult;

use super::Context;
use crate::db::DbConnection;
use crate::db::audit::{self, Event, EventKind};
use crate::db::sessions;

/// Which of the account's sessions to end. Sessions are named by their
/// public id (shown on the account page), never by the cookie's value.
#[derive(Clone, Copy, Debug)]
pub enum EndSessions<'a> {
    /// The session with this public id, if it is the account's.
    One(&'a str),
    /// Every session but the one with this public id.
    AllBut(&'a str),
}

/// Ends the sessions `which` names of account `user_id` and records it.
/// Returns how many ended: 0 when `One` names no session of this account
/// (another person's, or one already gone), which the caller answers as
/// "not found" without saying which.
pub fn end_sessions(conn: &mut DbConnection, user_id: i64, which: EndSessions, ctx: Context) -> QueryResult<usize> {
    let ended = match which {
        EndSessions::One(public_id) => sessions::delete_by_public_id(conn, user_id, public_id)?,
        EndSessions::AllBut(keep) => sessions::delete_others(conn, user_id, keep)?,
    };
    if ended > 0 {
        let detail = match which {
            EndSessions::One(_) => "one session".to_owned(),
            EndSessions::AllBut(_) => format!("{ended} other session(s)"),
        };
        let event = Event {
            kind: EventKind::SessionsEnded,
            user_id: Some(user_id),
            actor_id: Some(user_id),
            ip: ctx.ip,
            detail: &detail,
        };
        audit::record(conn, event, ctx.now)?;
    }
    Ok(ended)
}
