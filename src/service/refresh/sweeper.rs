//! The background refresher: keeps active connections fresh before they expire, and settles
//! unknown outcomes, with bounded concurrency and a back-off per instance.

use chrono::Utc;
use futures_util::StreamExt;

use super::ensure::ensure_fresh;
use super::{Purpose, RefreshError};
use crate::db;
use crate::service::{Context, ServiceError, access_token_expiry};

/// One sweep of the background refresher: refreshes active connections whose refresh is due
/// (each token's own `refresh_due_at`), and settles earlier unknown outcomes, at most
/// `concurrency` at a time, skipping instances in back-off; then announces access tokens that
/// cannot rotate themselves and expire soon. Returns how many were refreshed.
pub async fn sweep(ctx: &Context) -> Result<usize, ServiceError> {
    let settings = ctx.refresher.clone();
    let now = Utc::now().naive_utc();
    let due = ctx
        .db_read(move |conn| db::connections::due_for_refresh(conn, now, 100_000))
        .await?;
    let refreshed = futures_util::stream::iter(due)
        .map(|row| async move {
            let instance_id = row.instance_id.clone();
            if ctx.refreshes.backoff.active(&instance_id) {
                return false;
            }
            match ensure_fresh(ctx, row, Utc::now().naive_utc(), Purpose::Maintain).await {
                Ok(_) => {
                    ctx.refreshes.backoff.end(&instance_id);
                    true
                }
                Err(RefreshError::Unavailable { retry_after, .. }) => {
                    ctx.refreshes.backoff.lengthen(&instance_id, retry_after);
                    false
                }
                Err(_) => false,
            }
        })
        .buffer_unordered(settings.concurrency)
        .filter(|refreshed| std::future::ready(*refreshed))
        .count()
        .await;
    if let Err(e) = access_token_expiry::announce_expiring(ctx).await {
        tracing::warn!(error.cause = %e, "could not announce expiring access tokens");
    }
    // The rotation ledger keeps each connection's newest attempts only. No handout reads it:
    // trimming it every sweep must not send every remembered handout back to the database.
    if let Err(e) = ctx
        .db_write_unread_by_handouts(db::refresh_attempts::trim)
        .await
    {
        tracing::warn!(error.cause = %e, "could not trim the rotation ledger");
    }
    Ok(refreshed)
}

/// Runs `sweep` every interval until the process ends.
pub async fn run_background(ctx: Context) {
    let mut ticks = tokio::time::interval(ctx.refresher.interval);
    loop {
        ticks.tick().await;
        if let Err(e) = sweep(&ctx).await {
            tracing::warn!(error.cause = %e, "background refresh sweep failed");
        }
    }
}
