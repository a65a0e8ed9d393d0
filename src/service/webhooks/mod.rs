//! Webhooks: a service's list (secrets sealed, bound to their rows), the outbox written with
//! each connection change, the background delivery, and the deliveries administrators read.

pub mod deliveries;
pub mod delivery;
pub(crate) mod outbox;

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::{Context, ServiceError};
use crate::crypto::{SealedColumn, Sealer};
use crate::db::{self, webhooks::WebhookRow};
use crate::domain::Webhook;

/// Rows for a service's new list, each secret sealed for its own row.
pub(crate) fn sealed_rows(
    sealer: &Sealer,
    service_id: &str,
    hooks: &[Webhook],
    now: NaiveDateTime,
) -> Vec<WebhookRow> {
    hooks
        .iter()
        .zip(0_i64..)
        .map(|(hook, position)| {
            let id = uuid::Uuid::new_v4().to_string();
            WebhookRow {
                secret_sealed: sealer.seal(
                    SealedColumn::WebhookSecret.of(&id),
                    hook.secret.expose().as_bytes(),
                ),
                id,
                service_id: service_id.to_owned(),
                position,
                url: hook.url.as_str().to_owned(),
                created_at: now,
            }
        })
        .collect()
}

/// The webhook URLs of each of these services (by service id), in their order; never a secret.
pub async fn urls_of(
    ctx: &Context,
    service_ids: Vec<String>,
) -> Result<HashMap<String, Vec<String>>, ServiceError> {
    let rows = ctx
        .db_read(move |conn| db::webhooks::for_services(conn, &service_ids))
        .await?;
    let mut urls: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        urls.entry(row.service_id).or_default().push(row.url);
    }
    Ok(urls)
}
