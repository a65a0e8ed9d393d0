//! `audit_events`: who did what, when. Written in batches by the audit writer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::audit_events;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
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
    conn.transaction(|conn| {
        for event in events {
            diesel::insert_into(audit_events::table)
                .values(event)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Newest first, optionally only those at or after `since`.
pub fn list(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(audit_events::at.ge(since));
    }
    query.load(conn)
}
