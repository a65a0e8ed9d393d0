//! `audit_events`: who did what, when. Written in batches by the audit writer.

use std::ops::Deref;
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::DbConnection;
use super::refresh_attempts::{self, NewRefreshAttempt};
use super::schema::audit_events;
use crate::config::DatabaseUrl;

#[derive(Debug, Clone, Insertable)]
// `None` is written as NULL, the columns' default: every row then has the same columns, so the
// statements that write them are prepared once.
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub struct NewAuditEvent {
    pub at: EventTime,
    pub kind: AuditText,
    pub actor: AuditText,
    pub instance: Option<AuditText>,
    pub subject: Option<AuditText>,
    pub connection_id: Option<AuditText>,
    pub scopes: Option<AuditText>,
    pub detail: Option<AuditText>,
}

/// An event's text: a word of the code's own, text shared with what the event is about, or
/// text made for it. A handout's event shares its service's, connection's and scopes' text
/// instead of copying each into a string of its own.
#[derive(Debug, Clone, diesel::expression::AsExpression)]
#[diesel(sql_type = Text)]
pub enum AuditText {
    Word(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Deref for AuditText {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Word(word) => word,
            Self::Shared(text) => text,
            Self::Owned(text) => text,
        }
    }
}

impl From<&str> for AuditText {
    fn from(text: &str) -> Self {
        Self::Owned(text.to_owned())
    }
}

impl From<&String> for AuditText {
    fn from(text: &String) -> Self {
        Self::Owned(text.clone())
    }
}

impl From<String> for AuditText {
    fn from(text: String) -> Self {
        Self::Owned(text)
    }
}

impl From<Arc<str>> for AuditText {
    fn from(text: Arc<str>) -> Self {
        Self::Shared(text)
    }
}

impl From<&Arc<str>> for AuditText {
    fn from(text: &Arc<str>) -> Self {
        Self::Shared(text.clone())
    }
}

impl ToSql<Text, Sqlite> for AuditText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        ToSql::<Text, Sqlite>::to_sql(&**self, out)
    }
}

impl ToSql<Text, Pg> for AuditText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<Text, Pg>::to_sql(&**self, out)
    }
}

/// When an event happened, written as diesel writes a timestamp, without its format string:
/// SQLite keeps timestamps as text, and at a busy handout rate parsing that format string
/// for every event was a tenth of the audit writer's work.
#[derive(Debug, Clone, Copy, diesel::expression::AsExpression)]
#[diesel(sql_type = Timestamp)]
pub struct EventTime(pub NaiveDateTime);

impl ToSql<Timestamp, Sqlite> for EventTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        // `Display` writes diesel's own "%F %T%.f": what is read back is unchanged.
        out.set_value(self.0.to_string());
        Ok(IsNull::No)
    }
}

impl ToSql<Timestamp, Pg> for EventTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<Timestamp, Pg>::to_sql(&self.0, out)
    }
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

/// How many pages SQLite's write-ahead log may hold before the audit writer's commit copies
/// them into the database. SQLite's default, 1,000, made each checkpoint a burst of up to
/// 2.5 ms on the writer's thread, every second or so at a busy handout rate, on a core the
/// handouts need (a scheduler trace on a 2-core machine); with 100 the longest is 0.5 ms.
/// Ten times as many checkpoints copy the same pages in all, but each also syncs the files
/// once (about 0.2 µs a handout on a later 2-core machine); the log's file stays a tenth as
/// large.
const WRITER_CHECKPOINT_PAGES: u32 = 100;

/// Opens the audit writer's own connection. On SQLite, it checkpoints the log in small steps
/// (`WRITER_CHECKPOINT_PAGES`). On PostgreSQL, its commits do not wait for the
/// disk (`synchronous_commit` off, for this session only): the events are already allowed to be
/// lost while queued in memory, and a crash of the database server loses at most its last
/// moments of them (three `wal_writer_delay`s, 600 ms by default), never part of a batch, and
/// nothing any other connection wrote. It spares the database a flush to disk for every batch.
pub fn open_writer(url: &DatabaseUrl) -> Result<DbConnection, String> {
    let mut conn = super::pool::connect_outside_pool(url)?;
    match &mut conn {
        // Named, so that an operator tells it from the pool's in `pg_stat_activity`.
        DbConnection::Postgres(pg) => pg.batch_execute(
            "SET synchronous_commit TO OFF; SET application_name TO 'labgate audit writer'",
        ),
        DbConnection::Sqlite(lite) => lite.batch_execute(&format!(
            "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}"
        )),
    }
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Writes audit events and rotation-ledger entries, all or none: a retried batch is never
/// written twice in part. On PostgreSQL, events alone are one `COPY`, a transaction by itself,
/// without the two round trips of `BEGIN` and `COMMIT`.
pub fn write_batch(
    conn: &mut DbConnection,
    events: &[NewAuditEvent],
    attempts: &[NewRefreshAttempt],
) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) if attempts.is_empty() => copy_in(pg, events),
        _ => conn.transaction(|conn| {
            insert_batch(conn, events)?;
            refresh_attempts::insert_batch(conn, attempts)
        }),
    }
}

