//! Connections: storing a grant GitLab gave, and showing administrators what is held.

use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};
use secrecy::SecretString;

use super::connection_tokens::{TokenKind, open_token, seal_token};
use super::webhooks::outbox;
use super::{Context, FieldError, ServiceError};
use crate::db::{self, connections::ConnectionFilter, connections::ConnectionRow};
use crate::domain::{
    ConnectionKind, ConnectionStatus, EventType, Page, Paged, ScopeSet, TokenLife, created_key,
    parse_created_key,
};
use crate::oauth::Grant;

/// A connection as administrators see it: no token material.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub id: String,
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub kind: ConnectionKind,
    pub scopes: ScopeSet,
    pub status: ConnectionStatus,
    /// Why a connection stopped being usable, e.g. `invalid_grant` or `refresh_response_lost`.
    pub status_reason: Option<String>,
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    /// When the token held expires (an OAuth token: hours; an access token: its expiry date).
    pub expires_at: NaiveDateTime,
    /// An access token that cannot rotate itself: it must be replaced before it expires.
    pub rotation_impossible: bool,
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
    /// What the grant this one replaced held, to revoke at GitLab.
    pub replaced: Option<ReplacedGrant>,
}

/// The credential of a replaced grant that GitLab revokes: an OAuth grant's refresh token, or
/// an access token.
pub(super) struct ReplacedGrant {
    pub kind: ConnectionKind,
    pub token: SecretString,
}

/// What a connection holds, from the connect flow (OAuth) or given as an access token.
pub(super) struct HeldGrant {
    pub kind: ConnectionKind,
    pub access_token: SecretString,
    /// Empty for access tokens, which have none.
    pub refresh_token: SecretString,
    pub life: TokenLife,
    pub scopes: ScopeSet,
    pub user_id: String,
    pub username: String,
    /// GitLab's id of an access token.
    pub access_token_id: Option<String>,
    pub rotation_impossible: bool,
}

impl From<Grant> for HeldGrant {
    fn from(grant: Grant) -> Self {
        Self {
            kind: ConnectionKind::OAuth,
            scopes: ScopeSet::granted(&grant.scopes),
            access_token: grant.access_token,
            refresh_token: grant.refresh_token,
            life: grant.life,
            user_id: grant.user_id,
            username: grant.username,
            access_token_id: None,
            rotation_impossible: false,
        }
    }
}

/// Stores a grant for (service, instance, subject, granted scopes), sealed and bound to its
/// row. Connecting again for the same key replaces the tokens in the same row; of two
/// completions racing for one key, the later one replaces the earlier, whose grant is returned
/// for revocation.
pub(super) async fn store_grant(
    ctx: &Context,
    key: GrantKey<'_>,
    grant: HeldGrant,
) -> Result<StoredGrant, ServiceError> {
    let sealer = ctx.sealer.clone();
    let (service_id, instance_id, instance_name, subject) = (
        key.service_id.to_owned(),
        key.instance_id.to_owned(),
        key.instance_name.to_owned(),
        key.subject.to_owned(),
    );
    let scopes = grant.scopes.to_string();
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
                // A token that cannot rotate itself is never due: it serves until it expires.
                let refresh_due_at = if grant.rotation_impossible {
                    grant.life.expires_at
                } else {
                    grant.kind.renewal_due_at(&grant.life, &id)
                };
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
                    kind: grant.kind,
                    access_token_id: grant.access_token_id.clone(),
                    rotation_impossible: grant.rotation_impossible,
                    expiry_announced_at: None,
                };
                if grant.kind == ConnectionKind::OAuth {
                    db::instances::record_token_lifetime(
                        conn,
                        &instance_id,
                        grant.life.lifetime().num_seconds(),
                    )?;
                }
                let replaced = match existing {
                    Some(old) => {
                        db::connections::replace_grant(conn, &row)?;
                        open_token(&sealer, &old, TokenKind::revoking(old.kind))
                            .map_err(|e| tracing::warn!(error.cause = %e, "the replaced grant cannot be revoked"))
                            .ok()
                            .map(|token| ReplacedGrant { kind: old.kind, token })
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
                        expires_at: None,
                    },
                )?;
                Ok(StoredGrant {
                    connection_id: row.id,
                    replaced,
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
        .map(|(row, instance, service)| to_view(row, instance, service))
        .collect();
    Ok(Paged::of(
        views,
        limit.unwrap_or(i64::MAX),
        |view: &ConnectionView| created_key(view.created_at, &view.id),
    ))
}

/// One connection as administrators see it.
pub async fn view(ctx: &Context, id: &str) -> Result<ConnectionView, ServiceError> {
    let owned = id.to_owned();
    ctx.db_read(move |conn| db::connections::find_listed(conn, &owned))
        .await?
        .map(|(row, instance, service)| to_view(row, instance, service))
        .ok_or_else(|| ServiceError::NotFound(format!("no connection has the id {id:?}")))
}

fn to_view(row: ConnectionRow, instance: String, service: String) -> ConnectionView {
    ConnectionView {
        id: row.id,
        service,
        instance,
        subject: row.subject,
        kind: row.kind,
        scopes: ScopeSet::granted(row.scopes.split_whitespace()),
        status: row.status,
        status_reason: row.status_reason,
        gitlab_user_id: row.gitlab_user_id,
        gitlab_username: row.gitlab_username,
        expires_at: row.expires_at,
        rotation_impossible: row.rotation_impossible,
        created_at: row.created_at,
        updated_at: row.updated_at,
        refreshed_at: row.refreshed_at,
    }
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
