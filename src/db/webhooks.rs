//! `service_webhooks`: where a service's events go, each secret sealed and bound to its row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::service_webhooks;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_webhooks)]
pub struct WebhookRow {
    pub id: String,
    pub service_id: String,
    /// Its place in the service's list.
    pub position: i64,
    pub url: String,
    /// Sealed as `SealedColumn::WebhookSecret` of this row.
    pub secret_sealed: Vec<u8>,
    pub created_at: NaiveDateTime,
}

/// A service's webhooks, in the order it lists them.
pub fn for_service(conn: &mut DbConnection, service_id: &str) -> QueryResult<Vec<WebhookRow>> {
    service_webhooks::table
        .filter(service_webhooks::service_id.eq(service_id))
        .order(service_webhooks::position)
        .select(WebhookRow::as_select())
        .load(conn)
}

/// The webhooks of several services, each service's in its order.
pub fn for_services(
    conn: &mut DbConnection,
    service_ids: &[String],
) -> QueryResult<Vec<WebhookRow>> {
    service_webhooks::table
        .filter(service_webhooks::service_id.eq_any(service_ids))
        .order((service_webhooks::service_id, service_webhooks::position))
        .select(WebhookRow::as_select())
        .load(conn)
}

/// The webhook a delivery goes to, if the service still lists its URL.
pub fn find(
    conn: &mut DbConnection,
    service_id: &str,
    url: &str,
) -> QueryResult<Option<WebhookRow>> {
    service_webhooks::table
        .filter(service_webhooks::service_id.eq(service_id))
        .filter(service_webhooks::url.eq(url))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Replaces a service's list with `rows`.
pub fn replace_for_service(
    conn: &mut DbConnection,
    service_id: &str,
    rows: &[WebhookRow],
) -> QueryResult<()> {
    diesel::delete(service_webhooks::table.filter(service_webhooks::service_id.eq(service_id)))
        .execute(conn)?;
    // One statement per row: batch inserts do not go through a connection for both backends.
    for row in rows {
        diesel::insert_into(service_webhooks::table)
            .values(row.clone())
            .execute(conn)?;
    }
    Ok(())
}
