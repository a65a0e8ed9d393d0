//! `refresh_attempts`: the rotation ledger, each refresh attempt of a connection and how it
//! ended, trimmed to the newest `KEPT` per connection.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;

use super::DbConnection;
use super::schema::refresh_attempts;

/// Attempts kept per connection; older ones are dropped as new ones are recorded.
pub const KEPT: i64 = 20;

#[derive(Debug, Clone, Insertable)]
// `None` is written as NULL, so every row has the same columns and one statement takes many.
#[diesel(table_name = refresh_attempts, treat_none_as_default_value = false)]
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

/// Records attempts, a hundred rows per statement: they are few (one per refresh), so parsing the
/// statement anew each time costs nothing worth saving.
pub fn insert_batch(conn: &mut DbConnection, attempts: &[NewRefreshAttempt]) -> QueryResult<()> {
    // Matched per backend: diesel's multi-backend connection cannot batch inserts.
    match conn {
        DbConnection::Postgres(conn) => insert_in_chunks(conn, attempts),
        DbConnection::Sqlite(conn) => insert_in_chunks(conn, attempts),
    }
}

fn insert_in_chunks<'a, C>(conn: &mut C, attempts: &'a [NewRefreshAttempt]) -> QueryResult<()>
where
    C: Connection,
    InsertStatement<
        refresh_attempts::table,
        <&'a [NewRefreshAttempt] as Insertable<refresh_attempts::table>>::Values,
    >: ExecuteDsl<C>,
{
    for rows in attempts.chunks(100) {
        diesel::insert_into(refresh_attempts::table)
            .values(rows)
            .execute(conn)?;
    }
    Ok(())
}

/// Drops every connection's attempts beyond its newest `KEPT`, in one statement: run now and
/// then, not on the refresh path.
pub fn trim(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "DELETE FROM refresh_attempts WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
         (PARTITION BY connection_id ORDER BY id DESC) AS newer FROM refresh_attempts) AS ranked \
         WHERE newer > {KEPT})"
    ))
    .execute(conn)
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
