//! Holding the lease: asking GitLab for a new pair and storing it before anyone uses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::coordination::{Lease, Leased, Mark};
use super::ledger::{Attempt, AttemptOutcome};
use super::renewal::Renewable;
use super::unknown_outcome::{settle_earlier, settle_time};
use super::verdict::{reauthorize, record_failure};
use super::{DEFAULT_RETRY_AFTER, RefreshError, unavailable, usable};
use crate::db::{self, connections::ConnectionRow, connections::RefreshedTokens};
use crate::domain::{ConnectionKind, TokenLife};
use crate::oauth::{CANNOT_ROTATE, CLIENT_REJECTED, RefreshOutcome};
use crate::service::connection_tokens::{TokenKind, open_token, seal_token};
use crate::service::registration::Registration;
use crate::service::{Context, ServiceError};

/// Holding the lease: resolves an earlier unknown outcome, then refreshes once.
pub(super) async fn refresh_with_lease(
    ctx: &Context,
    leased: Leased,
) -> Result<ConnectionRow, RefreshError> {
    let Leased {
        row,
        instance,
        mark,
        until,
    } = leased;
    let marked = matches!(mark, Mark::Ours);
    let id = row.id.as_str();
    let lease = Lease { ctx, id, until };
    // Until the request leaves, nothing was sent: giving up clears this claim's own mark.
    let prepared = instance.ok_or(RefreshError::Gone).and_then(|instance| {
        let registration =
            Registration::of(ctx, &instance).map_err(|e| RefreshError::Storage(e.into()))?;
        let http = registration
            .http_client(ctx)
            .map_err(|e| RefreshError::Storage(ServiceError::Internal(anyhow::anyhow!(e))))?;
        let access_token = open_token(&ctx.sealer, &row, TokenKind::Access)
            .map_err(|e| RefreshError::Storage(e.into()))?;
        let refresh_token = open_token(&ctx.sealer, &row, TokenKind::Refresh)
            .map_err(|e| RefreshError::Storage(e.into()))?;
        Ok((instance, registration, http, access_token, refresh_token))
    });
    let (instance, registration, http, access_token, refresh_token) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            lease.release(marked).await;
            return Err(e);
        }
    };

    let renewable = Renewable {
        row: &row,
        instance: &instance,
        registration: &registration,
        http: &http,
        access_token: &access_token,
        refresh_token: &refresh_token,
    };
    if let Mark::Earlier(since) = mark {
        settle_earlier(&lease, since, &renewable).await?;
    }
    let (started, started_at) = (Instant::now(), Utc::now().naive_utc());
    let reply = renewable.renew().await;
    let seconds = started.elapsed().as_secs_f64();
    let attempt = Attempt {
        connection_id: id.to_owned(),
        started_at,
        request_id: reply.request_id,
    };

    match reply.outcome {
        RefreshOutcome::Refreshed {
            access_token,
            refresh_token,
            life,
            token_id,
        } => {
            // The instance's OAuth token lifetime; an access token's is its own.
            let oauth_lifetime_changed = row.kind == ConnectionKind::OAuth
                && instance.token_lifetime_seconds != Some(life.lifetime().num_seconds());
            let pair = NewPair {
                access: seal_token(&ctx.sealer, id, TokenKind::Access, &access_token),
                refresh: seal_token(&ctx.sealer, id, TokenKind::Refresh, &refresh_token),
                life,
                refresh_due_at: row.kind.renewal_due_at(&life, id),
                token_id,
                lifetime_changed_on: oauth_lifetime_changed.then(|| instance.id.clone()),
            };
            let stored = store_new_pair(&lease, pair).await;
            ctx.metrics.refresh(&instance.name, "ok", seconds);
            if matches!(stored, Ok(Stored::Row(_))) {
                attempt.record(ctx, AttemptOutcome::Ok, None).await;
            }
            let stored = match stored {
                Ok(Stored::Row(row)) => row.map(|row| *row),
                Ok(Stored::LeaseLost) => {
                    tracing::error!(connection.id = %id, "a refreshed pair could not be stored before the refresh lease ended");
                    let detail = "the new pair could not be stored before the lease ended";
                    attempt
                        .record(ctx, AttemptOutcome::ResponseLost, Some(detail.into()))
                        .await;
                    record_failure(
                        ctx,
                        &row,
                        &instance.name,
                        "refresh_response_lost: the new pair could not be stored in time",
                    )
                    .await;
                    None
                }
                Err(e) => return Err(e),
            };
            match stored.ok_or(RefreshError::Gone).and_then(usable) {
                // Revoked (or re-authorized) while GitLab was answering, or never stored: the new
                // pair must not outlive the decision, nor live on unheld.
                Err(RefreshError::Gone | RefreshError::Reauthorization(_)) => {
                    if let Err(e) = registration.app().revoke(&http, &refresh_token).await {
                        tracing::warn!(connection.id = %id, error.cause = %e, "could not revoke a pair refreshed after revocation");
                    }
                    Err(RefreshError::Gone)
                }
                other => other,
            }
        }
        RefreshOutcome::InvalidGrant => {
            ctx.metrics
                .refresh(&instance.name, "invalid_grant", seconds);
            // The same verdict for both kinds: the token that renews the grant is dead.
            let (code, reason) = match row.kind {
                ConnectionKind::OAuth => (
                    "invalid_grant",
                    "GitLab refused the refresh token (invalid_grant)",
                ),
                ConnectionKind::AccessToken => (
                    "token_rejected",
                    "GitLab refused the access token's rotation (revoked or expired): give labgate a new token",
                ),
            };
            attempt
                .record(ctx, AttemptOutcome::InvalidGrant, None)
                .await;
            Err(reauthorize(ctx, &lease, &row, &instance.name, code, reason).await)
        }
        RefreshOutcome::Throttled { retry_after } => {
            ctx.metrics.refresh(&instance.name, "unavailable", seconds);
            lease.release(true).await;
            let detail = Some("throttled (429)".to_owned());
            attempt
                .record(ctx, AttemptOutcome::Unavailable, detail)
                .await;
            Err(unavailable(
                retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
                "GitLab is throttling refreshes (429)".into(),
            ))
        }
        RefreshOutcome::Refused(reason) if reason == CANNOT_ROTATE => {
            ctx.metrics.refresh(&instance.name, "unavailable", seconds);
            let detail = "GitLab refused the rotation: the token has neither api nor self_rotate";
            attempt
                .record(ctx, AttemptOutcome::Unavailable, Some(detail.into()))
                .await;
            record_failure(ctx, &row, &instance.name, detail).await;
            let (flagged_id, owner) = (id.to_owned(), ctx.refreshes.owner.clone());
            ctx.db_write(move |conn| {
                db::connections::flag_rotation_impossible(conn, &flagged_id, &owner)
            })
            .await?;
            Err(RefreshError::CannotRotate)
        }
        RefreshOutcome::NotSent(reason) | RefreshOutcome::Refused(reason) => {
            ctx.metrics.refresh(&instance.name, "unavailable", seconds);
            lease.release(true).await;
            if reason == "invalid_client" {
                // The application's secret, not the person's grant: the grant is kept, and the
                // instance says so until an administrator updates the secret.
                attempt
                    .record(ctx, AttemptOutcome::InvalidClient, Some(reason.clone()))
                    .await;
                record_failure(ctx, &row, &instance.name, &reason).await;
                registration.record_rejected(ctx).await;
                return Err(unavailable(
                    DEFAULT_RETRY_AFTER,
                    format!(
                        "{CLIENT_REJECTED}: GitLab rejects the client ID or secret of the instance \
                         {:?} (invalid_client); the grant is kept until an administrator updates \
                         the secret",
                        instance.name
                    ),
                ));
            }
            attempt
                .record(ctx, AttemptOutcome::Unavailable, Some(reason.clone()))
                .await;
            record_failure(ctx, &row, &instance.name, &reason).await;
            Err(unavailable(
                DEFAULT_RETRY_AFTER,
                format!("GitLab did not refresh: {reason}"),
            ))
        }
        RefreshOutcome::Unknown(reason) => {
            ctx.metrics.refresh(&instance.name, "unknown", seconds);
            tracing::warn!(
                instance.name = %instance.name, connection.id = %id, error.cause = %reason,
                "refresh outcome unknown: GitLab will be asked before anything is retried"
            );
            lease.release(false).await;
            attempt
                .record(ctx, AttemptOutcome::Unknown, Some(reason.clone()))
                .await;
            record_failure(
                ctx,
                &row,
                &instance.name,
                &format!("outcome unknown: {reason}"),
            )
            .await;
            Err(unavailable(
                settle_time(ctx),
                format!("GitLab's answer to the refresh was lost: {reason}"),
            ))
        }
    }
}

