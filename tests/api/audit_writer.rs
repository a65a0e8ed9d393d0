//! The audit writer's own database connection.

use diesel::RunQueryDsl;
use serde_json::json;

use crate::helpers::ConnectWorld;
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
