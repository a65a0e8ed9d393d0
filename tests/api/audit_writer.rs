//! The audit writer's own database connection.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use diesel::result::QueryResult;
use diesel::{Connection, PgConnection, RunQueryDsl};
use labgate::config::DatabaseUrl;
use labgate::db::DbConnection;
use labgate::db::audit::{AuditRow, AuditText, EventTime, NewAuditEvent, open_writer};
use labgate::db::audit_stream::{Chunk, ROWS_PER_COPY};
use labgate::service::audit::AuditEvent;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{ConnectWorld, TestApp};
use crate::support::database::Backend;

/// The writer keeps a connection outside the pool; when the database ends it (a restart, an
/// administrator's `pg_terminate_backend`), the next batch opens a new one and nothing queued
/// is lost or written twice.
#[actix_web::test]
async fn audit_events_are_written_after_the_writers_connection_is_ended() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let cw = ConnectWorld::start(backend).await;
    let service = |name: &str| json!({"name": name, "instances": ["corp"], "scopes": ["read_api"]});
    cw.app.create_service(&service("bot-before")).await;
    // Reading the log writes the queue out: the writer's connection is open.
    cw.app.get_json("/api/v1/audit").await;

    let pool = labgate::db::connect(&cw.app.settings.database).unwrap();
    let ended = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'labgate audit writer'",
    )
    .execute(&mut pool.get().unwrap())
    .unwrap();
    assert_eq!(ended, 1, "one audit writer connection, named as such");

    cw.app.create_service(&service("bot-after")).await;
    let events = cw.app.get_json("/api/v1/audit?limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    let created: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "service_created")
        .filter_map(|e| e["detail"].as_str())
        .filter(|name| name.starts_with("bot-"))
        .collect();
    assert_eq!(
        created,
        ["bot-after", "bot-before"],
        "each creation once, newest first: {events:?}"
    );
}

/// Events streamed into an open `COPY` come back exactly as recorded: every column, missing
/// ones as NULL, text that `COPY`'s text format would have to escape, the time to the
/// microsecond; and they are stored only once the stream ends.
#[actix_web::test]
async fn streamed_events_are_stored_as_recorded_when_the_stream_ends() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let url = app.settings.database.url.clone();
    let at = |micros: i64| {
        EventTime(
            NaiveDate::from_ymd_opt(2026, 12, 5)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap()
                + TimeDelta::microseconds(micros),
        )
    };
    let full = NewAuditEvent {
        at: at(456_789),
        kind: AuditText::Word("handout"),
        actor: "service:ci-bot".into(),
        instance: Some("corp".into()),
        subject: Some("tab\there, line\nthere, back\\slash, ünïcode ✓".into()),
        connection_id: Some("0b0c6c1e-5c1e-4f5e-9a8e-1d2c3b4a5f60".into()),
        scopes: Some("read_api read_repository".into()),
        detail: Some(String::new().into()),
    };
    let bare = NewAuditEvent {
        at: at(-1),
        kind: AuditText::Word("service_created"),
        actor: "admin:token".into(),
        instance: None,
        subject: None,
        connection_id: None,
        scopes: None,
        detail: None,
    };
    let (chunks, copying) = start_copy(url);
    chunks.send(Arc::new(vec![full.clone()])).unwrap();
    chunks.send(Arc::new(vec![bare.clone(); 2])).unwrap();
    // Wait until the rows have reached the database's open statement: still none is stored.
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    let stored = |pool: &labgate::db::DbPool| {
        labgate::db::audit::list(&mut pool.get().unwrap(), None, None, 100).unwrap()
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        stored(&pool).is_empty(),
        "rows are stored before the stream ends"
    );
    drop(chunks);
    assert_eq!(copying.join().unwrap().unwrap(), 3);

    let rows = stored(&pool);
    let read = |row: &AuditRow| {
        (
            row.at,
            row.kind.clone(),
            row.actor.clone(),
            row.instance.clone(),
            row.subject.clone(),
            row.connection_id.clone(),
            row.scopes.clone(),
            row.detail.clone(),
        )
    };
    let recorded = |event: &NewAuditEvent| {
        let text = |text: &Option<AuditText>| text.as_deref().map(str::to_owned);
        (
            event.at.0,
            event.kind.to_string(),
            event.actor.to_string(),
            text(&event.instance),
            text(&event.subject),
            text(&event.connection_id),
            text(&event.scopes),
            text(&event.detail),
        )
    };
    let rows: Vec<_> = rows.iter().map(read).collect();
    assert_eq!(rows, [recorded(&bare), recorded(&bare), recorded(&full)]);
}

