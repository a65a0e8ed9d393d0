//! Webhooks: events written with each connection change, delivered signed, retried after a
//! failure without loss or duplicates, by one process at a time; the fields checked, the
//! secret never shown.

mod admin_form;
pub(crate) mod receiver;
mod service_deletion;
mod validation;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_pages::Pages;
use crate::helpers::{ConnectWorld, StopOnDrop};
use crate::support::database::Backend;
use receiver::{Received, Receiver};

on_both_backends!(
    each_change_sends_its_signed_event,
    a_failing_receiver_gets_every_event_once_it_recovers,
    of_two_processes_one_delivers_each_event,
);

const SECRET: &str = "whsec-0123456789abcdef";

/// A world with short GitLab timeouts, and a receiver listed as `ci-bot`'s webhook.
async fn world(backend: Backend) -> (ConnectWorld, Receiver) {
    let cw = ConnectWorld::start_with(backend, |settings| {
        settings.outbound.request_timeout = Duration::from_secs(2);
    })
    .await;
    let receiver = Receiver::start().await;
    let response = cw
        .app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"webhooks": [{"url": receiver.url, "secret": SECRET}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(SECRET), "{text}");
    let changed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(changed["webhooks"], json!([{"url": receiver.url}]));
    (cw, receiver)
}

/// Connects `subject` with GitLab issuing tokens that last `seconds`.
async fn connect_expiring_in(cw: &ConnectWorld, subject: &str, seconds: u64) -> String {
    cw.world
        .gitlab
        .behave(|b| b.token_lifetime = Duration::from_secs(seconds));
    let id = cw.connect(subject, json!({})).await;
    cw.world
        .gitlab
        .behave(|b| b.token_lifetime = Duration::from_secs(7200));
    id
}

fn assert_event(received: &Received, kind: &str, connection_id: &str, subject: &str) -> Value {
    assert!(received.signed_with(SECRET), "signature: {received:?}");
    assert!(!received.signed_with("another-secret-0123456789"));
    assert_eq!(received.content_type, "application/json");
    let body = received.json();
    assert_eq!(body["type"], kind, "{body}");
    assert_eq!(body["data"]["connection_id"], connection_id);
    assert_eq!(body["data"]["instance"], "corp");
    assert_eq!(body["data"]["subject"], subject);
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    body
}

