//! `limit` and `cursor` on every list: walking the pages yields every item once, in the
//! list's order, and a cursor or limit labgate did not hand out is refused naming it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, TestApp, expect_problem};
use crate::support::database::Backend;

on_both_backends!(
    services_and_audit_events_page_through_in_order,
    audit_since_leaves_out_older_events,
    connections_page_newest_first,
    access_grants_page_newest_first,
);

/// Follows `next_cursor` from the first page of `path` (which may hold a query already),
/// `limit` at a time; returns the items under `key`, and how many pages there were.
async fn walk(app: &TestApp, path: &str, key: &str, limit: usize) -> (Vec<Value>, usize) {
    let joiner = if path.contains('?') { '&' } else { '?' };
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut url = format!("{path}{joiner}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get_json(&url).await;
        let got = page[key].as_array().unwrap();
        assert!(got.len() <= limit, "{url}: {page}");
        items.extend(got.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 100, "the pages never end");
    }
}

fn field(items: &[Value], name: &str) -> Vec<String> {
    items.iter().map(|i| i[name].to_string()).collect()
}

/// `since` keeps the events at or after a time and only those, across pages (PostgreSQL finds
/// them through a BRIN index on the time).
async fn audit_since_leaves_out_older_events(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let service = |name: &str| json!({"name": name, "instances": ["corp"], "scopes": ["read_api"]});
    cw.app.create_service(&service("bot-old")).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for name in ["bot-new-a", "bot-new-b", "bot-new-c"] {
        cw.app.create_service(&service(name)).await;
    }
    let (since, pages) = walk(&cw.app, &format!("/api/v1/audit?since={cut}"), "events", 2).await;
    assert_eq!(pages, 2);
    assert_eq!(
        field(&since, "detail"),
        ["\"bot-new-c\"", "\"bot-new-b\"", "\"bot-new-a\""],
        "the events since {cut}, newest first: {since:?}"
    );
}

async fn services_and_audit_events_page_through_in_order(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    for name in ["bot-e", "bot-a", "bot-d", "bot-b", "bot-c"] {
        cw.app
            .create_service(&json!({"name": name, "instances": ["corp"], "scopes": ["read_api"]}))
            .await;
    }
    let all = cw.app.get_json("/api/v1/services").await;
    assert_eq!(all["next_cursor"], Value::Null, "one page holds them all");
    let (paged, pages) = walk(&cw.app, "/api/v1/services", "services", 2).await;
    assert_eq!(pages, 3);
    assert_eq!(
        field(&paged, "name"),
        [
            "\"bot-a\"",
            "\"bot-b\"",
            "\"bot-c\"",
            "\"bot-d\"",
            "\"bot-e\"",
            "\"ci-bot\""
        ]
    );

    let everything = cw.app.get_json("/api/v1/audit?limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    assert!(everything.len() >= 7, "{everything:?}");
    let (paged, _) = walk(&cw.app, "/api/v1/audit", "events", 3).await;
    assert_eq!(
        field(&paged, "id"),
        field(&everything, "id"),
        "newest first, each once"
    );
    let (kinds, _) = walk(
        &cw.app,
        "/api/v1/audit?since=2000-01-01T00:00:00Z",
        "events",
        4,
    )
    .await;
    assert_eq!(
        kinds.len(),
        everything.len(),
        "paging keeps the other filters"
    );

    for (path, field) in [
        ("/api/v1/services?limit=0", "limit"),
        ("/api/v1/audit?limit=1001", "limit"),
        ("/api/v1/services?cursor=%21%21", "cursor"),
        ("/api/v1/connections?cursor=Ym90LWE", "cursor"),
        ("/api/v1/audit?cursor=Ym90LWE", "cursor"),
        ("/api/v1/access-grants?cursor=Ym90LWE", "cursor"),
    ] {
        let problem = expect_problem(
            cw.app.call(Method::GET, path).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
}

async fn connections_page_newest_first(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    for subject in ["user-1", "user-2", "user-3", "user-4", "user-5"] {
        cw.connect(subject, json!({})).await;
    }
    let everything = cw.app.connections().await;
    assert_eq!(everything.len(), 5);
    let (paged, pages) = walk(&cw.app, "/api/v1/connections", "connections", 2).await;
    assert_eq!(pages, 3);
    assert_eq!(field(&paged, "id"), field(&everything, "id"));
    assert_eq!(
        field(&paged, "subject"),
        [
            "\"user-5\"",
            "\"user-4\"",
            "\"user-3\"",
            "\"user-2\"",
            "\"user-1\""
        ],
        "newest first"
    );
    let (filtered, _) = walk(
        &cw.app,
        "/api/v1/connections?subject=user-3",
        "connections",
        1,
    )
    .await;
    assert_eq!(field(&filtered, "subject"), ["\"user-3\""]);
}

async fn access_grants_page_newest_first(backend: Backend) {
    let pw = crate::proxy::ProxyWorld::start(backend).await;
    let mut made = Vec::new();
    for project in ["group/a", "group/b", "group/c"] {
        made.push(pw.grant(&[project], "read").await.id);
    }
    made.reverse();
    let (paged, pages) = walk(&pw.app, "/api/v1/access-grants", "access_grants", 2).await;
    assert_eq!(pages, 2);
    let ids: Vec<&str> = paged.iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(ids, made, "newest first, each once");
}
