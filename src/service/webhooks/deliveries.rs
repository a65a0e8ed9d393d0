//! What administrators see of a service's deliveries: newest first, a page at a time.

use chrono::NaiveDateTime;

use super::super::{Context, FieldError, ServiceError};
use crate::db;
use crate::domain::{Page, Paged, created_key, parse_created_key};

/// One delivery of one event to one URL; never the secret, nor the body.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When a pending delivery is tried next; `None` once it is delivered or failed.
    pub next_attempt_at: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// One page of the named service's deliveries, newest first.
pub async fn list_page(
    ctx: &Context,
    service: &str,
    page: Page,
) -> Result<Paged<DeliveryView>, ServiceError> {
    let after = page
        .after
        .as_deref()
        .map(parse_created_key)
        .transpose()
        .map_err(|e| ServiceError::Invalid(vec![FieldError::new("cursor", e.0)]))?;
    let (name, limit) = (service.to_owned(), page.limit);
    let rows = ctx
        .db_read(move |conn| {
            let Some(service) = db::services::find_by_name(conn, &name)? else {
                return Ok(None);
            };
            // One more than the page: it only says whether another page follows.
            db::webhook_deliveries::list_page(conn, &service.id, after, limit + 1).map(Some)
        })
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no service is named {service:?}")))?;
    let views = rows
        .into_iter()
        .map(|row| {
            let pending = row.status == "pending";
            DeliveryView {
                id: row.id,
                event_id: row.event_id,
                event_type: row.event_type,
                url: row.url,
                status: row.status,
                attempts: row.attempts,
                last_error: row.last_error,
                next_attempt_at: pending.then_some(row.next_attempt_at),
                delivered_at: row.delivered_at,
                created_at: row.created_at,
            }
        })
        .collect();
    Ok(Paged::of(views, limit, |view: &DeliveryView| {
        created_key(view.created_at, &view.id)
    }))
}
