//! Connections: storing a grant GitLab gave, and showing administrators what is held.

use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};
use diesel::Connection as _;
use secrecy::{ExposeSecret, SecretString};

use super::audit::AuditEvent;
use super::{Context, FieldError, ServiceError};
use crate::crypto::{SealedField, Sealer};
use crate::db::{
    self, connections::ConnectionFilter, connections::ConnectionRow, instances::InstanceRow,
};
use crate::domain::{ConnectionStatus, ScopeSet};
use crate::oauth::Grant;

/// A connection as administrators see it: no token material.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub id: String,
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub scopes: ScopeSet,
    pub status: String,
    /// Why a connection stopped being usable, e.g. `invalid_grant` or `refresh_response_lost`.
    pub status_reason: Option<String>,
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub refreshed_at: Option<NaiveDateTime>,
}

/// Filters as typed in a query string.
#[derive(Debug, Default, Clone)]
pub struct ConnectionQuery {
    pub service: Option<String>,
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
}

pub(super) struct StoredGrant {
    pub connection_id: String,
    /// The refresh token of the grant this one replaced, to revoke at GitLab.
    pub replaced_refresh_token: Option<SecretString>,
}

/// Stores a fresh grant for (service, instance, subject, granted scopes), sealed and bound to
/// its row. Connecting again for the same key replaces the tokens in the same row; of two
/// completions racing for one key, the later one replaces the earlier, whose grant is returned
/// for revocation.
pub(super) async fn store_grant(
    ctx: &Context,
    key: GrantKey<'_>,
    grant: Grant,
) -> Result<StoredGrant, ServiceError> {
    let sealer = ctx.sealer.clone();
    let (service_id, instance_id, subject) = (
        key.service_id.to_owned(),
        key.instance_id.to_owned(),
        key.subject.to_owned(),
    );
    let scopes = ScopeSet::granted(&grant.scopes).to_string();
    ctx.db(move |conn| {
        let mut attempt = || {
            conn.transaction(|conn| {
                let existing = db::connections::find_for_grant(
                    conn,
                    &service_id,
                    &instance_id,
                    &subject,
                    &scopes,
                )?;
                let now = Utc::now().naive_utc();
                let id = existing
                    .as_ref()
                    .map_or_else(|| uuid::Uuid::new_v4().to_string(), |row| row.id.clone());
                let row = ConnectionRow {
                    access_token_sealed: sealer.seal(
                        token_field(&id, "access_token"),
                        grant.access_token.expose_secret().as_bytes(),
                    ),
                    refresh_token_sealed: sealer.seal(
                        token_field(&id, "refresh_token"),
                        grant.refresh_token.expose_secret().as_bytes(),
                    ),
                    id,
                    service_id: service_id.clone(),
                    instance_id: instance_id.clone(),
                    subject: subject.clone(),
                    scopes: scopes.clone(),
                    gitlab_user_id: grant.user_id.clone(),
                    gitlab_username: grant.username.clone(),
                    expires_at: grant.expires_at.naive_utc(),
                    status: ConnectionStatus::Active.to_string(),
                    created_at: now,
                    updated_at: now,
                    refreshed_at: None,
                    refresh_lease_owner: None,
                    refresh_lease_until: None,
                    refresh_in_flight_since: None,
                    status_reason: None,
                };
                let replaced_refresh_token = match existing {
                                        Some(old) => {
                        db::connections::replace_grant(conn, &row)?;
                        open_token(&sealer, &old, "refresh_token")
                            .map_err(|e| tracing::warn!(error.cause = %e, "the replaced grant cannot be revoked"))
                            .ok()
                    }
                    None => {
                        db::connections::insert(conn, &row)?;
                        None
                    }
                };
                Ok(StoredGrant {
                    connection_id: row.id,
                    replaced_refresh_token,
                })
            })
        };
        match attempt() {
            // Another completion inserted this key first: replace its grant instead.
            Err(e) if db::is_unique_violation(&e) => attempt(),
            other => other,
        }
    })
    .await
}

/// What one stored grant belongs to.
pub(super) struct GrantKey<'a> {
    pub service_id: &'a str,
    pub instance_id: &'a str,
    pub subject: &'a str,
}

pub async fn list(
    ctx: &Context,
    query: ConnectionQuery,
) -> Result<Vec<ConnectionView>, ServiceError> {
    if let Some(status) = &query.status {
        ConnectionStatus::from_str(status)
            .map_err(|e| ServiceError::Invalid(vec![FieldError::new("status", e.0)]))?;
    }
    let filter = ConnectionFilter {
        service_name: query.service,
        instance_name: query.instance,
        subject: query.subject,
        status: query.status,
    };
    let rows = ctx
        .db(move |conn| db::connections::list(conn, &filter))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, instance, service)| ConnectionView {
            id: row.id,
            service,
            instance,
            subject: row.subject,
            scopes: ScopeSet::granted(row.scopes.split_whitespace()),
            status: row.status,
            status_reason: row.status_reason,
            gitlab_user_id: row.gitlab_user_id,
            gitlab_username: row.gitlab_username,
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            refreshed_at: row.refreshed_at,
        })
        .collect())
}

pub fn token_field<'a>(connection_id: &'a str, column: &'a str) -> SealedField<'a> {
    SealedField {
        table: "connections",
        column,
        row_id: connection_id,
    }
}

/// Opens one of a connection's sealed tokens (`access_token` or `refresh_token`).
pub fn open_token(
    sealer: &Sealer,
    row: &ConnectionRow,
    column: &str,
) -> Result<SecretString, anyhow::Error> {
    let sealed = if column == "access_token" {
        &row.access_token_sealed
    } else {
        &row.refresh_token_sealed
    };
    let plain = sealer
        .open(token_field(&row.id, column), sealed)
        .map_err(|e| anyhow::anyhow!("opening {column} of connection {}: {e}", row.id))?;
    Ok(SecretString::from(
        String::from_utf8_lossy(plain.expose_secret()).into_owned(),
    ))
}

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
        .db(move |conn| db::connections::find(conn, &owned))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no connection has the id {id:?}")))?;
    let instance_id = row.instance_id.clone();
    let instance = ctx
        .db(move |conn| db::instances::find_by_id(conn, &instance_id))
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
            .db(move |conn| db::instances::find_by_id(conn, &instance_id))
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
    let row = super::refresh::hold_for_revocation(ctx, &row.id)
        .await?
        .unwrap_or(row);
    let (id, now) = (row.id.clone(), Utc::now().naive_utc());
    let revoked = ConnectionStatus::Revoked.as_str();
    ctx.db(move |conn| {
        db::connections::set_status(conn, &id, revoked, Some(REVOCATION_PENDING), now)
    })
    .await?;
    let registration = super::connect::Registration::of(ctx, instance)?;
    let http = registration
        .http_client(ctx)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    let refresh_token = open_token(&ctx.sealer, &row, "refresh_token")?;
    registration.app().revoke(&http, &refresh_token).await.map_err(|e| ServiceError::GitLabUnavailable {
        detail: format!("the connection is revoked in labgate, but GitLab could not revoke its grant ({e}): try again"),
        retry_after: std::time::Duration::from_secs(30),
    })?;
    let (id, now) = (row.id.clone(), Utc::now().naive_utc());
    ctx.db(move |conn| {
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
