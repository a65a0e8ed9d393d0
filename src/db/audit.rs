//! `audit_events`: who did what, when. Written in batches by the audit writer.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;

use super::DbConnection;
use super::schema::audit_events;

#[derive(Debug, Clone, Insertable)]
// `None` is written as NULL, the columns' default: every row then has the same columns, so one
// statement takes many rows, and the statement is prepared once.
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub struct NewAuditEvent {
    pub at: NaiveDateTime,
    pub kind: String,
    pub actor: String,
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub connection_id: Option<String>,
    pub scopes: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub kind: String,
    pub actor: String,
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub connection_id: Option<String>,
    pub scopes: Option<String>,
    pub detail: Option<String>,
}

/// Inserts a batch in one transaction: one commit for many events.
pub fn insert_batch(conn: &mut DbConnection, events: &[NewAuditEvent]) -> QueryResult<()> {
    // A hundred rows per statement keeps the bound values far below either backend's limit.
    // (Matched per backend: diesel's multi-backend connection cannot batch inserts.)
    match conn {
        DbConnection::Postgres(conn) => insert_in_chunks(conn, events),
        DbConnection::Sqlite(conn) => insert_in_chunks(conn, events),
    }
}

fn insert_in_chunks<'a, C>(conn: &mut C, events: &'a [NewAuditEvent]) -> QueryResult<()>
where
    C: Connection,
    InsertStatement<
        audit_events::table,
        <&'a [NewAuditEvent] as Insertable<audit_events::table>>::Values,
    >: ExecuteDsl<C>,
{
    conn.transaction(|conn| {
        for rows in events.chunks(100) {
            diesel::insert_into(audit_events::table)
                .values(rows)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Newest first, optionally only those at or after `since`.
pub fn list(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
    before_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(id) = before_id {
        query = query.filter(audit_events::id.lt(id));
    }
    if let Some(since) = since {
        query = query.filter(audit_events::at.ge(since));
    }
    query.load(conn)
}
