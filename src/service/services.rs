//! Services as administrators manage them: create, read, change the policy, list, delete,
//! rotate the secret.

use chrono::Utc;
use diesel::Connection;
use secrecy::SecretString;

use super::audit::AuditEvent;
use super::principal::{Service, to_service};
use super::{
    Context, FieldError, ServiceError, access_grants, field, required, revocation, webhooks,
};
use crate::crypto::{TokenHash, generate_token};
use crate::db::{self, services::ServiceRow};
use crate::domain::{
    Access, IdentityIssuer, InstanceAccess, InstanceName, Page, Paged, ProjectPatterns,
    ReturnOrigin, ScopeSet, ServiceName, Webhook, WebhookSecrets, WorkloadIdentities,
    parse_webhooks,
};

/// Service fields as typed, before parsing.
#[derive(Debug, Default)]
pub struct ServiceForm {
    pub name: Option<String>,
    pub instances: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub return_origins: Option<Vec<String>>,
    /// Project path patterns its access grants may name; every project when absent.
    pub projects: Option<Vec<String>>,
    /// `read` when absent.
    pub max_access: Option<String>,
    /// The workload identities it trusts (the API's JSON array); none when absent.
    pub identities: Option<serde_json::Value>,
    /// Where its connection events go (the API's JSON array); replaces the list when given.
    pub webhooks: Option<serde_json::Value>,
    /// Whether a webhook listed without its secret keeps the stored one.
    pub webhook_secrets: WebhookSecrets,
}

