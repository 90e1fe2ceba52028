//! The `sessions` table: server-side session state, keyed by a hash of the
//! id in the cookie.

use diesel::prelude::*;
use diesel::sqlite::Sqlite;

use super::email_changes::{self as email_change_states, EmailChange};
use super::schema::{email_changes, group_members, groups, sessions, two_factor, users};
use super::users::SignedInAccount;
use super::{DbConnection, on_backend};

#[derive(Queryable, Clone, Debug)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    pub public_id: String,
    pub state: String,
    pub remember: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: String,
    pub ip: String,
    /// SHA-256 of the forward-auth cookie's id, once one was issued.
    pub forward_id_hash: Option<Vec<u8>>,
}

/// A live session as the account page and the account export list it:
/// nothing that would let anyone use it (no id hash, no state).
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sessions)]
pub struct SessionListing {
    /// Names the session in forms ("sign out this one"); not a secret.
    pub public_id: String,
    /// Signed in with "keep me signed in".
    pub remember: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, written again once a tenth of the idle timeout (at
    /// most a minute) has passed.
    pub last_seen_at: i64,
    pub user_agent: String,
    pub ip: String,
}

impl SessionListing {
    /// Its columns in its fields' order, as a plain tuple: `as_select()`
    /// would tie the query to one backend, and one query serves both.
    pub fn columns() -> <Self as Selectable<Sqlite>>::SelectExpression {
        <Self as Selectable<Sqlite>>::construct_selection()
    }
}

impl SessionRow {
    /// The columns that decide how long the session lives.
    pub fn times(&self) -> SessionTimes {
        SessionTimes {
            id_hash: self.id_hash.clone(),
            remember: self.remember,
            last_seen_at: self.last_seen_at,
            absolute_expires_at: self.absolute_expires_at,
        }
    }
}

/// What the idle timeout's slide needs of a session: the forward-auth check
/// reads no more of it.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sessions)]
pub struct SessionTimes {
    pub id_hash: Vec<u8>,
    /// Signed in with "keep me signed in": the longer timeouts apply.
    pub remember: bool,
    /// Unix seconds, written again once a tenth of the idle timeout (at
    /// most a minute) has passed.
    pub last_seen_at: i64,
    /// Unix seconds; the idle expiry never passes it.
    pub absolute_expires_at: i64,
}

impl SessionTimes {
    /// Its columns in its fields' order, as a plain tuple: `as_select()`
    /// would tie the query to one backend, and one query serves both.
    pub fn columns() -> <Self as Selectable<Sqlite>>::SelectExpression {
        <Self as Selectable<Sqlite>>::construct_selection()
    }
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id_hash: &'a [u8],
    pub user_id: i64,
    pub public_id: &'a str,
    pub state: &'a str,
    pub remember: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub forward_id_hash: Option<&'a [u8]>,
}

pub fn insert(conn: &mut DbConnection, session: &NewSession) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(session).execute(conn)?;
    Ok(())
}

/// A session that has not timed out, with its user and whether the user
/// has two-step sign-in on (`Some` time it was turned on).
pub fn find_live(
    conn: &mut DbConnection,
    id_hash: &[u8],
    now: i64,
) -> QueryResult<Option<(SessionRow, SignedInAccount, Option<i64>)>> {
    let query = sessions::table
        .inner_join(users::table.left_join(two_factor::table))
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .select((sessions::all_columns, SignedInAccount::columns(), two_factor::enabled_at.nullable()));
    on_backend!(conn, c => query.get_result(c).optional())
}

/// What `GET /account` shows besides the session's own account.
#[derive(Debug)]
pub struct AccountOverview {
    /// The account's live sessions (this one among them), most recently
    /// seen first.
    pub sessions: Vec<SessionListing>,
    /// The newest change of address still waiting for its confirmation.
    pub pending_change: Option<EmailChange>,
}

/// A live session with its account and everything `GET /account` shows.
pub struct SessionOverview {
    /// The session asked for.
    pub session: SessionRow,
    /// Its account.
    pub user: SignedInAccount,
    /// When two-step sign-in was turned on, if it is on.
    pub two_factor_since: Option<i64>,
    /// The account's live sessions and pending change of address.
    pub overview: AccountOverview,
}