async fn deliveries(cw: &ConnectWorld) -> Vec<Value> {
    cw.app.get_json("/api/v1/services/ci-bot/deliveries").await["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The deliveries once `done` holds for them: the receiver sees an attempt a moment before
/// the delivering task stores its outcome.
async fn deliveries_when(
    cw: &ConnectWorld,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let listed = deliveries(cw).await;
        if done(&listed) {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn each_change_sends_its_signed_event(backend: Backend) {
    let (cw, receiver) = world(backend).await;

    let first = connect_expiring_in(&cw, "user-1", 30).await;
    let created = receiver.event("connection.created", &first).await;
    let body = assert_event(&created, "connection.created", &first, "user-1");
    assert_eq!(body["data"]["status"], "active");

    // GitLab refuses the refresh: the grant is dead.
    let refresh_token = cw.world.gitlab.issued_tokens()[1].clone();
    cw.world.gitlab.revoke_token(&refresh_token);
    let fetched = cw
        .fetch(json!({"instance": "corp", "subject": "user-1"}))
        .await;
    assert_eq!(fetched.status(), 409);
    let reauthorize = receiver
        .event("connection.reauthorization_required", &first)
        .await;
    let body = assert_event(
        &reauthorize,
        "connection.reauthorization_required",
        &first,
        "user-1",
    );
    assert_eq!(body["data"]["status"], "reauthorization_required");
    assert_eq!(body["data"]["reason"], "invalid_grant");

    let second = cw.connect("user-2", json!({})).await;
    receiver.event("connection.created", &second).await;
    let revoked = cw
        .app
        .call(Method::DELETE, &format!("/api/v1/connections/{second}"))
        .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let body = assert_event(
        &receiver.event("connection.revoked", &second).await,
        "connection.revoked",
        &second,
        "user-2",
    );
    assert_eq!(body["data"]["status"], "revoked");
    // Revoking again tells nobody again.
    cw.app
        .call(Method::DELETE, &format!("/api/v1/connections/{second}"))
        .await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "connection.created",
            "connection.reauthorization_required",
            "connection.created",
            "connection.revoked"
        ]
    );
    let listed = deliveries(&cw).await;
    assert_eq!(listed.len(), 4, "{listed:#?}");
    for delivery in &listed {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["url"], receiver.url.as_str());
        assert!(delivery["delivered_at"].is_string());
        assert!(delivery["next_attempt_at"].is_null());
    }
    assert_eq!(listed[0]["type"], "connection.revoked", "newest first");
    let metrics = cw.app.metrics().await;
    assert!(
        metrics.contains(
            r#"labgate_webhook_deliveries_total{service="ci-bot",outcome="delivered"} 4"#
        ),
        "{metrics}"
    );
}

async fn a_failing_receiver_gets_every_event_once_it_recovers(backend: Backend) {
    let (cw, receiver) = world(backend).await;
    receiver.fail(true);
    let first = cw.connect("user-1", json!({})).await;
    let second = cw.connect("user-2", json!({})).await;

    // Both tried, and refused.
    receiver
        .wait_for(Duration::from_secs(5), "two refused attempts", |all| {
            all.iter().filter(|r| !r.accepted).count() >= 2
        })
        .await;
    let pending = deliveries_when(&cw, "both failures stored", |listed| {
        listed.len() == 2 && listed.iter().all(|d| d["last_error"].is_string())
    })
    .await;
    for delivery in &pending {
        assert_eq!(delivery["status"], "pending", "{delivery}");
        assert!(delivery["attempts"].as_i64().unwrap() >= 1);
        assert!(
            delivery["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("500")),
            "{delivery}"
        );
        assert!(delivery["next_attempt_at"].is_string());
        assert!(!delivery.to_string().contains(SECRET));
    }
    // The admin sees the failures on the service's Deliveries page, linked from the list.
    let pages = Pages::signed_in(&cw.app).await;
    assert!(
        pages
            .html("/admin/services")
            .await
            .contains("/admin/services/ci-bot/deliveries")
    );
    let page = pages.html("/admin/services/ci-bot/deliveries").await;
    for shown in [
        receiver.url.as_str(),
        "pending",
        "answered 500",
        "connection.created",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    assert!(!page.contains(SECRET));

    receiver.fail(false);
    // The first retry comes within 10 s.
    receiver
        .wait_for(
            Duration::from_secs(10),
            "both delivered after recovery",
            |all| all.iter().filter(|r| r.accepted).count() >= 2,
        )
        .await;
    // Nothing more arrives: each event was delivered once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 2, "{accepted:#?}");
    for id in [&first, &second] {
        let event = accepted
            .iter()
            .find(|r| r.json()["data"]["connection_id"] == id.as_str())
            .unwrap();
        assert_event(
            event,
            "connection.created",
            id,
            event.json()["data"]["subject"].as_str().unwrap(),
        );
    }
    let refused_ids: Vec<Value> = receiver
        .received()
        .iter()
        .filter(|r| !r.accepted)
        .map(|r| r.json()["id"].clone())
        .collect();
    for delivery in deliveries(&cw).await {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        let tries = receiver
            .received()
            .iter()
            .filter(|r| r.json()["id"] == delivery["event_id"])
            .count();
        assert!(tries >= 2);
        assert_eq!(delivery["attempts"], tries, "{delivery}");
        assert!(refused_ids.contains(&delivery["event_id"]));
        assert!(delivery["last_error"].as_str().unwrap().contains("500"));
    }
}

/// Two labgate processes on one database: every event is delivered, by exactly one of them.
async fn of_two_processes_one_delivers_each_event(backend: Backend) {
    let (cw, receiver) = world(backend).await;
    let second = labgate::startup::Application::build(cw.app.settings.clone())
        .await
        .unwrap();
    let _stop_second = StopOnDrop(second.handle());
    actix_web::rt::spawn(second.run());

    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(cw.connect(&format!("user-{n}"), json!({})).await);
    }
    receiver
        .wait_for(Duration::from_secs(8), "four events", |all| all.len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 4, "no duplicates: {received:#?}");
    for id in &ids {
        assert!(
            received
                .iter()
                .any(|r| r.json()["data"]["connection_id"] == id.as_str())
        );
    }
    assert!(deliveries(&cw).await.iter().all(|d| d["attempts"] == 1));
}
