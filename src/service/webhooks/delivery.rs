//! The background delivery every `labgate serve` process runs. Each due outbox row is claimed
//! with a lease (one conditional update, so exactly one process sends it at a time), POSTed
//! signed, and recorded: delivered, or retried with back-off, or after `MAX_ATTEMPTS` failed.
//! A process that dies mid-delivery leaves a lease that runs out: the row is sent again, so
//! delivery is at least once.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;

use super::super::{Context, ServiceError};
use crate::crypto::{SealedColumn, webhook_signature};
use crate::db::{
    self,
    webhook_deliveries::{AttemptRecord, DeliveryRow},
};
use crate::domain::{DeliveryStatus, WebhookUrl, next_retry};
use crate::oauth::{post_event, webhook_http_client};

/// How often the outbox is looked at: an event normally leaves within a second of its change.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Rows claimed at once, and sent together.
const BATCH: i64 = 16;
/// How long a claim lasts: far longer than one request may take.
const LEASE: TimeDelta = TimeDelta::seconds(60);

/// Runs until aborted.
pub async fn run_background(ctx: Context) {
    let client = match webhook_http_client(&ctx.outbound) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error.cause = %e, "webhooks cannot be delivered");
            return;
        }
    };
    let owner = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
    loop {
        let sent = match deliver_due(&ctx, &client, &owner).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(error.cause = %e, "delivering webhooks failed");
                0
            }
        };
        // A full batch: more may be due at once.
        if sent < BATCH {
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// Claims the due rows it can and sends them; returns how many it claimed.
pub async fn deliver_due(
    ctx: &Context,
    client: &reqwest::Client,
    owner: &str,
) -> Result<i64, ServiceError> {
    let now = Utc::now().naive_utc();
    let lease_owner = owner.to_owned();
    let (claimed, pending) = ctx
        .db_write_unread_by_handouts(move |conn| {
            let mut claimed = Vec::new();
            for row in db::webhook_deliveries::due(conn, now, BATCH)? {
                if db::webhook_deliveries::take_lease(
                    conn,
                    &row.id,
                    &lease_owner,
                    now + LEASE,
                    now,
                )? {
                    claimed.push(row);
                }
            }
            let pending = db::webhook_deliveries::count_pending(conn)?;
            Ok((claimed, pending))
        })
        .await?;
    ctx.metrics.set_webhook_outbox(pending);
    let count = i64::try_from(claimed.len()).unwrap_or(i64::MAX);
    let sends = claimed
        .into_iter()
        .map(|row| deliver_one(ctx, client, owner, row));
    for result in futures_util::future::join_all(sends).await {
        if let Err(e) = result {
            tracing::warn!(error.cause = %e, "recording a webhook delivery failed");
        }
    }
    Ok(count)
}

/// What became of one attempt.
enum Attempt {
    Delivered,
    /// Not delivered; worth trying again.
    Failed(String),
    /// Never deliverable: the service no longer lists the URL.
    Gone,
}

async fn deliver_one(
    ctx: &Context,
    client: &reqwest::Client,
    owner: &str,
    row: DeliveryRow,
) -> Result<(), ServiceError> {
    let (service_id, url, id) = (row.service_id.clone(), row.url.clone(), row.id.clone());
    let (hook, kept, service) = ctx
        .db_read(move |conn| {
            let (hook, service) = match &service_id {
                Some(service_id) => (
                    db::webhooks::find(conn, service_id, &url)?,
                    db::services::find_by_id(conn, service_id)?.map(|s| s.name),
                ),
                None => (None, None),
            };
            // Read after the webhook: a service deleted meanwhile left the secret in the row.
            let kept = db::webhook_deliveries::kept_secret(conn, &id)?;
            Ok((hook, kept, service))
        })
        .await?;
    let secret = match (hook, kept) {
        (Some(hook), _) => Some(ctx.sealer.open(
            SealedColumn::WebhookSecret.of(&hook.id),
            &hook.secret_sealed,
        )),
        (None, Some(kept)) => Some(
            ctx.sealer
                .open(SealedColumn::DeliverySecret.of(&row.id), &kept),
        ),
        (None, None) => None,
    };
    let attempt = match secret {
        None => Attempt::Gone,
        Some(Err(e)) => Attempt::Failed(format!("the webhook's secret does not open: {e}")),
        Some(Ok(secret)) => send(client, &row, secret.expose_secret()).await,
    };
    let service = service.unwrap_or_else(|| "deleted".to_owned());
    record(ctx, owner, &row, attempt, &service).await
}

async fn send(client: &reqwest::Client, row: &DeliveryRow, secret: &[u8]) -> Attempt {
    if WebhookUrl::parse(&row.url).is_err() {
        return Attempt::Gone;
    }
    let signature = webhook_signature(secret, Utc::now().timestamp(), &row.body);
    match post_event(client, &row.url, &row.body, &signature).await {
        Ok(()) => Attempt::Delivered,
        Err(why) => Attempt::Failed(why),
    }
}

async fn record(
    ctx: &Context,
    owner: &str,
    row: &DeliveryRow,
    attempt: Attempt,
    service: &str,
) -> Result<(), ServiceError> {
    let now = Utc::now().naive_utc();
    let attempts = row.attempts + 1;
    let (status, last_error, next_attempt_at, delivered_at): (_, _, NaiveDateTime, _) =
        match &attempt {
            Attempt::Delivered => (
                DeliveryStatus::Delivered,
                row.last_error.clone(),
                now,
                Some(now),
            ),
            Attempt::Gone => (
                DeliveryStatus::Failed,
                Some("the service no longer lists this webhook".to_owned()),
                now,
                None,
            ),
            Attempt::Failed(why) => match next_retry(attempts) {
                Some(wait) => (DeliveryStatus::Pending, Some(why.clone()), now + wait, None),
                None => (DeliveryStatus::Failed, Some(why.clone()), now, None),
            },
        };
    let outcome = match status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Pending => "retry",
        DeliveryStatus::Failed => "failed",
    };
    ctx.metrics.webhook_attempt(service, outcome);
    match &attempt {
        Attempt::Delivered => {
            tracing::info!(service.name = %service, event.id = %row.event_id, delivery.attempts = attempts, "webhook delivered");
        }
        _ => {
            tracing::warn!(service.name = %service, event.id = %row.event_id, delivery.attempts = attempts,
                delivery.outcome = outcome, error.cause = last_error.as_deref().unwrap_or(""), "webhook not delivered");
        }
    }
    let (id, owner) = (row.id.clone(), owner.to_owned());
    ctx.db_write_unread_by_handouts(move |conn| {
        let record = AttemptRecord {
            status,
            attempts,
            last_error: last_error.as_deref(),
            next_attempt_at,
            delivered_at,
        };
        db::webhook_deliveries::record_attempt(conn, &id, &owner, &record)?;
        // A deleted service's delivery is listed nowhere: once over, it goes.
        db::webhook_deliveries::delete_if_finished_orphan(conn, &id)
    })
    .await?;
    Ok(())
}
