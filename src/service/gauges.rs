//! Keeps `/metrics` gauges current, so that a scrape reads memory and never counts a table:
//! connections (and instances whose client GitLab rejects) are recounted in the background
//! after this process (or, through the change feed, another) changed the database, and at
//! least once a minute; the pool and the audit queue are looked at when scraped, which costs
//! no trip to the database.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Context, ServiceError};
use crate::db;
use crate::domain::ConnectionStatus;
use crate::metrics::{HeldToken, InstanceStatus};

/// How often the keeper looks for a change: the most a recount lags one.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A recount at least this often, for changes nobody told this process about.
const RECOUNT_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// Runs until aborted, recounting whenever the database may have changed.
pub async fn keep_current(ctx: Context) {
    let mut counted: Option<(u64, Instant)> = None;
    loop {
        let generation = ctx.handouts.generation();
        let due = counted
            .is_none_or(|(seen, at)| seen != generation || at.elapsed() >= RECOUNT_AT_LEAST_EVERY);
        if due {
            match recount(&ctx).await {
                Ok(()) => counted = Some((generation, Instant::now())),
                Err(e) => tracing::warn!(error.cause = %e, "recounting the metrics gauges failed"),
            }
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Sets the connections gauge (every registered instance in every status, zeros included), the
/// gauge of instances whose OAuth client GitLab rejects, and the days each access token has left.
async fn recount(ctx: &Context) -> Result<(), ServiceError> {
    let (standing, counted, expiries) = ctx
        .db_read(|conn| {
            let standing = db::instances::client_standing(conn)?;
            let counted = db::connections::count_by_instance_and_status(conn, None)?;
            let expiries = db::access_token_expiry::expiries(conn)?;
            Ok((standing, counted, expiries))
        })
        .await?;
    ctx.metrics.set_clients_rejected(&standing);
    let now = Utc::now().naive_utc();
    let days_left = expiries
        .into_iter()
        .map(|(instance, connection, expires_at)| {
            let days = (expires_at - now).num_days().max(0);
            (
                HeldToken {
                    instance,
                    connection,
                },
                days,
            )
        })
        .collect();
    ctx.metrics.set_access_token_days_left(days_left);
    let series = standing
        .iter()
        .flat_map(|(instance, _)| ConnectionStatus::ALL.map(|status| (instance, status.as_str())))
        .map(|(instance, status)| {
            let count = counted
                .iter()
                .filter(|(i, s, _)| i == instance && s == status)
                .map(|(_, _, count)| count)
                .sum();
            let labels = InstanceStatus {
                instance: instance.clone(),
                status: status.to_owned(),
            };
            (labels, count)
        })
        .collect();
    ctx.metrics.set_connections(series);
    Ok(())
}

/// Samples what a scrape can read without the database.
pub fn sample_on_scrape(ctx: &Context) {
    let pool = ctx.pool.state();
    ctx.metrics.set_pool(
        pool.idle_connections,
        pool.connections - pool.idle_connections,
    );
    ctx.metrics.set_audit_queue(ctx.audit.queued());
}
