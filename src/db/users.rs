//! The `users` table.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::Sqlite;

use super::schema::users;
use super::{DbConnection, on_backend};
use crate::domain::{AccountState, Approval};

#[derive(Queryable, Clone, Debug)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub email_verified_at: Option<i64>,
    pub approval: String,
    pub is_admin: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the account last completed a sign-in.
    pub last_sign_in_at: Option<i64>,
    /// When the account was deleted: the row is a tombstone since then,
    /// its address and password wiped (`accounts::deletion`).
    pub deleted_at: Option<i64>,
}

/// The columns of an account that every signed-in request reads: who it
/// is and whether it may still be signed in. Never the password hash, which
/// stays in the database unless a password is being checked.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = users)]
pub struct SignedInAccount {
    pub id: i64,
    pub email: String,
    pub email_verified_at: Option<i64>,
    pub approval: String,
    pub is_admin: bool,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl SignedInAccount {
    /// Its columns in its fields' order, as a plain tuple: `as_select()`
    /// would tie the query to one backend, and one query serves both.
    pub fn columns() -> <Self as Selectable<Sqlite>>::SelectExpression {
        <Self as Selectable<Sqlite>>::construct_selection()
    }

    /// The facts that decide whether the account may stay signed in.
    pub fn state(&self) -> AccountState {
        account_state(self.email_verified_at, &self.approval, self.disabled_at)
    }
}

fn account_state(email_verified_at: Option<i64>, approval: &str, disabled_at: Option<i64>) -> AccountState {
    AccountState {
        email_verified: email_verified_at.is_some(),
        approval: Approval::from_db(approval),
        disabled: disabled_at.is_some(),
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub email_verified_at: Option<i64>,
    pub approval: &'a str,
    pub is_admin: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    pub fn state(&self) -> AccountState {
        account_state(self.email_verified_at, &self.approval, self.disabled_at)
    }

    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
        on_backend!(conn, c => users::table.find(id).get_result(c).optional())
    }

    /// `email` must already be normalised.
    pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<User>> {
        on_backend!(conn, c => users::table.filter(users::email.eq(email)).get_result(c).optional())
    }

    /// Inserts a user; `None` when the address is taken. The insert runs in
    /// a savepoint, since on PostgreSQL a failed statement would otherwise
    /// abort the caller's whole transaction.
    pub fn insert(conn: &mut DbConnection, new_user: &NewUser) -> QueryResult<Option<i64>> {
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(users::table).values(new_user).returning(users::id).get_result(conn)
        });
        match inserted {
            Ok(id) => Ok(Some(id)),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Stores a new password hash, nothing else: what else setting a
    /// password means is `accounts::set_password`.
    pub fn set_password(conn: &mut DbConnection, id: i64, password_hash: &str, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((users::password_hash.eq(password_hash), users::updated_at.eq(now)))
            .execute(conn)
            .map(drop)
    }

    /// Deletes up to `batch` accounts never verified and created before
    /// `created_before` (their tokens, sessions and mail go with them).
    pub fn delete_unverified_batch(conn: &mut DbConnection, created_before: i64, batch: i64) -> QueryResult<usize> {
        let stale: Vec<i64> = users::table
            .select(users::id)
            .filter(users::email_verified_at.is_null())
            .filter(users::is_admin.eq(false))
            .filter(users::deleted_at.is_null())
            .filter(users::created_at.lt(created_before))
            .limit(batch)
            .load(conn)?;
        if stale.is_empty() {
            return Ok(0);
        }
        diesel::delete(users::table.filter(users::id.eq_any(stale))).execute(conn)
    }

    /// Deletes the account if its address was never verified (its tokens,
    /// sessions and mail go with it); false if it is verified or gone.
    pub fn delete_unverified(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
        let unverified =
            users::table.find(id).filter(users::email_verified_at.is_null()).filter(users::deleted_at.is_null());
        let deleted = diesel::delete(unverified).execute(conn)?;
        Ok(deleted == 1)
    }

    /// Locks the account's row until the transaction ends; false when it
    /// is gone or deleted (a tombstone takes no change). Every transaction
    /// that touches an account's tokens takes this lock first, so on
    /// PostgreSQL they queue in one order instead of deadlocking (SQLite's
    /// `BEGIN IMMEDIATE` already serialises writers).
    pub fn lock(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
        let live = users::table.find(id).filter(users::deleted_at.is_null());
        let locked = diesel::update(live).set(users::updated_at.eq(users::updated_at)).execute(conn)?;
        Ok(locked == 1)
    }

    /// Gives the account a new address, normalised and proven (it counts as
    /// verified now). False when another account has that address. Runs in
    /// a savepoint, as `insert` does.
    pub fn set_email(conn: &mut DbConnection, id: i64, email: &str, now: i64) -> QueryResult<bool> {
        let updated = conn.transaction(|conn| {
            diesel::update(users::table.find(id))
                .set((users::email.eq(email), users::email_verified_at.eq(now), users::updated_at.eq(now)))
                .execute(conn)
        });
        match updated {
            Ok(rows) => Ok(rows == 1),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Marks the address verified; false if it already was.
    pub fn mark_verified(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(users::table.find(id).filter(users::email_verified_at.is_null()))
            .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// How pages name these accounts: by address, or "deleted account #7"
    /// for a tombstone. Accounts removed outright are missing.
    pub fn names_of(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
        let rows: Vec<(i64, String, Option<i64>)> = users::table
            .select((users::id, users::email, users::deleted_at))
            .filter(users::id.eq_any(ids))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(id, email, deleted)| (id, if deleted.is_some() { tombstone_name(id) } else { email }))
            .collect())
    }

    /// Turns the account into a tombstone: its id stays (the audit log's
    /// events keep their link), its address becomes `tombstone_email(id)`
    /// (so the address can be registered again), its password a hash that
    /// matches nothing, and it stays disabled, so that a session started by
    /// a sign-in racing the deletion is dropped on its first request.
    pub fn make_tombstone(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::email.eq(tombstone_email(id)),
                users::password_hash.eq(""),
                users::email_verified_at.eq(None::<i64>),
                users::is_admin.eq(false),
                users::disabled_at.eq(now),
                users::last_sign_in_at.eq(None::<i64>),
                users::deleted_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(conn)
            .map(drop)
    }

    /// How many verified sign-ups wait for an administrator, counting no
    /// further than `up_to` (a page shows "99+"): through the
    /// `users_waiting` partial index, reading at most `up_to` entries, so
    /// every admin page costs the same however many wait.
    pub fn count_waiting(conn: &mut DbConnection, up_to: i64) -> QueryResult<i64> {
        let waiting = ListFilter::Waiting.condition().unwrap_or("FALSE");
        let ids: Vec<i64> = users::table
            .select(users::id)
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(waiting))
            .order(users::email)
            .limit(up_to)
            .load(conn)?;
        Ok(ids.len() as i64)
    }

    /// Verified sign-ups waiting for an administrator, oldest first
    /// (through the `users_waiting_by_age` partial index).
    pub fn awaiting_approval(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<User>> {
        let waiting = ListFilter::Waiting.condition().unwrap_or("FALSE");
        users::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(waiting))
            .order((users::created_at, users::id))
            .limit(limit)
            .load(conn)
    }

    /// Notes a completed sign-in, for the admin list.
    pub fn record_sign_in(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id)).set(users::last_sign_in_at.eq(now)).execute(conn).map(drop)
    }

    /// A page of the users `filter` selects, in email order from `from`,
    /// optionally only those whose address starts with `prefix`. Each
    /// filter has a partial index on `email` (the unique index serves
    /// "everyone"), and the prefix is a range on it rather than `LIKE`, so
    /// a page deep in a million users costs what the first one does.
    ///
    /// Returns up to `limit` users in email order, and whether more lie
    /// beyond them in the direction read (one extra row is read to know).
    pub fn page(
        conn: &mut DbConnection,
        filter: ListFilter,
        prefix: &str,
        from: PageFrom,
        limit: i64,
    ) -> QueryResult<(Vec<User>, bool)> {
        let mut query = users::table.filter(users::deleted_at.is_null()).limit(limit + 1).into_boxed();
        if let Some(condition) = filter.condition() {
            query = query.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(condition));
        }
        if !prefix.is_empty() {
            query = query.filter(users::email.ge(prefix.to_owned()));
            if let Some(end) = prefix_end(prefix) {
                query = query.filter(users::email.lt(end));
            }
        }
        let mut rows: Vec<User> = match from {
            PageFrom::Start => query.order(users::email).load(conn)?,
            PageFrom::After(after) => query.filter(users::email.gt(after.to_owned())).order(users::email).load(conn)?,
            // The page before: read backwards along the same index, then put in order.
            PageFrom::Before(before) => {
                query.filter(users::email.lt(before.to_owned())).order(users::email.desc()).load(conn)?
            }
        };
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if matches!(from, PageFrom::Before(_)) {
            rows.reverse();
        }
        Ok((rows, more))
    }

    pub fn set_approval(conn: &mut DbConnection, id: i64, approval: Approval, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(users::table.find(id))
            .set((users::approval.eq(approval.as_str()), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(changed == 1)
    }

    pub fn set_disabled(conn: &mut DbConnection, id: i64, disabled: bool, now: i64) -> QueryResult<bool> {
        let changed = diesel::update(users::table.find(id))
            .set((users::disabled_at.eq(disabled.then_some(now)), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// Makes an account an administrator who can sign in at once.
    pub fn promote_to_admin(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::is_admin.eq(true),
                users::approval.eq(Approval::Approved.as_str()),
                users::disabled_at.eq(None::<i64>),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Self::mark_verified(conn, id, now)?;
        Ok(())
    }

    /// Administrators who can sign in and act: enabled and approved.
    pub fn count_active_admins(conn: &mut DbConnection) -> QueryResult<i64> {
        users::table
            .filter(users::is_admin.eq(true))
            .filter(users::disabled_at.is_null())
            .filter(users::approval.eq(Approval::Approved.as_str()))
            .count()
            .get_result(conn)
    }
}

/// What stands in a deleted account's `email`: unique and never an
/// address (no `@`). `~` is the last printable ASCII character, so in byte
/// order (SQLite's) tombstones come after every ASCII address, and the
/// admin list's pages skip them only on its last page.
pub fn tombstone_email(id: i64) -> String {
    format!("~deleted-{id}")
}

/// What stands in place of a deleted account's addresses in the text
/// that kept them (audit details, mail servers' errors).
pub const SCRUBBED_ADDRESS: &str = "(a deleted address)";

/// How pages name a deleted account.
pub fn tombstone_name(id: i64) -> String {
    format!("deleted account #{id}")
}

/// Which accounts the admin user list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFilter {
    Everyone,
    /// Address confirmed, waiting for an administrator's approval.
    Waiting,
    /// Address confirmed.
    Verified,
    /// Address not confirmed yet.
    Unverified,
    Disabled,
    Admins,
}

impl ListFilter {
    pub const ALL: [ListFilter; 6] = [
        ListFilter::Everyone,
        ListFilter::Waiting,
        ListFilter::Verified,
        ListFilter::Unverified,
        ListFilter::Disabled,
        ListFilter::Admins,
    ];

    /// The name in URLs (`?state=`); empty for everyone.
    pub fn as_str(self) -> &'static str {
        match self {
            ListFilter::Everyone => "",
            ListFilter::Waiting => "waiting",
            ListFilter::Verified => "verified",
            ListFilter::Unverified => "unverified",
            ListFilter::Disabled => "disabled",
            ListFilter::Admins => "admins",
        }
    }

    /// The filter named `name` in a URL; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|filter| filter.as_str() == name)
    }

    /// The SQL condition, written exactly as the WHERE of the partial index
    /// that serves it (migration `users_list_filters`): SQLite and
    /// PostgreSQL use a partial index only for a query that states its
    /// condition literally, never through a bound parameter. Constants
    /// only, so nothing from a request reaches this SQL.
    fn condition(self) -> Option<&'static str> {
        match self {
            ListFilter::Everyone => None,
            ListFilter::Waiting => Some("approval = 'pending' AND email_verified_at IS NOT NULL"),
            ListFilter::Verified => Some("email_verified_at IS NOT NULL"),
            ListFilter::Unverified => Some("email_verified_at IS NULL"),
            ListFilter::Disabled => Some("disabled_at IS NOT NULL"),
            ListFilter::Admins => Some("is_admin"),
        }
    }
}

/// Where a page of the user list starts: at the beginning, or just after
/// or just before an address (keyset paging, both ways).
#[derive(Clone, Copy, Debug)]
pub enum PageFrom<'a> {
    Start,
    After(&'a str),
    Before(&'a str),
}

/// The smallest string greater than every string starting with `prefix`:
/// the prefix with its last character incremented.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(u32::from(last) + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::ListFilter;
    use super::prefix_end;
    use crate::domain::Approval;

    #[test]
    fn the_waiting_filter_names_the_stored_pending_state() {
        let waiting = ListFilter::Waiting.condition().unwrap();
        assert!(waiting.contains(&format!("approval = '{}'", Approval::Pending.as_str())), "{waiting}");
    }

    #[test]
    fn prefix_end_bounds_the_range_of_a_prefix() {
        assert_eq!(prefix_end("ann").as_deref(), Some("ano"));
        assert_eq!(prefix_end("a@b.c").as_deref(), Some("a@b.d"));
        assert_eq!(prefix_end(""), None);
    }
}
