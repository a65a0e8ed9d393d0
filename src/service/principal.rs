//! Who a service token speaks for: the token verified, and its service admitted as stored.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::NaiveDateTime;

use super::{Context, ServiceError};
use crate::crypto::{ServiceClaims, TokenRejected};
use crate::db::{self, services::ServiceRow};
use crate::domain::{Access, InstanceAccess, ProjectPatterns, ReturnOrigin, ScopeSet, ServiceName};

/// A service and its policy.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: ServiceName,
    pub client_id: String,
    pub instances: InstanceAccess,
    /// The most a token handed to this service may carry (identity scopes aside).
    pub scopes: ScopeSet,
    pub return_origins: Vec<ReturnOrigin>,
    /// The projects its access grants may ever name, and the most they may do.
    pub projects: ProjectPatterns,
    pub max_access: Access,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// When its secret last changed; tokens and grants bought before are refused.
    pub secret_rotated_at: NaiveDateTime,
}

/// A service token whose signature, issuer, audience and expiry are checked. Whether its
/// service still exists and kept its secret is `admit`'s question, asked with the service's
/// row, which a use case may read together with its own data.
pub struct VerifiedToken(Arc<ServiceClaims>);

impl VerifiedToken {
    pub fn service_id(&self) -> &str {
        &self.0.sub
    }
}

/// The service a bearer token speaks for: signature, issuer, audience and expiry checked, and
/// the service must still exist.
pub async fn authenticate(ctx: &Context, token: &str) -> Result<Service, ServiceError> {
    admit_stored(ctx, &verify_token(ctx, token)?).await
}

/// `admit` with the service as stored now.
pub async fn admit_stored(ctx: &Context, token: &VerifiedToken) -> Result<Service, ServiceError> {
    let id = token.service_id().to_owned();
    let row = ctx
        .db_read(move |conn| db::services::find_by_id(conn, &id))
        .await?;
    let service = row.map(to_service).transpose()?;
    admit(token, service.as_ref()).cloned()
}

pub fn verify_token(ctx: &Context, token: &str) -> Result<VerifiedToken, ServiceError> {
    ctx.service_tokens
        .verify(token, ctx.public_base())
        .map_err(|e| match e {
            TokenRejected::Expired => {
                ServiceError::Unauthenticated("the service token has expired".into())
            }
            other => {
                ServiceError::Unauthenticated(format!("the service token is not valid: {other}"))
            }
        })
        .map(VerifiedToken)
}

/// The service behind a verified token, as stored (`None`: deleted).
pub fn admit<'a>(
    token: &VerifiedToken,
    service: Option<&'a Service>,
) -> Result<&'a Service, ServiceError> {
    let service = service
        .ok_or_else(|| ServiceError::Unauthenticated("the service no longer exists".into()))?;
    // Rotating the secret also retires the tokens it bought: a leaked secret's tokens end with it.
    if token.0.iat < service.secret_rotated_at.and_utc().timestamp() {
        return Err(ServiceError::Unauthenticated(
            "the service token was issued before the secret was rotated".into(),
        ));
    }
    Ok(service)
}

pub(super) fn to_service(row: ServiceRow) -> Result<Service, ServiceError> {
    Ok(Service {
        name: ServiceName::parse(&row.name).context("stored service name")?,
        instances: InstanceAccess::from_stored(&row.instances).context("stored instance access")?,
        scopes: ScopeSet::from_stored(&row.scopes).context("stored service scopes")?,
        return_origins: row
            .return_origins
            .split_whitespace()
            .map(ReturnOrigin::parse)
            .collect::<Result<_, _>>()
            .context("stored return origins")?,
        projects: ProjectPatterns::from_stored(&row.projects).context("stored project patterns")?,
        max_access: Access::parse(&row.max_access).context("stored maximum access")?,
        id: row.id,
        client_id: row.client_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        secret_rotated_at: row.secret_rotated_at,
    })
}
