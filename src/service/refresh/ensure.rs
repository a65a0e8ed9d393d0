//! The entry point: a connection's row with a token valid long enough, refreshing first when
//! it is not, one refresh at a time.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::coordination::{Claim, claim, lease_length};
use super::exchange::refresh_with_lease;
use super::timing::satisfies;
use super::{POLL, Purpose, RefreshError, usable};
use crate::db::{self, connections::ConnectionRow};
use crate::service::{Context, ServiceError};

/// The connection's row once its token is valid until at least `need_until`, refreshing first
/// when it is not. `seen` is the row as the caller just read it.
pub async fn ensure_fresh(
    ctx: &Context,
    seen: ConnectionRow,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> Result<ConnectionRow, RefreshError> {
    let deadline = Instant::now() + lease_length(ctx) + Duration::from_secs(2);
    let id = seen.id.clone();
    let mut seen = Some(seen);
    loop {
        let row = match seen.take() {
            Some(row) => usable(row)?,
            None => load(ctx, &id).await?,
        };
        if satisfies(&ctx.refresher, &row, need_until, purpose) {
            return Ok(row);
        }
        // One refresh per connection in this process; the others wait here for its result.
        let lock = ctx.refreshes.lock_for(&id);
        let guard = lock.lock_owned().await;
        // Its own task, lease included: nothing the caller does (hanging up) can cut it off
        // between taking the lease, GitLab's answer and the database.
        let (task_ctx, task_id) = (ctx.clone(), id.clone());
        // Counted before it is spawned: a shutdown draining refreshes cannot miss it.
        let counted = ctx.refreshes.count_in_flight();
        let task = tokio::spawn(async move {
            let _held = (guard, counted);
            let ctx = &task_ctx;
            match claim(ctx, &task_id, need_until, purpose).await {
                Ok(Claim::Settled(row)) => Some(usable(*row)),
                Ok(Claim::Busy) => None,
                Ok(Claim::Leased(leased)) => Some(refresh_with_lease(ctx, *leased).await),
                Err(e) => Some(Err(e)),
            }
        });
        match task.await {
            // GitLab refused the rotation and the token is now flagged as one that cannot
            // rotate: never rotated, it serves until its expiry, which may be far enough.
            Ok(Some(Err(RefreshError::CannotRotate))) if purpose == Purpose::Handout => {
                let row = load(ctx, &id).await?;
                return if satisfies(&ctx.refresher, &row, need_until, purpose) {
                    Ok(row)
                } else {
                    Err(RefreshError::CannotRotate)
                };
            }
            Ok(Some(outcome)) => return outcome,
            Ok(None) => {}
            Err(e) => return Err(RefreshError::Storage(ServiceError::Internal(e.into()))),
        }
        // Another process holds the lease: wait for its result, or for its lease to run out.
        if Instant::now() > deadline {
            return Err(RefreshError::Unavailable {
                retry_after: Duration::from_secs(1),
                reason: "another labgate process is still refreshing this connection".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn load(ctx: &Context, id: &str) -> Result<ConnectionRow, RefreshError> {
    let owned = id.to_owned();
    let row = ctx
        .db_read(move |conn| db::connections::find(conn, &owned))
        .await?
        .ok_or(RefreshError::Gone)?;
    usable(row)
}