/// `find_live` and, in the same statement, the account's live sessions and
/// its pending change of address: `GET /account` in one query. One row per
/// live session of the account (times pending changes, of which there is
/// at most one: `accounts::email_change` replaces the last).
pub fn find_live_with_overview(
    conn: &mut DbConnection,
    id_hash: &[u8],
    now: i64,
) -> QueryResult<Option<SessionOverview>> {
    let others = diesel::alias!(sessions as others);
    let query = sessions::table
        .inner_join(users::table.left_join(two_factor::table))
        .inner_join(
            others.on(others
                .field(sessions::user_id)
                .eq(sessions::user_id)
                .and(others.field(sessions::idle_expires_at).gt(now))
                .and(others.field(sessions::absolute_expires_at).gt(now))),
        )
        .left_join(
            email_changes::table.on(email_changes::user_id
                .eq(sessions::user_id)
                .and(email_changes::state.eq(email_change_states::PENDING))
                .and(email_changes::expires_at.gt(now))),
        )
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .select((
            sessions::all_columns,
            SignedInAccount::columns(),
            two_factor::enabled_at.nullable(),
            others.fields(SessionListing::columns()),
            email_changes::all_columns.nullable(),
        ));
    // Sorted here, not by an ORDER BY: that would cost a temporary b-tree.
    type Row = (SessionRow, SignedInAccount, Option<i64>, SessionListing, Option<EmailChange>);
    let rows: Vec<Row> = on_backend!(conn, c => query.load(c))?;
    let mut rows = rows.into_iter();
    let Some((session, user, two_factor_since, first, first_change)) = rows.next() else { return Ok(None) };
    // Should a second pending change ever exist, it repeats every session:
    // each session is taken from the rows of the first row's change.
    let listed_with = first_change.as_ref().map(|change| change.id);
    let mut sessions = vec![first];
    let mut pending_change = first_change;
    for (_, _, _, other, change) in rows {
        let change_id = change.as_ref().map(|change| change.id);
        if change_id == listed_with {
            sessions.push(other);
        }
        if let Some(change) = change.filter(|change| pending_change.as_ref().is_none_or(|newest| change.id > newest.id))
        {
            pending_change = Some(change);
        }
    }
    sessions.sort_by_key(|session| std::cmp::Reverse((session.last_seen_at, session.created_at)));
    Ok(Some(SessionOverview {
        session,
        user,
        two_factor_since,
        overview: AccountOverview { sessions, pending_change },
    }))
}

/// A live session with its account, as the forward-auth check needs it.
pub struct ForwardSession {
    /// The session that issued the forward-auth id.
    pub session: SessionTimes,
    /// Its account.
    pub user: SignedInAccount,
    /// When two-step sign-in was turned on, if it is on.
    pub two_factor_since: Option<i64>,
    /// The names of the account's stored groups, sorted.
    pub groups: Vec<String>,
}

/// The live session whose forward-auth cookie id hashes to
/// `forward_id_hash`, with its user, second factor and groups, in one
/// statement: the check runs on every request to every guarded app. The
/// groups come as one joined row each (one row when there are none).
pub fn find_live_by_forward_id(
    conn: &mut DbConnection,
    forward_id_hash: &[u8],
    now: i64,
) -> QueryResult<Option<ForwardSession>> {
    // Left joins all the way: SQLite materialises an inner join nested on
    // the right of a left join whole (every membership of every group);
    // this way the account's memberships are found by `group_members_by_user`.
    // The groups are sorted here: an ORDER BY costs a temporary b-tree.
    let query = sessions::table
        .inner_join(users::table.left_join(two_factor::table).left_join(group_members::table))
        .left_join(groups::table.on(groups::id.eq(group_members::group_id)))
        .filter(sessions::forward_id_hash.eq(forward_id_hash))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .select((
            SessionTimes::columns(),
            SignedInAccount::columns(),
            two_factor::enabled_at.nullable(),
            groups::name.nullable(),
        ));
    let rows: Vec<(SessionTimes, SignedInAccount, Option<i64>, Option<String>)> =
        on_backend!(conn, c => query.load(c))?;
    let mut rows = rows.into_iter();
    let Some((session, user, two_factor_since, first_group)) = rows.next() else { return Ok(None) };
    let mut groups: Vec<String> = first_group.into_iter().chain(rows.filter_map(|row| row.3)).collect();
    groups.sort_unstable();
    Ok(Some(ForwardSession { session, user, two_factor_since, groups }))
}

/// Slides the idle timeout.
pub fn touch(conn: &mut DbConnection, id_hash: &[u8], now: i64, idle_expires_at: i64) -> QueryResult<()> {
    let query = diesel::update(sessions::table.find(id_hash))
        .set((sessions::last_seen_at.eq(now), sessions::idle_expires_at.eq(idle_expires_at)));
    on_backend!(conn, c => query.execute(c))?;
    Ok(())
}

/// Stores the session's state, and with `Some`, a new forward-auth id hash
/// (`Some(None)`: none).
pub fn update_state(
    conn: &mut DbConnection,
    id_hash: &[u8],
    state: &str,
    forward_id_hash: Option<Option<&[u8]>>,
) -> QueryResult<usize> {
    let row = sessions::table.find(id_hash);
    match forward_id_hash {
        Some(forward) => {
            diesel::update(row).set((sessions::state.eq(state), sessions::forward_id_hash.eq(forward))).execute(conn)
        }
        None => diesel::update(row).set(sessions::state.eq(state)).execute(conn),
    }
}

