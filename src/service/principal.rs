//! Who a service token speaks for: the token verified, and its service admitted as stored.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::NaiveDateTime;

use super::{Context, ServiceError};
use crate::crypto::{ServiceClaims, TokenHash, TokenRejected};
use crate::db::{self, services::ServiceRow};
use crate::domain::{
    Access, InstanceAccess, ProjectPatterns, ReturnOrigin, ScopeSet, ServiceName, Subject,
    WorkloadIdentities, WorkloadIdentity,
};

/// A service and its policy.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: ServiceName,
    /// How audit events name it (`service:<name>`), made once: every handout's event does.
    pub actor: Arc<str>,
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
    /// The workload identities whose tokens it may exchange for service tokens.
    pub identities: WorkloadIdentities,
    /// Their fingerprints (`identity_fingerprint`), in the same order: what a minted token
    /// carries, compared at every call without hashing the identities again.
    pub identity_fingerprints: Vec<String>,
}

/// A service token whose signature, issuer, audience and expiry are checked. Whether its
/// service still exists and kept its secret is `admit`'s question, asked with the service's
/// row, which a use case may read together with its own data.
pub struct VerifiedToken(Arc<ServiceClaims>);

impl VerifiedToken {
    pub fn service_id(&self) -> &str {
        &self.0.sub
    }

    pub fn binding(&self) -> SubjectBinding {
        SubjectBinding(self.0.bound_subject.clone())
    }
}

/// The one subject a token minted through a workload identity with `subject_claim` may act
/// for (the person who started the CI job); any subject for other tokens.
#[derive(Debug, Clone, Default)]
pub struct SubjectBinding(Option<String>);

impl SubjectBinding {
    pub fn allows(&self, subject: &Subject) -> Result<(), ServiceError> {
        match &self.0 {
            Some(bound) if bound != subject.as_str() => Err(ServiceError::Forbidden {
                code: "subject_not_allowed",
                detail: "this service token is bound to another subject: it was minted from a \
                         workload identity that acts only for the subject named in its token"
                    .into(),
            }),
            _ => Ok(()),
        }
    }
}

/// A digest of one identity as the service lists it: tokens minted through it carry it, and
/// are refused once no listed identity has it.
pub fn identity_fingerprint(identity: &WorkloadIdentity) -> String {
    TokenHash::of(&identity.to_json().to_string()).to_hex()[..32].to_owned()
}

/// The service a bearer token speaks for, and the subject it is bound to: signature, issuer,
/// audience and expiry checked, and the service must still exist.
pub async fn authenticate(
    ctx: &Context,
    token: &str,
) -> Result<(Service, SubjectBinding), ServiceError> {
    let token = verify_token(ctx, token)?;
    Ok((admit_stored(ctx, &token).await?, token.binding()))
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
    // An identity removed from the service retires the tokens minted through it.
    if let Some(minted_by) = &token.0.identity
        && !service.identity_fingerprints.contains(minted_by)
    {
        return Err(ServiceError::Unauthenticated(
            "the service token was minted through a workload identity the service no longer trusts"
                .into(),
        ));
    }
    Ok(service)
}

/// How audit events name the service called `name`.
pub(super) fn actor_of(name: impl std::fmt::Display) -> String {
    format!("service:{name}")
}

pub(super) fn to_service(row: ServiceRow) -> Result<Service, ServiceError> {
    let identities =
        WorkloadIdentities::from_stored(&row.identities).context("stored workload identities")?;
    let name = ServiceName::parse(&row.name).context("stored service name")?;
    Ok(Service {
        identity_fingerprints: identities.iter().map(identity_fingerprint).collect(),
        identities,
        actor: actor_of(&name).into(),
        name,
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
