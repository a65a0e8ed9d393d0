//! Services as administrators manage them: create, list, delete, rotate the secret.

use chrono::Utc;
use secrecy::SecretString;

use super::audit::AuditEvent;
use super::principal::{Service, to_service};
use super::{Context, FieldError, ServiceError, field, required, revocation};
use crate::crypto::{TokenHash, generate_token};
use crate::db::{self, services::ServiceRow};
use crate::domain::{Access, InstanceAccess, ProjectPatterns, ReturnOrigin, ScopeSet, ServiceName};

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
    let projects = match form.projects {
        None => Some(ProjectPatterns::default()),
        Some(patterns) => field(&mut errors, "projects", ProjectPatterns::parse(&patterns)),
    };
    let max_access = match form.max_access {
        None => Some(Access::Read),
        Some(access) => field(&mut errors, "max_access", Access::parse(&access)),
    };
    let (
        Some(name),
        Some(instances),
        Some(scopes),
        Some(mut origins),
        Some(projects),
        Some(max_access),
    ) = (name, instances, scopes, origins, projects, max_access)
    else {
        return Err(ServiceError::Invalid(errors));
    };
    if let InstanceAccess::Named(names) = &instances {
        let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let known: Vec<String> = ctx
            .db_read(db::instances::list)
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
        projects: projects.to_string(),
        max_access: max_access.to_string(),
    };
    let stored = row.clone();
    let inserted = ctx
        .db_write(move |conn| db::inserted(db::services::insert(conn, &stored)))
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
    ctx.db_read(db::services::list)
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
        .db_read(move |conn| db::services::find_by_name(conn, &owned))
        .await?
        .ok_or_else(|| not_found(name))?;
    let service_id = row.id.clone();
    let held = ctx
        .db_read(move |conn| db::connections::for_service(conn, &service_id))
        .await?;
    revocation::revoke_all(ctx, held, "admin").await?;
    let (service_id, owned) = (row.id, name.to_owned());
    ctx.db_write(move |conn| {
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
        .record(AuditEvent::new("service_secret_rotated", "admin").detail(name))
        .await;
    Ok((to_service(row)?, secret))
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no service is named {name:?}"))
}