pub fn delete(conn: &mut DbConnection, id_hash: &[u8]) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id_hash)).execute(conn)
}

/// The user's live sessions, most recently used first (then most recently
/// started).
pub fn list_live_for_user(conn: &mut DbConnection, user_id: i64, now: i64) -> QueryResult<Vec<SessionListing>> {
    let query = sessions::table
        .select(SessionListing::columns())
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::idle_expires_at.gt(now))
        .filter(sessions::absolute_expires_at.gt(now))
        .order((sessions::last_seen_at.desc(), sessions::created_at.desc()));
    on_backend!(conn, c => query.load(c))
}

pub fn delete_all_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Ends the user's session named `public_id`; 0 when the user has none
/// of that name.
pub fn delete_by_public_id(conn: &mut DbConnection, user_id: i64, public_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::public_id.eq(public_id)))
        .execute(conn)
}

/// Ends every session of the user but the one named `keep`, and every way
/// into guarded apps: `keep` loses its forward-auth id too (a copy of that
/// cookie may be what someone else holds), and gets a new one on its next
/// way to a guarded app.
pub fn delete_others(conn: &mut DbConnection, user_id: i64, keep: &str) -> QueryResult<usize> {
    let mine = sessions::table.filter(sessions::user_id.eq(user_id));
    diesel::update(mine.filter(sessions::public_id.eq(keep)))
        .set(sessions::forward_id_hash.eq(None::<Vec<u8>>))
        .execute(conn)?;
    diesel::delete(mine.filter(sessions::public_id.ne(keep))).execute(conn)
}

/// Keeps the user's `keep` newest sessions and deletes the rest.
pub fn evict_oldest(conn: &mut DbConnection, user_id: i64, keep: i64) -> QueryResult<usize> {
    let surplus: Vec<Vec<u8>> = sessions::table
        .select(sessions::id_hash)
        .filter(sessions::user_id.eq(user_id))
        .order((sessions::created_at.desc(), sessions::last_seen_at.desc()))
        .limit(i64::MAX)
        .offset(keep)
        .load(conn)?;
    if surplus.is_empty() {
        return Ok(0);
    }
    diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(surplus))).execute(conn)
}

