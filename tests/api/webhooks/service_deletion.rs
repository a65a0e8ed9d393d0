//! A deleted service's events still reach its webhooks: deleting it revokes its connections,
//! and each `connection.revoked` is delivered signed, at least once, even when the receiver is
//! down at deletion time. The deliveries keep the secret sealed in their own rows (re-sealed by
//! a master-key rotation) and go once delivered.

use std::time::Duration;

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use labgate::crypto::SealedColumn;
use labgate::db::resealing;
use labgate::db::schema::webhook_deliveries as d;
use reqwest::Method;
use serde_json::json;

use super::receiver::Receiver;
use super::{SECRET, assert_event, world};
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;

on_both_backends!(
    a_deleted_services_revocations_are_delivered,
    a_deleted_services_revocations_wait_for_a_failing_receiver,
);

/// `user-1` and `user-2` connected, both `connection.created` events delivered.
async fn two_connected(cw: &ConnectWorld, receiver: &Receiver) -> [(String, &'static str); 2] {
    let mut connected = Vec::new();
    for subject in ["user-1", "user-2"] {
        let id = cw.connect(subject, json!({})).await;
        receiver.event("connection.created", &id).await;
        connected.push((id, subject));
    }
    connected.try_into().unwrap()
}

async fn delete_service(cw: &ConnectWorld) {
    let deleted = cw.app.call(Method::DELETE, "/api/v1/services/ci-bot").await;
    assert_eq!(deleted.status(), 204);
    let deliveries = cw
        .app
        .call(Method::GET, "/api/v1/services/ci-bot/deliveries")
        .await;
    assert_eq!(deliveries.status(), 404, "the service is gone");
}

/// Every stored delivery: (service id, status, whether it keeps a secret).
fn stored(cw: &ConnectWorld) -> Vec<(Option<String>, String, bool)> {
    d::table
        .select((d::service_id, d::status, d::secret_sealed.is_not_null()))
        .load(&mut cw.app.context.pool.get().unwrap())
        .unwrap()
}

/// Waits until the deliveries are gone from the database: once delivered, nobody can list them.
async fn expect_outbox_emptied(cw: &ConnectWorld) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !stored(cw).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {:?}",
            stored(cw)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_deleted_services_revocations_are_delivered(backend: Backend) {
    let (cw, receiver) = world(backend).await;
    let connected = two_connected(&cw, &receiver).await;

    delete_service(&cw).await;
    for (id, subject) in &connected {
        let revoked = receiver.event("connection.revoked", id).await;
        let body = assert_event(&revoked, "connection.revoked", id, subject);
        assert_eq!(body["data"]["status"], "revoked");
    }
    expect_outbox_emptied(&cw).await;
    // Each once: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let revocations = receiver
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "connection.revoked")
        .count();
    assert_eq!(revocations, 2, "{:#?}", receiver.received());
}

async fn a_deleted_services_revocations_wait_for_a_failing_receiver(backend: Backend) {
    let (cw, receiver) = world(backend).await;
    let connected = two_connected(&cw, &receiver).await;

    receiver.fail(true);
    delete_service(&cw).await;
    receiver
        .wait_for(Duration::from_secs(5), "both revocations refused", |all| {
            all.iter()
                .filter(|r| !r.accepted && r.json()["type"] == "connection.revoked")
                .count()
                >= 2
        })
        .await;
    // Still waiting, without their service, each with the secret sealed in its own row, where
    // a master-key rotation finds it.
    let waiting = stored(&cw);
    assert_eq!(waiting.len(), 2, "the delivered events went: {waiting:?}");
    for (service, status, keeps_secret) in &waiting {
        assert_eq!((service.as_deref(), status.as_str()), (None, "pending"));
        assert!(keeps_secret);
    }
    let mut conn = cw.app.context.pool.get().unwrap();
    let sealed = resealing::page(&mut conn, SealedColumn::DeliverySecret, "", 100).unwrap();
    assert_eq!(sealed.len(), 2);
    for (id, value) in &sealed {
        let opened = cw
            .app
            .context
            .sealer
            .open(SealedColumn::DeliverySecret.of(id), value)
            .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&opened),
            SECRET.as_bytes()
        );
        assert!(!String::from_utf8_lossy(value).contains(SECRET));
    }
    drop(conn);

    receiver.fail(false);
    for (id, subject) in &connected {
        let revoked = receiver
            .event_within(Duration::from_secs(10), "connection.revoked", id)
            .await;
        assert_event(&revoked, "connection.revoked", id, subject);
    }
    expect_outbox_emptied(&cw).await;
}
