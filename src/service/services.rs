//! Services: internal consumers that authenticate with a client ID and secret, exchange them
//! for short-lived service tokens, and act within their policy.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::audit::AuditEvent;
use super::{Context, FieldError, ServiceError, connections, required};
use crate::crypto::{self, ServiceClaims, TokenHash, TokenRejected, generate_token};
use crate::db::{self, services::ServiceRow};
use crate::domain::{InstanceAccess, ReturnOrigin, ScopeSet, ServiceName};

/// Service fields as typed, before parsing.
#[derive(Debug, Default)]
pub struct ServiceForm {
    pub name: Option<String>,
    pub instances: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub return_origins: Option<Vec<String>>,
}

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
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A service token, as the client credentials grant answers it.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
}

pub async fn create(
    ctx: &Context,
    form: ServiceForm,
) -> Result<(Service, SecretString), ServiceError> {
    let mut errors = Vec::new();
    let name = required(&mut errors, "name", form.name, |n| ServiceName::parse(&n));
    let instances = required(&mut errors, "instances", form.instances, |v| {
        InstanceAccess::parse(&v)
    });
    let scopes = required(&mut errors, "scopes", form.scopes, |v| ScopeSet::parse(&v));
    let origins = form
        .return_origins
        .unwrap_or_default()
        .iter()
        .map(|o| ReturnOrigin::parse(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| errors.push(FieldError::new("return_origins", e.0)))
        .ok();
    let (Some(name), Some(instances), Some(scopes), Some(mut origins)) =
        (name, instances, scopes, origins)
    else {
        return Err(ServiceError::Invalid(errors));
    };
    if let InstanceAccess::Named(names) = &instances {
        let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let known: Vec<String> = ctx
            .db(db::instances::list)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect();
        let unknown: Vec<&String> = wanted.iter().filter(|n| !known.contains(n)).collect();
        if !unknown.is_empty() {
            let message = format!("no instance is registered under the name(s) {unknown:?}");
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "instances",
                message,
            )]));
        }
    }
    origins.sort();
    origins.dedup();

    let secret = generate_token("lgsec_");
    let now = Utc::now().naive_utc();
    let row = ServiceRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        client_id: format!("lgcli_{}", uuid::Uuid::new_v4().simple()),
        secret_hash: TokenHash::of_secret(&secret).to_hex(),
        instances: instances.to_string(),
        scopes: scopes.to_string(),
        return_origins: origins
            .iter()
            .map(ReturnOrigin::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        created_at: now,
        updated_at: now,
    };
    let stored = row.clone();
    let inserted = ctx
        .db(move |conn| db::inserted(db::services::insert(conn, &stored)))
        .await?;
    if !inserted {
        return Err(ServiceError::Conflict(format!(
            "a service named {:?} exists already",
            name.as_str()
        )));
    }
    tracing::info!(service.name = %name, "service created");
    ctx.audit
        .record(AuditEvent::new("service_created", "admin").detail(name.as_str()))
        .await;
    Ok((to_service(row)?, secret))
}

pub async fn list(ctx: &Context) -> Result<Vec<Service>, ServiceError> {
    ctx.db(db::services::list)
        .await?
        .into_iter()
        .map(to_service)
        .collect()
}

/// Revokes the service's connections at GitLab, then deletes it and them; its tokens stop
/// working at once.
pub async fn delete(ctx: &Context, name: &str) -> Result<(), ServiceError> {
    let owned = name.to_owned();
    let row = ctx
        .db(move |conn| db::services::find_by_name(conn, &owned))
        .await?
        .ok_or_else(|| not_found(name))?;
    let service_id = row.id.clone();
    let held = ctx
        .db(move |conn| db::connections::for_service(conn, &service_id))
        .await?;
    connections::revoke_all(ctx, held, "admin").await?;
    let (service_id, owned) = (row.id, name.to_owned());
    ctx.db(move |conn| {
        db::connections::delete_for_service(conn, &service_id)?;
        db::services::delete(conn, &owned)
    })
    .await?;
    tracing::info!(service.name = %name, "service deleted");
    ctx.audit
        .record(AuditEvent::new("service_deleted", "admin").detail(name))
        .await;
    Ok(())
}

/// A new secret; the old one stops working at once. Tokens issued before stay valid until
/// they expire (at most 15 minutes).
pub async fn rotate_secret(
    ctx: &Context,
    name: &str,
) -> Result<(Service, SecretString), ServiceError> {
    let secret = generate_token("lgsec_");
    let (owned, hash, now) = (
        name.to_owned(),
        TokenHash::of_secret(&secret).to_hex(),
        Utc::now().naive_utc(),
    );
    let row = ctx
        .db(move |conn| {
            if db::services::set_secret_hash(conn, &owned, &hash, now)? {
                db::services::find_by_name(conn, &owned)
            } else {
                Ok(None)
            }
        })
        .await?
        .ok_or_else(|| not_found(name))?;
    tracing::info!(service.name = %name, "service secret rotated");
    ctx.audit
        .record(AuditEvent::new("service_secret_rotated", "admin").detail(name))
        .await;
    Ok((to_service(row)?, secret))
}

/// The client credentials grant: a service token for a valid client ID and secret.
pub async fn issue_token(
    ctx: &Context,
    client_id: &str,
    client_secret: &SecretString,
) -> Result<IssuedToken, ServiceError> {
    let owned = client_id.to_owned();
    let row = ctx
        .db(move |conn| db::services::find_by_client_id(conn, &owned))
        .await?;
    let authenticated = row.filter(|row| {
        TokenHash::from_hex(&row.secret_hash)
            .is_some_and(|hash| hash.matches(client_secret.expose_secret()))
    });
    let Some(row) = authenticated else {
        return Err(ServiceError::Unauthenticated(
            "unknown client or wrong secret".to_owned(),
        ));
    };
    let now = Utc::now().timestamp();
    let claims = ServiceClaims {
        iss: ctx.public_base().to_owned(),
        aud: crypto::AUDIENCE.to_owned(),
        sub: row.id,
        iat: now,
        exp: now + crypto::LIFETIME_SECONDS,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    Ok(IssuedToken {
        access_token: ctx.service_tokens.sign(&claims),
        expires_in: crypto::LIFETIME_SECONDS,
    })
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
    if token.0.iat < service.updated_at.and_utc().timestamp() {
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
        id: row.id,
        client_id: row.client_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no service is named {name:?}"))
}