/// Deletes up to `batch` timed-out sessions. The idle deadline is never
/// later than the absolute one (every write caps it), so its index finds
/// both kinds.
pub fn delete_expired_batch(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> =
        sessions::table.select(sessions::id_hash).filter(sessions::idle_expires_at.le(now)).limit(batch).load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(expired))).execute(conn)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::db::testing::{database, query_plan, statements_of, user};
    use crate::db::{email_changes as changes, groups};
    use crate::domain::GroupName;

    /// A session of `user_id` seen at `last_seen_at`, live until 100.
    fn session(
        user_id: i64,
        id_hash: &'static [u8],
        last_seen_at: i64,
        forward: Option<&'static [u8]>,
    ) -> NewSession<'static> {
        NewSession {
            id_hash,
            user_id,
            public_id: std::str::from_utf8(id_hash).unwrap(),
            state: "{}",
            remember: false,
            created_at: 1,
            last_seen_at,
            idle_expires_at: 100,
            absolute_expires_at: 100,
            user_agent: "",
            ip: "",
            forward_id_hash: forward,
        }
    }

    /// `GET /account` reads the session, the account's live sessions and its
    /// pending change in one statement, as the separate reads would.
    #[test]
    fn the_account_overview_comes_with_the_session_in_one_statement() {
        let (_dir, mut conn) = database();
        let ann = user(&mut conn, "ann@example.com");
        let bob = user(&mut conn, "bob@example.com");
        insert(&mut conn, &session(ann, b"a1", 10, None)).unwrap();
        insert(&mut conn, &session(ann, b"a2", 30, None)).unwrap();
        insert(&mut conn, &session(ann, b"a3", 20, None)).unwrap();
        insert(&mut conn, &NewSession { idle_expires_at: 40, ..session(ann, b"old", 5, None) }).unwrap();
        insert(&mut conn, &session(bob, b"b1", 50, None)).unwrap();

        let found = find_live_with_overview(&mut conn, b"a1", 50).unwrap().unwrap();
        assert_eq!((found.session.id_hash.as_slice(), found.user.id), (&b"a1"[..], ann));
        let ids: Vec<&str> = found.overview.sessions.iter().map(|s| s.public_id.as_str()).collect();
        assert_eq!(ids, ["a2", "a3", "a1"], "live ones of this account, most recent first");
        assert!(found.overview.pending_change.is_none());
        let separate: Vec<String> =
            list_live_for_user(&mut conn, ann, 50).unwrap().into_iter().map(|s| s.public_id).collect();
        assert_eq!(separate, ids);

        changes::request(&mut conn, ann, "ann@example.com", "ann@new.example", 90, 40).unwrap();
        changes::request(&mut conn, ann, "ann@example.com", "ann@newer.example", 90, 41).unwrap();
        // Two pending at once, which the rules never leave: each session
        // still listed once, the newer change shown.
        let second = (
            email_changes::user_id.eq(ann),
            email_changes::old_email.eq("ann@example.com"),
            email_changes::new_email.eq("ann@newest.example"),
            email_changes::state.eq(email_change_states::PENDING),
            email_changes::expires_at.eq(90),
            email_changes::created_at.eq(42),
        );
        diesel::insert_into(email_changes::table).values(second).execute(&mut conn).unwrap();
        let found = find_live_with_overview(&mut conn, b"a3", 50).unwrap().unwrap();
        let ids: Vec<&str> = found.overview.sessions.iter().map(|s| s.public_id.as_str()).collect();
        assert_eq!(ids, ["a2", "a3", "a1"]);
        let shown = found.overview.pending_change.map(|change| change.new_email);
        assert_eq!(shown.as_deref(), Some("ann@newest.example"));
        assert!(find_live_with_overview(&mut conn, b"old", 50).unwrap().is_none(), "timed out");
        assert!(find_live_with_overview(&mut conn, b"a1", 100).unwrap().is_none(), "all timed out");
    }

    /// The forward-auth check reads the session, its account and the
    /// account's groups in one statement: one row per group, or one row.
    #[test]
    fn the_forward_auth_lookup_brings_every_group_once_in_one_statement() {
        let (_dir, mut conn) = database();
        let ann = user(&mut conn, "ann@example.com");
        insert(&mut conn, &session(ann, b"s1", 1, Some(b"f1"))).unwrap();
        let alone = find_live_by_forward_id(&mut conn, b"f1", 50).unwrap().unwrap();
        assert_eq!((alone.user.id, alone.groups.len()), (ann, 0));

        for group in ["wiki_editors", "staff"] {
            let group = groups::create(&mut conn, &GroupName::parse(group).unwrap(), 5).unwrap().unwrap();
            groups::add_member(&mut conn, group.id, ann, 7).unwrap();
        }
        let found = find_live_by_forward_id(&mut conn, b"f1", 50).unwrap().unwrap();
        assert_eq!(found.groups, ["staff", "wiki_editors"]);
        assert_eq!(found.session.id_hash, b"s1");
        assert!(find_live_by_forward_id(&mut conn, b"f1", 100).unwrap().is_none(), "timed out");
        assert!(find_live_by_forward_id(&mut conn, b"f2", 50).unwrap().is_none(), "no such id");
    }

    /// Both lookups every signed-in request makes stay index searches once
    /// there are many accounts and memberships: no table scanned, nothing
    /// materialised or sorted per request.
    #[test]
    fn the_per_request_lookups_search_indexes_and_sort_nothing() {
        let (_dir, mut conn) = database();
        let teams: Vec<i64> = (0..40)
            .map(|n| groups::create(&mut conn, &GroupName::parse(&format!("team{n}")).unwrap(), 5).unwrap().unwrap().id)
            .collect();
        let mut ann = 0;
        for n in 0..300 {
            ann = user(&mut conn, &format!("user{n}@example.com"));
            groups::add_member(&mut conn, teams[n % teams.len()], ann, 7).unwrap();
            let (id, forward) = (format!("s{n}"), format!("f{n}"));
            let new = NewSession {
                id_hash: id.as_bytes(),
                forward_id_hash: Some(forward.as_bytes()),
                ..session(ann, b"", 1, None)
            };
            insert(&mut conn, &new).unwrap();
        }
        conn.batch_execute("ANALYZE").unwrap();

        let statements = statements_of(&mut conn, |conn| {
            assert_eq!(find_live_by_forward_id(conn, b"f299", 50).unwrap().unwrap().user.id, ann);
            assert_eq!(find_live_with_overview(conn, b"s299", 50).unwrap().unwrap().user.id, ann);
        });
        assert_eq!(statements.len(), 2, "one statement each: {statements:?}");
        for sql in &statements {
            let plan = query_plan(&mut conn, sql);
            let costly = ["SCAN", "MATERIALIZE", "TEMP B-TREE"];
            assert!(!plan.iter().any(|step| costly.iter().any(|word| step.contains(word))), "{plan:?}");
        }
        let forward = query_plan(&mut conn, &statements[0]);
        assert!(forward.iter().any(|step| step.starts_with("SEARCH group_members")), "{forward:?}");
    }
}