/// A pair GitLab has just issued, sealed for its row.
struct NewPair {
    access: Vec<u8>,
    refresh: Vec<u8>,
    life: TokenLife,
    refresh_due_at: NaiveDateTime,
    /// GitLab's id of a rotated access token.
    token_id: Option<String>,
    /// The instance, when the lifetime GitLab granted differs from the one it recorded last.
    lifetime_changed_on: Option<String>,
}

enum Stored {
    /// The row as stored (`None`: deleted meanwhile).
    Row(Option<Box<ConnectionRow>>),
    /// The lease ended before the pair could be stored; another process may own the row now.
    LeaseLost,
}

/// Stores a pair GitLab has just issued, trying again while the database does not answer: it
/// is the only live pair, and dropping it would lose the grant. Only the lease's owner writes
/// (the update is fenced on it), and it stops trying before its lease ends, so that no other
/// process settles the row while this one may still write it. Once stored, the pair is never
/// written again: by then another refresh may have replaced it.
async fn store_new_pair(lease: &Lease<'_>, pair: NewPair) -> Result<Stored, RefreshError> {
    let ctx = lease.ctx;
    let pair = Arc::new(pair);
    let last_try = lease.until - TimeDelta::seconds(2);
    loop {
        let (stored_id, owner, pair_now) = (
            lease.id.to_owned(),
            ctx.refreshes.owner.clone(),
            pair.clone(),
        );
        let attempt = ctx
            .db_write(move |conn| {
                let tokens = RefreshedTokens {
                    access_token_sealed: &pair_now.access,
                    refresh_token_sealed: &pair_now.refresh,
                    issued_at: pair_now.life.issued_at,
                    expires_at: pair_now.life.expires_at,
                    refresh_due_at: pair_now.refresh_due_at,
                    access_token_id: pair_now.token_id.as_deref(),
                };
                let now = Utc::now().naive_utc();
                if !db::connections::store_refresh(conn, &stored_id, &owner, tokens, now)? {
                    return Ok(None);
                }
                // After the commit, in the same trip; a failure here must not store the pair again.
                if let Some(instance_id) = &pair_now.lifetime_changed_on {
                    let lifetime = pair_now.life.lifetime().num_seconds();
                    let _ = db::instances::record_token_lifetime(conn, instance_id, lifetime)
                        .map_err(|e| tracing::warn!(error.cause = %e, "could not record the token lifetime"));
                }
                Ok(Some(db::connections::find(conn, &stored_id).ok()))
            })
            .await;
        match attempt {
            Ok(Some(Some(row))) => return Ok(Stored::Row(row.map(Box::new))),
            Ok(Some(None)) => {
                return Ok(Stored::Row(load_stored(ctx, lease.id).await?.map(Box::new)));
            }
            // Not ours to write: deleted, or the lease passed to another process.
            Ok(None) => {
                return Ok(match load_stored(ctx, lease.id).await? {
                    None => Stored::Row(None),
                    Some(_) => Stored::LeaseLost,
                });
            }
            Err(e) if Utc::now().naive_utc() < last_try => {
                tracing::error!(connection.id = %lease.id, error.cause = %e, "cannot store a refreshed pair yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(_) => return Ok(Stored::LeaseLost),
        }
    }
}

/// The row after its new pair was stored, when reading it back in the same trip failed.
async fn load_stored(ctx: &Context, id: &str) -> Result<Option<ConnectionRow>, ServiceError> {
    let owned = id.to_owned();
    ctx.db_read(move |conn| db::connections::find(conn, &owned))
        .await
}
