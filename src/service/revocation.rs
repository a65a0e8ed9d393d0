//! Revoking connections: handouts stop at once, then GitLab revokes the grant (RFC 7009).

use chrono::Utc;

use super::audit::AuditEvent;
use super::connection_tokens::{TokenKind, open_token};
use super::connections::ReplacedGrant;
use super::registration::Registration;
use super::webhooks::outbox;
use super::{Context, ServiceError, refresh};
use crate::db::{self, connections::ConnectionRow, instances::InstanceRow};
use crate::domain::{ConnectionKind, ConnectionStatus, EventType};
use crate::oauth::revoke_access_token;

/// `status_reason` of a revoked connection: labgate stopped handing it out; GitLab has, or has
/// not yet, revoked its grant.
const REVOCATION_PENDING: &str = "revocation_pending_at_gitlab";
const REVOKED_AT_GITLAB: &str = "revoked";

/// Revokes a connection: handouts stop at once, then GitLab revokes the grant (RFC 7009,
/// the refresh token, which ends its access token too). A connection already revoked in
/// labgate is revoked at GitLab again, so a failed attempt can simply be repeated.
pub async fn revoke(ctx: &Context, id: &str, actor: &str) -> Result<(), ServiceError> {
    let owned = id.to_owned();
    let row = ctx
        .db_read(move |conn| db::connections::find(conn, &owned))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no connection has the id {id:?}")))?;
    let instance_id = row.instance_id.clone();
    let instance = ctx
        .db_read(move |conn| db::instances::find_by_id(conn, &instance_id))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("connection {id:?} has no instance")))?;
    revoke_row(ctx, &instance, row, actor).await
}

/// Revokes every connection of an instance or a service before it is deleted, except those
/// GitLab has revoked already. Stops at the first failure, so nothing is deleted while a grant
/// may still live at GitLab.
pub(super) async fn revoke_all(
    ctx: &Context,
    rows: Vec<ConnectionRow>,
    actor: &str,
) -> Result<(), ServiceError> {
    let done = |row: &ConnectionRow| row.status_reason.as_deref() == Some(REVOKED_AT_GITLAB);
    for row in rows.into_iter().filter(|row| !done(row)) {
        let instance_id = row.instance_id.clone();
        let Some(instance) = ctx
            .db_read(move |conn| db::instances::find_by_id(conn, &instance_id))
            .await?
        else {
            continue;
        };
        revoke_row(ctx, &instance, row, actor).await?;
    }
    Ok(())
}

async fn revoke_row(
    ctx: &Context,
    instance: &InstanceRow,
    row: ConnectionRow,
    actor: &str,
) -> Result<(), ServiceError> {
    // Waits out a refresh in flight, so that no new pair appears after the revocation.
    let row = refresh::hold_for_revocation(ctx, &row.id)
        .await?
        .unwrap_or(row);
    let (id, now) = (row.id.clone(), Utc::now().naive_utc());
    let revoked = ConnectionStatus::Revoked;
    let holder = (
        row.service_id.clone(),
        row.instance_id.clone(),
        row.subject.clone(),
    );
    let instance_name = instance.name.clone();
    // The access grants made on the subject's behalf end with the connection; the event is
    // written with the change, once: a connection revoked again tells nobody again.
    ctx.db_write(move |conn| {
        conn.write_transaction(|conn| {
            let before = db::connections::find(conn, &id)?;
            db::access_grants::delete_for_holder(conn, &holder.0, &holder.1, &holder.2)?;
            db::connections::set_status(conn, &id, revoked, Some(REVOCATION_PENDING), now)?;
            if before.is_some_and(|row| row.status != revoked) {
                let change = outbox::Change {
                    kind: EventType::ConnectionRevoked,
                    service_id: &holder.0,
                    connection_id: &id,
                    instance: &instance_name,
                    subject: &holder.2,
                    status: revoked,
                    reason: None,
                    expires_at: None,
                };
                outbox::record(conn, &change)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
    })
    .await?;
    let registration = Registration::of(ctx, instance)?;
    let http = registration
        .http_client(ctx)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    let held = ReplacedGrant {
        kind: row.kind,
        token: open_token(&ctx.sealer, &row, TokenKind::revoking(row.kind))?,
    };
    revoke_at_gitlab(&registration, &http, instance, &held).await.map_err(|e| ServiceError::GitLabUnavailable {
        detail: format!("the connection is revoked in labgate, but GitLab could not revoke its grant ({e}): try again"),
        retry_after: std::time::Duration::from_secs(30),
    })?;
    let (id, now) = (row.id.clone(), Utc::now().naive_utc());
    ctx.db_write(move |conn| {
        db::connections::set_status(conn, &id, revoked, Some(REVOKED_AT_GITLAB), now)
    })
    .await?;
    tracing::info!(instance.name = %instance.name, connection.id = %row.id, "connection revoked");
    let event = AuditEvent::new("connection_revoked", actor)
        .instance(&instance.name)
        .subject(&row.subject)
        .connection(&row.id)
        .scopes(&row.scopes);
    ctx.audit.record(event).await;
    Ok(())
}

/// Revokes a grant at GitLab: RFC 7009 for OAuth, `DELETE /personal_access_tokens/self` for an
/// access token.
async fn revoke_at_gitlab(
    registration: &Registration,
    http: &reqwest::Client,
    instance: &InstanceRow,
    held: &ReplacedGrant,
) -> Result<(), String> {
    match held.kind {
        ConnectionKind::OAuth => registration
            .app()
            .revoke(http, &held.token)
            .await
            .map_err(|e| e.to_string()),
        ConnectionKind::AccessToken => {
            revoke_access_token(http, &instance.base_url, &held.token).await
        }
    }
}

/// Revokes the grant a new one replaced: dead weight at GitLab now, so revoking it is courtesy,
/// not correctness, and a failure is only logged.
pub(super) async fn revoke_replaced(
    registration: &Registration,
    http: &reqwest::Client,
    instance: &InstanceRow,
    replaced: ReplacedGrant,
) {
    if let Err(e) = revoke_at_gitlab(registration, http, instance, &replaced).await {
        tracing::warn!(instance.name = %instance.name, error.cause = %e, "revoking the replaced grant failed");
    }
}
