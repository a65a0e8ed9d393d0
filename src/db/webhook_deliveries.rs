//! `webhook_deliveries`: the outbox. One row per (event, webhook URL), written with the change
//! that caused the event; a process delivers a row only while it holds the row's lease. A
//! deleted service's pending rows outlive it: they keep their webhook's secret and lose only
//! their `service_id`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::webhook_deliveries as deliveries;
use crate::domain::DeliveryStatus;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `None` once the service is deleted.
    pub service_id: Option<String>,
    pub url: String,
    /// The exact bytes sent, and signed.
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// The webhook's secret, kept when the service was deleted, sealed as
    /// `SealedColumn::DeliverySecret` of this row; `None` while the service lists the webhook.
    pub secret_sealed: Option<Vec<u8>>,
}

/// What one attempt changed.
pub struct AttemptRecord<'a> {
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_error: Option<&'a str>,
    pub next_attempt_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

pub fn insert_all(conn: &mut DbConnection, rows: &[DeliveryRow]) -> QueryResult<()> {
    // One statement per row: batch inserts do not go through a connection for both backends.
    for row in rows {
        diesel::insert_into(deliveries::table)
            .values(row.clone())
            .execute(conn)?;
    }
    Ok(())
}

/// Pending deliveries due by `now` whose lease is free, oldest first.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        .filter(deliveries::next_attempt_at.le(now))
        .filter(
            deliveries::lease_until
                .is_null()
                .or(deliveries::lease_until.lt(now)),
        )
        .order((deliveries::next_attempt_at, deliveries::id))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

/// Takes the lease of a pending delivery if nobody holds it (or theirs ran out): one
/// conditional update, so of several processes exactly one gets it.
pub fn take_lease(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(deliveries::next_attempt_at.le(now))
            .filter(
                deliveries::lease_until
                    .is_null()
                    .or(deliveries::lease_until.lt(now)),
            ),
    )
    .set((
        deliveries::lease_owner.eq(owner),
        deliveries::lease_until.eq(until),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records an attempt and gives the lease back, if `owner` still holds it.
pub fn record_attempt(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    record: &AttemptRecord<'_>,
) -> QueryResult<bool> {
    diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::lease_owner.eq(owner)),
    )
    .set((
        deliveries::status.eq(record.status.as_str()),
        deliveries::attempts.eq(record.attempts),
        deliveries::last_error.eq(record.last_error),
        deliveries::next_attempt_at.eq(record.next_attempt_at),
        deliveries::delivered_at.eq(record.delivered_at),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// A service's deliveries, newest first, after `(created_at, id)` when given.
pub fn list_page(
    conn: &mut DbConnection,
    service_id: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut query = deliveries::table
        .filter(deliveries::service_id.eq(service_id))
        .order((deliveries::created_at.desc(), deliveries::id.desc()))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            deliveries::created_at
                .lt(created_at)
                .or(deliveries::created_at
                    .eq(created_at)
                    .and(deliveries::id.lt(id))),
        );
    }
    query.load(conn)
}

/// How many deliveries wait to be delivered.
pub fn count_pending(conn: &mut DbConnection) -> QueryResult<i64> {
    deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        .count()
        .get_result(conn)
}

/// The secret a deleted service's delivery kept, if any.
pub fn kept_secret(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Vec<u8>>> {
    deliveries::table
        .find(id)
        .select(deliveries::secret_sealed)
        .first(conn)
        .optional()
        .map(Option::flatten)
}

/// A service's pending deliveries: (id, URL).
pub fn pending_of_service(
    conn: &mut DbConnection,
    service_id: &str,
) -> QueryResult<Vec<(String, String)>> {
    deliveries::table
        .filter(deliveries::service_id.eq(service_id))
        .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        .select((deliveries::id, deliveries::url))
        .load(conn)
}

/// Keeps a pending delivery's secret in its row, for when its service is gone.
pub fn keep_secret(conn: &mut DbConnection, id: &str, sealed: &[u8]) -> QueryResult<()> {
    diesel::update(deliveries::table.find(id))
        .set(deliveries::secret_sealed.eq(sealed))
        .execute(conn)
        .map(|_| ())
}

/// Removes a service's deliveries that are over (delivered, or failed for good).
pub fn delete_finished_of_service(conn: &mut DbConnection, service_id: &str) -> QueryResult<usize> {
    diesel::delete(
        deliveries::table
            .filter(deliveries::service_id.eq(service_id))
            .filter(deliveries::status.ne(DeliveryStatus::Pending.as_str())),
    )
    .execute(conn)
}

/// Removes the delivery if it is over and its service is gone: nobody can list it any more.
pub fn delete_if_finished_orphan(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(
        deliveries::table
            .find(id)
            .filter(deliveries::service_id.is_null())
            .filter(deliveries::status.ne(DeliveryStatus::Pending.as_str())),
    )
    .execute(conn)
    .map(|n| n == 1)
}
