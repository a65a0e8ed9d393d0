//! Connections: storing a grant GitLab gave, and showing administrators what is held.

use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};
use secrecy::SecretString;

use super::connection_tokens::{TokenKind, open_token, seal_token};
use super::webhooks::outbox;
use super::{Context, FieldError, ServiceError};
use crate::db::{self, connections::ConnectionFilter, connections::ConnectionRow};
use crate::domain::{
    ConnectionStatus, EventType, Page, Paged, ScopeSet, created_key, parse_created_key,
};
use crate::oauth::Grant;

/// A connection as administrators see it: no token material.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub id: String,
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub scopes: ScopeSet,
    pub status: ConnectionStatus,
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
    /// One page; every match when `None`.
    pub page: Option<Page>,
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
    let (service_id, instance_id, instance_name, subject) = (
        key.service_id.to_owned(),
        key.instance_id.to_owned(),
        key.instance_name.to_owned(),
        key.subject.to_owned(),
    );
    let scopes = ScopeSet::granted(&grant.scopes).to_string();
    ctx.db_write(move |conn| {
        let mut attempt = || {
            conn.write_transaction(|conn| {
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
                let refresh_due_at = grant.life.refresh_due_at(&id);
                let row = ConnectionRow {
                    access_token_sealed: seal_token(
                        &sealer,
                        &id,
                        TokenKind::Access,
                        &grant.access_token,
                    ),
                    refresh_token_sealed: seal_token(
                        &sealer,
                        &id,
                        TokenKind::Refresh,
                        &grant.refresh_token,
                    ),
                    id,
                    service_id: service_id.clone(),
                    instance_id: instance_id.clone(),
                    subject: subject.clone(),
                    scopes: scopes.clone(),
                    gitlab_user_id: grant.user_id.clone(),
                    gitlab_username: grant.username.clone(),
                    token_issued_at: grant.life.issued_at,
                    expires_at: grant.life.expires_at,
                    refresh_due_at,
                    status: ConnectionStatus::Active,
                    created_at: now,
                    updated_at: now,
                    refreshed_at: None,
                    refresh_lease_owner: None,
                    refresh_lease_until: None,
                    refresh_in_flight_since: None,
                    status_reason: None,
                };
                db::instances::record_token_lifetime(
                    conn,
                    &instance_id,
                    grant.life.lifetime().num_seconds(),
                )?;
                let replaced_refresh_token = match existing {
                    Some(old) => {
                        db::connections::replace_grant(conn, &row)?;
                        open_token(&sealer, &old, TokenKind::Refresh)
                            .map_err(|e| tracing::warn!(error.cause = %e, "the replaced grant cannot be revoked"))
                            .ok()
                    }
                    None => {
                        db::connections::insert(conn, &row)?;
                        None
                    }
                };
                // In the same transaction: the event exists exactly when the grant does.
                outbox::record(
                    conn,
                    &outbox::Change {
                        kind: EventType::ConnectionCreated,
                        service_id: &service_id,
                        connection_id: &row.id,
                        instance: &instance_name,
                        subject: &subject,
                        status: ConnectionStatus::Active,
                        reason: None,
                    },
                )?;
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
    /// The instance's name, for the `connection.created` event.
    pub instance_name: &'a str,
    pub subject: &'a str,
}

/// Connections matching the query, newest first; one page of them when it asks for one.
pub async fn list(
    ctx: &Context,
    query: ConnectionQuery,
) -> Result<Paged<ConnectionView>, ServiceError> {
    let status = query
        .status
        .as_deref()
        .map(ConnectionStatus::from_str)
        .transpose()
        .map_err(|e| ServiceError::Invalid(vec![FieldError::new("status", e.0)]))?;
    let after = query
        .page
        .as_ref()
        .and_then(|page| page.after.as_deref())
        .map(parse_created_key)
        .transpose()
        .map_err(|e| ServiceError::Invalid(vec![FieldError::new("cursor", e.0)]))?;
    let limit = query.page.as_ref().map(|page| page.limit);
    let filter = ConnectionFilter {
        service_name: query.service,
        instance_name: query.instance,
        subject: query.subject,
        status,
        after,
        // One more than the page: it only says whether another page follows.
        limit: limit.map(|n| n + 1),
    };
    let rows = ctx
        .db_read(move |conn| db::connections::list(conn, &filter))
        .await?;
    let views = rows
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
        .collect();
    Ok(Paged::of(
        views,
        limit.unwrap_or(i64::MAX),
        |view: &ConnectionView| created_key(view.created_at, &view.id),
    ))
}

/// How many connections an instance holds in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCount {
    pub instance: String,
    pub status: ConnectionStatus,
    pub count: i64,
}

/// Connections counted per instance and status in one grouped query (no row is loaded),
/// optionally for one instance only.
pub async fn count(
    ctx: &Context,
    instance: Option<String>,
) -> Result<Vec<ConnectionCount>, ServiceError> {
    let counted = ctx
        .db_read(move |conn| {
            db::connections::count_by_instance_and_status(conn, instance.as_deref())
        })
        .await?;
    counted
        .into_iter()
        .map(|(instance, status, count)| {
            let status = ConnectionStatus::from_str(&status)
                .map_err(|e| anyhow::anyhow!("stored connection status: {}", e.0))?;
            Ok(ConnectionCount {
                instance,
                status,
                count,
            })
        })
        .collect()
}

/// One refresh attempt of a connection, as the rotation ledger recorded it.
#[derive(Debug, Clone)]
pub struct RefreshAttempt {
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    /// `ok`, `invalid_grant`, `invalid_client`, `unavailable`, `unknown` or `response_lost`.
    pub outcome: String,
    /// GitLab's `X-Request-Id` for the refresh, to find it in GitLab's logs.
    pub gitlab_request_id: Option<String>,
    /// The labgate process that made it.
    pub process: String,
    pub detail: Option<String>,
}

/// A connection's rotation ledger, newest first (the last few attempts).
pub async fn refresh_history(ctx: &Context, id: &str) -> Result<Vec<RefreshAttempt>, ServiceError> {
    // Entries are written in batches with the audit log: what is queued first.
    ctx.audit.flush().await;
    let owned = id.to_owned();
    let (found, attempts) = ctx
        .db_read(move |conn| {
            let found = db::connections::find(conn, &owned)?.is_some();
            Ok((found, db::refresh_attempts::for_connection(conn, &owned)?))
        })
        .await?;
    if !found {
        return Err(ServiceError::NotFound(format!(
            "no connection has the id {id:?}"
        )));
    }
    Ok(attempts
        .into_iter()
        .map(|row| RefreshAttempt {
            started_at: row.started_at,
            finished_at: row.finished_at,
            outcome: row.outcome,
            gitlab_request_id: row.gitlab_request_id,
            process: row.process,
            detail: row.detail,
        })
        .collect())
}