/// Inserts a batch, inside the caller's transaction: one commit for many events (a transaction
/// of its own here would be a savepoint, and SQLite copies every page a savepoint touches into
/// a journal, spilled to a temporary file past 64 KiB). Each backend takes it in the way it
/// parses least: PostgreSQL through `COPY` (binary), SQLite in statements of a fixed number of
/// rows, prepared once and cached, the rest one row at a time. A list of rows as long as the
/// batch would be a new statement, parsed anew, at every batch: at a busy handout rate, that
/// parsing was most of the writer's work.
fn insert_batch(conn: &mut DbConnection, events: &[NewAuditEvent]) -> QueryResult<()> {
    const ROWS: usize = 32;
    match conn {
        _ if events.is_empty() => Ok(()),
        DbConnection::Postgres(conn) => copy_in(conn, events),
        DbConnection::Sqlite(conn) => {
            let mut chunks = events.chunks_exact(ROWS);
            for chunk in chunks.by_ref() {
                let rows: &[NewAuditEvent; ROWS] = chunk.try_into().expect("chunks of ROWS");
                diesel::insert_into(audit_events::table)
                    .values(rows)
                    .execute(conn)?;
            }
            for event in chunks.remainder() {
                diesel::insert_into(audit_events::table)
                    .values(event)
                    .execute(conn)?;
            }
            Ok(())
        }
    }
}

fn copy_in(conn: &mut PgConnection, events: &[NewAuditEvent]) -> QueryResult<()> {
    diesel::copy_from(audit_events::table)
        .from_insertable(events)
        .execute(conn)
        .map(drop)
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

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};

    use super::*;

    /// A service's handout to `subject`, now.
    fn handout(subject: String, detail: Option<&str>) -> NewAuditEvent {
        NewAuditEvent {
            at: EventTime(chrono::Utc::now().naive_utc()),
            kind: AuditText::Word("handout"),
            actor: AuditText::Word("service:ci-bot"),
            instance: None,
            subject: Some(AuditText::Owned(subject)),
            connection_id: None,
            scopes: None,
            detail: detail.map(AuditText::from),
        }
    }

    /// Batches of every size around the statements of 32 rows and of one: all rows are stored,
    /// once each, in the order given.
    #[test]
    fn a_batch_of_any_size_is_stored_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&DatabaseUrl::Sqlite(dir.path().join("audit.db"))).unwrap();
        crate::db::run_migrations(&mut conn).unwrap();
        let mut written = 0;
        for size in [0, 1, 7, 8, 9, 31, 32, 33, 40, 41, 71, 256] {
            let events: Vec<NewAuditEvent> = (written..written + size)
                .map(|n| handout(format!("user-{n:04}"), None))
                .collect();
            write_batch(&mut conn, &events, &[]).unwrap();
            written += size;
            let stored: Vec<String> = list(&mut conn, None, None, 10_000)
                .unwrap()
                .into_iter()
                .rev()
                .filter_map(|row| row.subject)
                .collect();
            let expected: Vec<String> = (0..written).map(|n| format!("user-{n:04}")).collect();
            assert_eq!(stored, expected, "after a batch of {size}");
        }
    }

    /// Megabytes of events: the log never grows far past the writer's checkpoint size, so no
    /// checkpoint is ever a large burst of work.
    #[test]
    fn the_writers_log_is_checkpointed_in_small_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut conn = open_writer(&DatabaseUrl::Sqlite(path.clone())).unwrap();
        crate::db::run_migrations(&mut conn).unwrap();
        let detail = "x".repeat(300);
        let log = dir.path().join("audit.db-wal");
        let mut largest = 0;
        for batch in 0..100 {
            let events: Vec<NewAuditEvent> = (0..256)
                .map(|n| handout(format!("user-{batch}-{n}"), Some(&detail)))
                .collect();
            write_batch(&mut conn, &events, &[]).unwrap();
            largest = largest.max(std::fs::metadata(&log).unwrap().len());
        }
        let DbConnection::Sqlite(lite) = &mut conn else {
            unreachable!()
        };
        let page: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "page_size FROM pragma_page_size()",
        ))
        .get_result(lite)
        .unwrap();
        let written = std::fs::metadata(&path).unwrap().len();
        assert!(written > 8 << 20, "only {written} bytes were written");
        // A batch of these events fills about 25 pages; the log holds a checkpoint's worth
        // and the batch that crossed it.
        let bound = (u64::from(WRITER_CHECKPOINT_PAGES) + 50) * (page as u64 + 24);
        assert!(
            largest <= bound,
            "the log grew to {largest} bytes (bound {bound})"
        );
    }

    #[test]
    fn an_event_time_is_written_in_diesels_own_format() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789, 5] {
            let at: NaiveDateTime = day.and_hms_nano_opt(9, 5, 7, nanos).unwrap();
            assert_eq!(at.to_string(), at.format("%F %T%.f").to_string());
        }
    }
}
