//! TEMPORARY stub, replaced by the groups branch.
use super::DbConnection;
pub fn member_names(_conn: &mut DbConnection, _user_id: i64) -> diesel::QueryResult<Vec<String>> {
    Ok(Vec::new())
}