/// A long stream goes to PostgreSQL in short `COPY` statements, which the server inserts as
/// each ends rather than a thousand rows at a time, all in one transaction: none of its rows
/// is stored before the stream ends, and then all are, in order.
#[actix_web::test]
async fn a_long_stream_is_copied_in_short_statements_committed_together() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let url = app.settings.database.url.clone();
    let DatabaseUrl::Postgres(postgres) = url.clone() else {
        panic!("a PostgreSQL backend has a PostgreSQL URL")
    };
    const CHUNK: usize = 64;
    // Two whole statements, and half of a third left open.
    let total = 2 * ROWS_PER_COPY + ROWS_PER_COPY / 2;
    let event = |n: usize| NewAuditEvent {
        at: EventTime(Utc::now().naive_utc()),
        kind: AuditText::Word("handout"),
        actor: "service:ci-bot".into(),
        instance: None,
        subject: Some(format!("user-{n:04}").into()),
        connection_id: None,
        scopes: None,
        detail: None,
    };
    let (chunks, copying) = start_copy(url);
    for first in (0..total).step_by(CHUNK) {
        chunks
            .send(Arc::new((first..first + CHUNK).map(event).collect()))
            .unwrap();
    }

    // What the open statement holds, as PostgreSQL reports its progress.
    let mut watcher = PgConnection::establish(postgres.expose_secret()).unwrap();
    let mut open_statement_rows = None;
    for _ in 0..100 {
        open_statement_rows = diesel::sql_query(
            "SELECT p.tuples_processed AS rows FROM pg_stat_progress_copy p \
             JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'labgate audit writer'",
        )
        .get_result::<CopyProgress>(&mut watcher)
        .ok()
        .map(|progress| progress.rows);
        if open_statement_rows == Some((ROWS_PER_COPY / 2) as i64) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        open_statement_rows,
        Some((ROWS_PER_COPY / 2) as i64),
        "the open statement holds only the rows sent since the last one ended"
    );
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    let stored = || labgate::db::audit::list(&mut pool.get().unwrap(), None, None, 10_000).unwrap();
    assert!(
        stored().is_empty(),
        "rows are stored before the stream ends"
    );

    drop(chunks);
    assert_eq!(copying.join().unwrap().unwrap(), total);
    let subjects: Vec<String> = stored()
        .into_iter()
        .rev()
        .filter_map(|row| row.subject)
        .collect();
    let recorded: Vec<String> = (0..total).map(|n| format!("user-{n:04}")).collect();
    assert_eq!(subjects, recorded, "every row once, in the order sent");
}

/// Starts the audit writer's copy on a connection of its own, as the writer does: the chunks'
/// sender, and the thread that returns the rows written once the sender is dropped.
fn start_copy(url: DatabaseUrl) -> (mpsc::Sender<Chunk>, JoinHandle<QueryResult<usize>>) {
    let (chunks, received) = mpsc::channel::<Chunk>();
    let copying = std::thread::spawn(move || {
        let mut conn = open_writer(&url).unwrap();
        let DbConnection::Postgres(pg) = &mut conn else {
            panic!("a PostgreSQL URL opens a PostgreSQL connection")
        };
        labgate::db::audit_stream::copy(pg, &received)
    });
    (chunks, copying)
}

#[derive(diesel::QueryableByName)]
struct CopyProgress {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
}

/// When the database ends the writer's connection while it streams, the stream commits
/// nothing and its events are written again: each event is stored once.
#[actix_web::test]
async fn events_of_a_stream_cut_short_are_stored_once() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    let audit = &app.context.audit;
    let mut recorded = 0;
    let mut cut = 0;
    // Full batches, recorded faster than a window: the writer streams them.
    for _round in 0..20 {
        for _ in 0..600 {
            audit
                .record(
                    AuditEvent::new("handout", "service:ci-bot")
                        .subject(format!("user-{recorded}")),
                )
                .await;
            recorded += 1;
        }
        // The writer runs on this test's thread: it streams while the test waits.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            cut = diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() \
                 AND application_name = 'labgate audit writer' \
                 AND state = 'active' AND query LIKE 'COPY%'",
            )
            .execute(&mut pool.get().unwrap())
            .unwrap();
            if cut == 1 {
                break;
            }
        }
        if cut == 1 {
            break;
        }
    }
    assert_eq!(cut, 1, "the writer was never seen streaming");
    audit.flush().await;

    let rows = labgate::db::audit::list(&mut pool.get().unwrap(), None, None, 100_000).unwrap();
    let mut subjects: Vec<String> = rows.into_iter().filter_map(|row| row.subject).collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..recorded).map(|i| format!("user-{i}")).collect();
    expected.sort();
    assert_eq!(subjects.len(), recorded, "every event stored once");
    assert_eq!(subjects, expected);
}
