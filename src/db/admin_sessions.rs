//! `admin_sessions`: who is signed in to the admin pages, by the hash of their cookie.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::admin_sessions;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_sessions)]
pub struct AdminSessionRow {
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    /// `admin:token`, or `admin:{username}` for a session opened through GitLab.
    pub actor: String,
}

pub fn insert(conn: &mut DbConnection, row: &AdminSessionRow) -> QueryResult<()> {
    diesel::insert_into(admin_sessions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The session with this hash, unless it has expired by `now`.
pub fn find_live(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<AdminSessionRow>> {
    admin_sessions::table
        .find(token_hash)
        .filter(admin_sessions::expires_at.gt(now))
        .select(AdminSessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn delete(conn: &mut DbConnection, token_hash: &str) -> QueryResult<bool> {
    diesel::delete(admin_sessions::table.find(token_hash))
        .execute(conn)
        .map(|n| n == 1)
}

/// Removes sessions that expired by `now`; returns how many.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(now))).execute(conn)
}
