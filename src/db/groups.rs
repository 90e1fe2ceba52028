//! The group tables: `groups` (names administrators chose) and
//! `group_members` (who is in each). The built-in `admins` group is never
//! stored here: its members are the accounts with the administrator flag
//! (`users.is_admin`). The rules live in `accounts/groups.rs`.

use diesel::prelude::*;

use super::schema::{group_members, groups, users};
use super::{DbConnection, on_backend};
use crate::domain::GroupName;

/// A stored group.
#[derive(Queryable, Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    /// Checked by `GroupName::parse` before it was stored; never `admins`.
    pub name: String,
    /// Unix seconds (UTC).
    pub created_at: i64,
}

/// A group and how many accounts are in it, for the groups page.
#[derive(Queryable, Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub id: i64,
    pub name: String,
    pub members: i64,
}

/// Creates the group `name` at `now`. `None` when a group of that name
/// exists already, including one that a transaction running at the same
/// time has just created: the insert is `ON CONFLICT DO NOTHING`, so no
/// unique violation aborts the caller's transaction (on PostgreSQL it
/// waits for the other transaction and then does nothing).
pub fn create(conn: &mut DbConnection, name: &GroupName, now: i64) -> QueryResult<Option<Group>> {
    on_backend!(conn, c => diesel::insert_into(groups::table)
        .values((groups::name.eq(name.as_str()), groups::created_at.eq(now)))
        .on_conflict(groups::name)
        .do_nothing()
        .returning((groups::id, groups::name, groups::created_at))
        .get_result::<Group>(c)
        .optional())
}

/// The group named exactly `name`, if there is one.
pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Group>> {
    groups::table.filter(groups::name.eq(name)).first(conn).optional()
}

/// Every group with its number of members, in name order (byte order on
/// both backends).
pub fn list_with_counts(conn: &mut DbConnection) -> QueryResult<Vec<GroupSummary>> {
    groups::table
        .left_join(group_members::table)
        .group_by((groups::id, groups::name))
        .select((groups::id, groups::name, diesel::dsl::count(group_members::user_id.nullable())))
        .order(groups::name)
        .load(conn)
}

/// The names of every group, in name order.
pub fn names(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    groups::table.select(groups::name).order(groups::name).load(conn)
}

/// Puts the account `user_id` in the group `group_id` at `now`. True if
/// it was not in it yet; adding it again changes nothing and is no error.
/// Both must exist (a foreign key error otherwise).
pub fn add_member(conn: &mut DbConnection, group_id: i64, user_id: i64, now: i64) -> QueryResult<bool> {
    let added = on_backend!(conn, c => diesel::insert_into(group_members::table)
        .values((
            group_members::group_id.eq(group_id),
            group_members::user_id.eq(user_id),
            group_members::added_at.eq(now),
        ))
        .on_conflict((group_members::group_id, group_members::user_id))
        .do_nothing()
        .execute(c))?;
    Ok(added == 1)
}

/// Takes the account `user_id` out of the group `group_id`; true if it
/// was in it.
pub fn remove_member(conn: &mut DbConnection, group_id: i64, user_id: i64) -> QueryResult<bool> {
    let membership = group_members::table.find((group_id, user_id));
    Ok(diesel::delete(membership).execute(conn)? == 1)
}

/// Takes the account out of every group (its deletion); how many it was in.
pub fn remove_all_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(group_members::table.filter(group_members::user_id.eq(user_id))).execute(conn)
}

/// The names of the stored groups the account `user_id` is in, sorted
/// (byte order), in one query through `group_members_by_user`: forward
/// authentication reads it on every request. Never `admins`, which is
/// the administrator flag the caller already holds with the account;
/// empty for an unknown or deleted account.
pub fn member_names(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<String>> {
    on_backend!(conn, c => group_members::table
        .inner_join(groups::table)
        .filter(group_members::user_id.eq(user_id))
        .select(groups::name)
        .order(groups::name)
        .load(c))
}

/// How many accounts are in the built-in `admins` group: those with the
/// administrator flag (a deleted account never has it).
pub fn count_administrators(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.filter(users::is_admin.eq(true)).filter(users::deleted_at.is_null()).count().get_result(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::{database, user};

    fn name(name: &str) -> GroupName {
        GroupName::parse(name).unwrap()
    }

    #[test]
    fn memberships_are_idempotent_and_names_come_sorted() {
        let (_dir, mut conn) = database();
        let ann = user(&mut conn, "ann@example.com");
        let bob = user(&mut conn, "bob@example.com");
        let wiki = create(&mut conn, &name("wiki_editors"), 5).unwrap().unwrap();
        let staff = create(&mut conn, &name("staff"), 5).unwrap().unwrap();
        let ops = create(&mut conn, &name("wiki-ops"), 5).unwrap().unwrap();
        assert_eq!(create(&mut conn, &name("staff"), 6).unwrap(), None, "a taken name");

        assert!(add_member(&mut conn, wiki.id, ann, 7).unwrap());
        assert!(add_member(&mut conn, staff.id, ann, 7).unwrap());
        assert!(add_member(&mut conn, ops.id, ann, 7).unwrap());
        assert!(!add_member(&mut conn, staff.id, ann, 8).unwrap(), "already in it");
        assert!(add_member(&mut conn, staff.id, bob, 8).unwrap());

        assert_eq!(member_names(&mut conn, ann).unwrap(), ["staff", "wiki-ops", "wiki_editors"]);
        assert_eq!(member_names(&mut conn, bob).unwrap(), ["staff"]);
        let counts: Vec<(String, i64)> =
            list_with_counts(&mut conn).unwrap().into_iter().map(|group| (group.name, group.members)).collect();
        let expected = [("staff", 2), ("wiki-ops", 1), ("wiki_editors", 1)].map(|(n, c)| (n.to_owned(), c));
        assert_eq!(counts, expected);

        assert!(remove_member(&mut conn, staff.id, ann).unwrap());
        assert!(!remove_member(&mut conn, staff.id, ann).unwrap(), "no longer in it");
        assert_eq!(remove_all_for_user(&mut conn, ann).unwrap(), 2);
        assert!(member_names(&mut conn, ann).unwrap().is_empty());
        assert_eq!(find_by_name(&mut conn, "staff").unwrap().map(|group| group.id), Some(staff.id));
        assert_eq!(find_by_name(&mut conn, "nobody").unwrap(), None);
    }
}
