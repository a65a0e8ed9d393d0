//! Webhooks: a service's list (secrets sealed, bound to their rows), the outbox written with
//! each connection change, the background delivery, and the deliveries administrators read.

pub mod deliveries;
pub mod delivery;
pub(crate) mod outbox;

use std::collections::HashMap;

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretSlice};

use super::{Context, FieldError, ServiceError};
use crate::crypto::{SealedColumn, Sealer};
use crate::db::{self, webhooks::WebhookRow};
use crate::domain::{Webhook, WebhookUrl};

/// Rows for a service's new list, each secret sealed for its own row. A webhook listed without
/// a secret keeps the one `stored` (the service's current rows) for its URL; a URL not stored
/// needs its secret. Refusals go to `errors`, named as the API names them.
pub(crate) fn sealed_rows(
    sealer: &Sealer,
    service_id: &str,
    hooks: &[Webhook],
    stored: &[WebhookRow],
    now: NaiveDateTime,
    errors: &mut Vec<FieldError>,
) -> Vec<WebhookRow> {
    let mut rows = Vec::new();
    for (hook, position) in hooks.iter().zip(0_i64..) {
        let id = uuid::Uuid::new_v4().to_string();
        let field = SealedColumn::WebhookSecret.of(&id);
        let sealed = match &hook.secret {
            Some(secret) => Some(sealer.seal(field, secret.expose().as_bytes())),
            None => stored_secret(sealer, stored, &hook.url, position, errors)
                .map(|secret| sealer.seal(field, secret.expose_secret())),
        };
        let Some(secret_sealed) = sealed else {
            continue;
        };
        rows.push(WebhookRow {
            secret_sealed,
            id,
            service_id: service_id.to_owned(),
            position,
            url: hook.url.as_str().to_owned(),
            created_at: now,
        });
    }
    rows
}

/// The secret stored for `url`, opened; `None`, with the reason in `errors`, without one.
fn stored_secret(
    sealer: &Sealer,
    stored: &[WebhookRow],
    url: &WebhookUrl,
    position: i64,
    errors: &mut Vec<FieldError>,
) -> Option<SecretSlice<u8>> {
    let place = format!("webhooks[{position}].secret");
    let Some(row) = stored.iter().find(|row| row.url == url.as_str()) else {
        errors.push(FieldError::new(
            place,
            "is required for a URL not stored yet (only a stored URL keeps its secret when none is given)",
        ));
        return None;
    };
    sealer
        .open(SealedColumn::WebhookSecret.of(&row.id), &row.secret_sealed)
        .map_err(|e| {
            tracing::warn!(webhook.id = %row.id, error.cause = %e, "a stored webhook secret does not open");
            errors.push(FieldError::new(
                place,
                "cannot keep the stored secret, which does not open: enter it again",
            ));
        })
        .ok()
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
