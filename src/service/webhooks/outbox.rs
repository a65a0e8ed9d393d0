//! Writing events to the outbox, inside the transaction of the change that causes them: the
//! event exists exactly when the change does. One row per webhook of the connection's service.

use chrono::{NaiveDateTime, Utc};
use diesel::QueryResult;

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
            service_id: change.service_id.to_owned(),
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
        })
        .collect();
    db::webhook_deliveries::insert_all(conn, &rows)?;
    Ok(rows.len())
}