pub async fn create(
    ctx: &Context,
    form: ServiceForm,
    actor: &str,
) -> Result<(Service, SecretString), ServiceError> {
    let mut errors = Vec::new();
    let name = required(&mut errors, "name", form.name.clone(), |n| {
        ServiceName::parse(&n)
    });
    let missing: Vec<FieldError> = [
        ("instances", form.instances.is_none()),
        ("scopes", form.scopes.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| FieldError::new(name, "is required"))
    .collect();
    errors.extend(missing);
    let policy = parse_policy(&mut errors, form);
    let (id, now) = (uuid::Uuid::new_v4().to_string(), Utc::now().naive_utc());
    // A new service has no webhook stored: each needs its secret.
    let listed = policy.webhooks.as_deref().unwrap_or_default();
    let hooks = webhooks::sealed_rows(&ctx.sealer, &id, listed, &[], now, &mut errors);
    let (Some(name), Some(instances), Some(scopes)) = (name, policy.instances, policy.scopes)
    else {
        return Err(ServiceError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    ensure_registered(ctx, &instances).await?;
    let identities = policy.identities.unwrap_or_default();
    ensure_issuers_registered(ctx, &identities).await?;
    let origins = policy.origins.unwrap_or_default();
    let projects = policy.projects.unwrap_or_default();
    let max_access = policy.max_access.unwrap_or(Access::Read);

    let secret = generate_token("lgsec_");
    let row = ServiceRow {
        id,
        name: name.to_string(),
        client_id: format!("lgcli_{}", uuid::Uuid::new_v4().simple()),
        secret_hash: TokenHash::of_secret(&secret).to_hex(),
        instances: instances.to_string(),
        scopes: scopes.to_string(),
        return_origins: joined(&origins),
        created_at: now,
        updated_at: now,
        projects: projects.to_string(),
        max_access: max_access.to_string(),
        secret_rotated_at: now,
        identities: identities.to_stored(),
    };
    let stored = row.clone();
    let inserted = ctx
        .db_write(move |conn| {
            conn.transaction(|conn| {
                let inserted = db::inserted(db::services::insert(conn, &stored))?;
                if inserted {
                    db::webhooks::replace_for_service(conn, &stored.id, &hooks)?;
                }
                Ok(inserted)
            })
        })
        .await?;
    if !inserted {
        return Err(ServiceError::Conflict(format!(
            "a service named {:?} exists already",
            name.as_str()
        )));
    }
    tracing::info!(service.name = %name, "service created");
    ctx.audit
        .record(AuditEvent::new("service_created", actor).detail(name.as_str()))
        .await;
    Ok((to_service(row)?, secret))
}

/// A service's policy fields, parsed; `None` where the form left one out.
struct PolicyChange {
    instances: Option<InstanceAccess>,
    scopes: Option<ScopeSet>,
    /// Sorted, without duplicates.
    origins: Option<Vec<ReturnOrigin>>,
    projects: Option<ProjectPatterns>,
    max_access: Option<Access>,
    identities: Option<WorkloadIdentities>,
    webhooks: Option<Vec<Webhook>>,
}

/// Parses whichever policy fields `form` holds, recording why any is refused.
fn parse_policy(errors: &mut Vec<FieldError>, form: ServiceForm) -> PolicyChange {
    // In the form's order, so that refusals are listed as the fields are.
    let instances = form
        .instances
        .and_then(|v| field(errors, "instances", InstanceAccess::parse(&v)));
    let scopes = form
        .scopes
        .and_then(|v| field(errors, "scopes", ScopeSet::parse(&v)));
    let origins = form.return_origins.and_then(|origins| {
        let mut parsed = origins
            .iter()
            .map(|o| ReturnOrigin::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| errors.push(FieldError::new("return_origins", e.0)))
            .ok()?;
        parsed.sort();
        parsed.dedup();
        Some(parsed)
    });
    let projects = form
        .projects
        .and_then(|v| field(errors, "projects", ProjectPatterns::parse(&v)));
    let max_access = form
        .max_access
        .and_then(|v| field(errors, "max_access", Access::parse(&v)));
    let identities = form.identities.and_then(|v| {
        WorkloadIdentities::parse(&v)
            .map_err(|refused| {
                errors.extend(
                    refused
                        .into_iter()
                        .map(|(place, why)| FieldError::new(place, why.0)),
                );
            })
            .ok()
    });
    let webhooks = form.webhooks.and_then(|v| {
        parse_webhooks(&v, form.webhook_secrets)
            .map_err(|refused| {
                errors.extend(
                    refused
                        .into_iter()
                        .map(|(place, why)| FieldError::new(place, why.0)),
                );
            })
            .ok()
    });
    PolicyChange {
        instances,
        scopes,
        origins,
        projects,
        max_access,
        identities,
        webhooks,
    }
}

/// Named instances must be registered ones.
async fn ensure_registered(ctx: &Context, instances: &InstanceAccess) -> Result<(), ServiceError> {
    let InstanceAccess::Named(names) = instances else {
        return Ok(());
    };
    let unknown = unregistered(ctx, names.iter()).await?;
    if unknown.is_empty() {
        return Ok(());
    }
    let message = format!("no instance is registered under the name(s) {unknown:?}");
    Err(ServiceError::Invalid(vec![FieldError::new(
        "instances",
        message,
    )]))
}

/// An identity's issuer named by instance must be a registered instance.
async fn ensure_issuers_registered(
    ctx: &Context,
    identities: &WorkloadIdentities,
) -> Result<(), ServiceError> {
    let unknown = unregistered(ctx, identities.instances()).await?;
    let refused: Vec<FieldError> = identities
        .iter()
        .enumerate()
        .filter(|(_, identity)| {
            matches!(&identity.issuer, IdentityIssuer::Instance(name) if unknown.contains(&name.to_string()))
        })
        .map(|(index, _)| {
            FieldError::new(
                format!("identities[{index}].issuer"),
                "no instance is registered under that name (an issuer URL starts with https://)",
            )
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(refused))
    }
}

/// Which of `names` no instance is registered under.
async fn unregistered(
    ctx: &Context,
    names: impl Iterator<Item = &InstanceName>,
) -> Result<Vec<String>, ServiceError> {
    let names: Vec<String> = names.map(ToString::to_string).collect();
    if names.is_empty() {
        return Ok(names);
    }
    let known: Vec<String> = ctx
        .db_read(db::instances::list)
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect();
    Ok(names.into_iter().filter(|n| !known.contains(n)).collect())
}

fn joined(origins: &[ReturnOrigin]) -> String {
    origins
        .iter()
        .map(ReturnOrigin::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn get(ctx: &Context, name: &str) -> Result<Service, ServiceError> {
    to_service(find(ctx, name).await?)
}

/// Changes the policy fields the form holds. Narrowing takes effect at the next request in
/// every process (what handouts remember is outdated by the write), live access grants the
/// new policy no longer covers end at once, and tokens minted through an identity no longer
/// listed are refused.
pub async fn change(
    ctx: &Context,
    name: &str,
    form: ServiceForm,
    actor: &str,
) -> Result<Service, ServiceError> {
    let mut row = find(ctx, name).await?;
    let mut errors = Vec::new();
    if form.name.as_deref().is_some_and(|new| new != row.name) {
        errors.push(FieldError::new(
            "name",
            "cannot be changed: create a service under the new name",
        ));
    }
    let policy = parse_policy(&mut errors, form);
    let now = Utc::now().naive_utc();
    let hooks = match &policy.webhooks {
        Some(listed) => {
            let service_id = row.id.clone();
            let stored = ctx
                .db_read(move |conn| db::webhooks::for_service(conn, &service_id))
                .await?;
            Some(webhooks::sealed_rows(
                &ctx.sealer,
                &row.id,
                listed,
                &stored,
                now,
                &mut errors,
            ))
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    if let Some(instances) = &policy.instances {
        ensure_registered(ctx, instances).await?;
        row.instances = instances.to_string();
    }
    if let Some(scopes) = policy.scopes {
        row.scopes = scopes.to_string();
    }
    if let Some(origins) = policy.origins {
        row.return_origins = joined(&origins);
    }
    if let Some(projects) = policy.projects {
        row.projects = projects.to_string();
    }
    if let Some(max_access) = policy.max_access {
        row.max_access = max_access.to_string();
    }
    if let Some(identities) = policy.identities {
        ensure_issuers_registered(ctx, &identities).await?;
        row.identities = identities.to_stored();
    }
    row.updated_at = now;
    let stored = row.clone();
    if !ctx
        .db_write(move |conn| {
            conn.transaction(|conn| {
                let found = db::services::update_policy(conn, &stored)?;
                if let (true, Some(hooks)) = (found, &hooks) {
                    db::webhooks::replace_for_service(conn, &stored.id, hooks)?;
                }
                Ok(found)
            })
        })
        .await?
    {
        return Err(not_found(name));
    }
    let service = to_service(row)?;
    let ended = access_grants::end_outside_policy(ctx, &service, actor).await?;
    tracing::info!(service.name = %name, grants.ended = ended, "service changed");
    let event = AuditEvent::new("service_changed", actor).detail(format!(
        "{name}: instances {}, scopes {}, projects {}, max_access {}, identities {}",
        service.instances,
        service.scopes,
        service.projects,
        service.max_access,
        service.identities.to_stored()
    ));
    ctx.audit.record(event).await;
    Ok(service)
}

async fn find(ctx: &Context, name: &str) -> Result<ServiceRow, ServiceError> {
    let owned = name.to_owned();
    ctx.db_read(move |conn| db::services::find_by_name(conn, &owned))
        .await?
        .ok_or_else(|| not_found(name))
}

/// One page of services, by name.
pub async fn list_page(ctx: &Context, page: Page) -> Result<Paged<Service>, ServiceError> {
    let (after, limit) = (page.after, page.limit);
    // One more than the page: it only says whether another page follows.
    let rows = ctx
        .db_read(move |conn| db::services::list_page(conn, after.as_deref(), limit + 1))
        .await?;
    let services = rows
        .into_iter()
        .map(to_service)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::of(services, limit, |service: &Service| {
        service.name.to_string()
    }))
}

pub async fn list(ctx: &Context) -> Result<Vec<Service>, ServiceError> {
    ctx.db_read(db::services::list)
        .await?
        .into_iter()
        .map(to_service)
        .collect()
}

/// Revokes the service's connections at GitLab, then deletes it and them; its tokens stop
/// working at once. Its pending webhook deliveries (the revocations' events among them) keep
/// their secrets and are still delivered.
pub async fn delete(ctx: &Context, name: &str, actor: &str) -> Result<(), ServiceError> {
    let row = find(ctx, name).await?;
    let service_id = row.id.clone();
    let held = ctx
        .db_read(move |conn| db::connections::for_service(conn, &service_id))
        .await?;
    revocation::revoke_all(ctx, held, actor).await?;
    let (service_id, owned, sealer) = (row.id, name.to_owned(), ctx.sealer.clone());
    let kept = ctx
        .db_write(move |conn| {
            conn.write_transaction(|conn| {
                db::connections::delete_for_service(conn, &service_id)?;
                let kept = webhooks::outbox::keep_for_deleted_service(conn, &sealer, &service_id)?;
                db::services::delete(conn, &owned)?;
                Ok::<_, diesel::result::Error>(kept)
            })
        })
        .await?;
    tracing::info!(service.name = %name, deliveries.pending = kept, "service deleted");
    ctx.audit
        .record(AuditEvent::new("service_deleted", actor).detail(name))
        .await;
    Ok(())
}

/// A new secret; the old one stops working at once. Tokens issued before stay valid until
/// they expire (at most 15 minutes).
pub async fn rotate_secret(
    ctx: &Context,
    name: &str,
    actor: &str,
) -> Result<(Service, SecretString), ServiceError> {
    let secret = generate_token("lgsec_");
    let (owned, hash, now) = (
        name.to_owned(),
        TokenHash::of_secret(&secret).to_hex(),
        Utc::now().naive_utc(),
    );
    let row = ctx
        .db_write(move |conn| {
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
        .record(AuditEvent::new("service_secret_rotated", actor).detail(name))
        .await;
    Ok((to_service(row)?, secret))
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no service is named {name:?}"))
}
