//! `refresh_attempts`: the rotation ledger, each refresh attempt of a connection and how it
//! ended, the newest `KEPT` per connection.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::refresh_attempts;

/// Attempts kept per connection; older ones are dropped as new ones are recorded.
pub const KEPT: i64 = 20;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_attempts)]
pub struct NewRefreshAttempt {
    pub connection_id: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    pub outcome: String,
    pub gitlab_request_id: Option<String>,
    pub process: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_attempts)]
pub struct RefreshAttemptRow {
    pub id: i64,
    pub connection_id: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    pub outcome: String,
    pub gitlab_request_id: Option<String>,
    pub process: String,
    pub detail: Option<String>,
}

/// Records an attempt and drops the connection's attempts beyond the newest `KEPT`.
pub fn record(conn: &mut DbConnection, attempt: &NewRefreshAttempt) -> QueryResult<()> {
    diesel::insert_into(refresh_attempts::table)
        .values(attempt)
        .execute(conn)?;
    let kept: Vec<i64> = refresh_attempts::table
        .filter(refresh_attempts::connection_id.eq(&attempt.connection_id))
        .order(refresh_attempts::id.desc())
        .limit(KEPT)
        .select(refresh_attempts::id)
        .load(conn)?;
    if let Some(oldest_kept) = kept.last() {
        diesel::delete(
            refresh_attempts::table
                .filter(refresh_attempts::connection_id.eq(&attempt.connection_id))
                .filter(refresh_attempts::id.lt(oldest_kept)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// A connection's attempts, newest first.
pub fn for_connection(
    conn: &mut DbConnection,
    connection_id: &str,
) -> QueryResult<Vec<RefreshAttemptRow>> {
    refresh_attempts::table
        .filter(refresh_attempts::connection_id.eq(connection_id))
        .order(refresh_attempts::id.desc())
        .select(RefreshAttemptRow::as_select())
        .load(conn)
}
