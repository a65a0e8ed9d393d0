//! Connections: storing a grant GitLab gave, and showing administrators what is held.

use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};
use diesel::Connection as _;
use secrecy::{ExposeSecret, SecretString};

use super::{Context, FieldError, ServiceError};
use crate::crypto::{SealedField, Sealer};
use crate::db::{self, connections::ConnectionFilter, connections::ConnectionRow};
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
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub refreshed_at: Option<NaiveDateTime>,
}

/// Filters as typed in a query string.
#[derive(Debug, Default)]
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
            gitlab_user_id: row.gitlab_user_id,
            gitlab_username: row.gitlab_username,
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            refreshed_at: row.refreshed_at,
        })
        .collect())
}

fn token_field<'a>(connection_id: &'a str, column: &'a str) -> SealedField<'a> {
    SealedField {
        table: "connections",
        column,
        row_id: connection_id,
    }
}

fn open_token(sealer: &Sealer, row: &ConnectionRow, column: &str) -> Option<SecretString> {
    let sealed = if column == "access_token" {
        &row.access_token_sealed
    } else {
        &row.refresh_token_sealed
    };
    match sealer.open(token_field(&row.id, column), sealed) {
        Ok(plain) => Some(SecretString::from(
            String::from_utf8_lossy(plain.expose_secret()).into_owned(),
        )),
        Err(e) => {
            tracing::warn!(connection.id = %row.id, error.cause = %e, "a stored token does not open");
            None
        }
    }
}
