//! Settling a refresh whose outcome is unknown (a timeout, a broken answer, a 5xx, a crash):
//! never a blind retry. Once GitLab has surely finished with the request, labgate asks whether
//! the old access token still works; only then may a refresh be sent again. The same holds for
//! an access token's self-rotation.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::coordination::Lease;
use super::ledger::{Attempt, AttemptOutcome};
use super::renewal::Renewable;
use super::verdict::reauthorize;
use super::{DEFAULT_RETRY_AFTER, RefreshError, unavailable};
use crate::db;
use crate::service::Context;

/// A token that dies within this much of its recorded expiry may merely have expired: GitLab
/// judges expiry by its own clock, which may run ahead of labgate's.
const EXPIRY_SLACK: TimeDelta = TimeDelta::seconds(60);

/// After an unknown outcome, how long GitLab may still be working on the request.
pub(super) fn settle_time(ctx: &Context) -> Duration {
    ctx.outbound.request_timeout * 2
}

/// Holding the lease: decides whether the earlier refresh (of the row `renewable` holds, marked
/// `since`) rotated the token. `Ok`: a refresh may be sent, and the row is marked in flight for
/// it; otherwise the verdict, recorded.
pub(super) async fn settle_earlier(
    lease: &Lease<'_>,
    since: NaiveDateTime,
    renewable: &Renewable<'_>,
) -> Result<(), RefreshError> {
    let (row, instance) = (renewable.row, renewable.instance);
    let (ctx, id) = (lease.ctx, lease.id);
    let waited = (Utc::now().naive_utc() - since)
        .to_std()
        .unwrap_or_default();
    if waited < settle_time(ctx) {
        lease.release(false).await;
        return Err(RefreshError::Unavailable {
            retry_after: settle_time(ctx) - waited + Duration::from_millis(100),
            reason: "the outcome of the last refresh is not known yet".into(),
        });
    }
    match renewable.still_accepted().await {
        Ok(true) => {}
        // Dead well before its expiry: GitLab rotated the pair and its answer was lost.
        Ok(false) if row.expires_at - EXPIRY_SLACK > Utc::now().naive_utc() => {
            let reason = "GitLab rotated the tokens but its answer was lost";
            let attempt = Attempt {
                connection_id: id.to_owned(),
                started_at: since,
                request_id: None,
            };
            let detail = Some("the old access token died before its expiry".to_owned());
            attempt
                .record(ctx, AttemptOutcome::ResponseLost, detail)
                .await;
            return Err(reauthorize(
                ctx,
                lease,
                row,
                &instance.name,
                "refresh_response_lost",
                reason,
            )
            .await);
        }
        // Expired, or so near expiry that GitLab's clock may count it expired: the probe cannot
        // tell. Refreshing is the question GitLab can
        // answer: a rotated (dead) refresh token gets invalid_grant, the same verdict, and
        // GitLab revokes nothing else on reuse (GITLAB.md); a live one refreshes. Marking the
        // grant dead instead would kill grants that a long outage never touched.
        Ok(false) => {}
        Err(e) => {
            lease.release(false).await;
            return Err(unavailable(
                DEFAULT_RETRY_AFTER,
                format!("cannot ask GitLab about the last refresh: {e}"),
            ));
        }
    }
    let now = Utc::now().naive_utc();
    let (marked_id, owner) = (id.to_owned(), ctx.refreshes.owner.clone());
    if !ctx
        .db_write(move |conn| db::connections::mark_in_flight(conn, &marked_id, &owner, now))
        .await?
    {
        return Err(unavailable(
            Duration::from_secs(1),
            "the refresh lease was lost".into(),
        ));
    }
    Ok(())
}
