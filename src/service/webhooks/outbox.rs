//! Writing events to the outbox, inside the transaction of the change that causes them: the
//! event exists exactly when the change does. One row per webhook of the connection's service.
//! A service deleted leaves its pending rows behind, each with its webhook's secret.

use chrono::{NaiveDateTime, Utc};
use diesel::QueryResult;
use secrecy::ExposeSecret;

use crate::crypto::{SealedColumn, Sealer};
use crate::db::{self, DbConnection, webhook_deliveries::DeliveryRow};
use crate::domain::{ConnectionEvent, ConnectionStatus, DeliveryStatus, EventType};

/// What happened to which connection.
pub(crate) struct Change<'a> {
    pub kind: EventType,
    pub service_id: &'a str,
    pub connection_id: &'a str,
    pub instance: &'a str,
    pub subject: &'a str,
    pub status: ConnectionStatus,
    pub reason: Option<&'a str>,
    /// When the token expires, for `connection.expiring`.
    pub expires_at: Option<NaiveDateTime>,
}

/// Queues the event for every webhook of the service; call it on the connection that makes
/// the change, inside its transaction. Returns how many deliveries were queued.
pub(crate) fn record(conn: &mut DbConnection, change: &Change<'_>) -> QueryResult<usize> {
    let hooks = db::webhooks::for_service(conn, change.service_id)?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let now = Utc::now().naive_utc();
    let event = ConnectionEvent {
        id: uuid::Uuid::new_v4().to_string(),
        kind: change.kind,
        created_at: now,
        connection_id: change.connection_id.to_owned(),
        instance: change.instance.to_owned(),
        subject: change.subject.to_owned(),
        status: change.status.as_str().to_owned(),
        reason: change.reason.map(str::to_owned),
        expires_at: change.expires_at,
    };
    let body = event.body();
    let rows: Vec<DeliveryRow> = hooks
        .into_iter()
        .map(|hook| DeliveryRow {
            id: uuid::Uuid::new_v4().to_string(),
            event_id: event.id.clone(),
            event_type: change.kind.as_str().to_owned(),
            service_id: Some(change.service_id.to_owned()),
            url: hook.url,
            body: body.clone(),
            status: DeliveryStatus::Pending.as_str().to_owned(),
            attempts: 0,
            last_error: None,
            next_attempt_at: now,
            lease_owner: None,
            lease_until: None,
            delivered_at: None,
            created_at: now,
            secret_sealed: None,
        })
        .collect();
    db::webhook_deliveries::insert_all(conn, &rows)?;
    Ok(rows.len())
}

/// Readies a service's deliveries for its deletion, inside the deleting transaction: each pending
/// one keeps its webhook's secret, sealed for its own row (deleting the service then unlinks it,
/// and it is delivered as before); those already over are removed, as nobody can list them any
/// more. Returns how many pending deliveries kept their secret.
pub(crate) fn keep_for_deleted_service(
    conn: &mut DbConnection,
    sealer: &Sealer,
    service_id: &str,
) -> QueryResult<usize> {
    let hooks = db::webhooks::for_service(conn, service_id)?;
    let mut kept = 0;
    for (id, url) in db::webhook_deliveries::pending_of_service(conn, service_id)? {
        // Without its webhook (no longer listed) it fails as it would have.
        let Some(hook) = hooks.iter().find(|hook| hook.url == url) else {
            continue;
        };
        let secret = match sealer.open(
            SealedColumn::WebhookSecret.of(&hook.id),
            &hook.secret_sealed,
        ) {
            Ok(secret) => secret,
            Err(e) => {
                // It would not open for the delivery either: without it, the delivery fails.
                tracing::warn!(delivery.id = %id, error.cause = %e, "a webhook's secret does not open");
                continue;
            }
        };
        let sealed = sealer.seal(SealedColumn::DeliverySecret.of(&id), secret.expose_secret());
        db::webhook_deliveries::keep_secret(conn, &id, &sealed)?;
        kept += 1;
    }
    db::webhook_deliveries::delete_finished_of_service(conn, service_id)?;
    Ok(kept)
}
