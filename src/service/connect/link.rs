//! Creating a connect link: a service asks for one user, one instance, one scope set.

use anyhow::Context as _;
use chrono::{NaiveDateTime, Utc};
use secrecy::ExposeSecret;
use url::Url;

use super::{VALIDITY, hash_secret};
use crate::db::{self, connect_sessions::ConnectSessionRow};
use crate::domain::{InstanceName, ReturnOrigin, ScopeSet, Subject};
use crate::service::principal::{Service, SubjectBinding};
use crate::service::{Context, FieldError, ServiceError, required};

/// What a service asks for, as typed.
#[derive(Debug, Default)]
pub struct ConnectForm {
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub return_to: Option<String>,
}

pub struct ConnectLink {
    pub id: String,
    pub url: String,
    pub expires_at: NaiveDateTime,
}

pub async fn create_session(
    ctx: &Context,
    service: &Service,
    binding: &SubjectBinding,
    form: ConnectForm,
) -> Result<ConnectLink, ServiceError> {
    let mut errors = Vec::new();
    let instance_name = required(&mut errors, "instance", form.instance, |v| {
        InstanceName::parse(&v)
    });
    let subject = required(&mut errors, "subject", form.subject, |v| Subject::parse(&v));
    let (Some(instance_name), Some(subject)) = (instance_name, subject) else {
        return Err(ServiceError::Invalid(errors));
    };
    binding.allows(&subject)?;
    if !service.instances.allows(&instance_name) {
        return Err(ServiceError::Forbidden {
            code: "instance_not_allowed",
            detail: format!(
                "service {:?} may not use instance {:?}",
                service.name.as_str(),
                instance_name.as_str()
            ),
        });
    }
    let name = instance_name.to_string();
    let instance = ctx
        .db_read(move |conn| db::instances::find_by_name(conn, &name))
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "no instance is registered under the name {instance_name}"
            ))
        })?;
    let registered = ScopeSet::from_stored(&instance.scopes).context("stored instance scopes")?;

    let scopes = match form.scopes {
        None => service.scopes.common_with_openid(&registered),
        Some(asked) => ScopeSet::parse(&asked)
            .map_err(|e| ServiceError::Invalid(vec![FieldError::new("scopes", e.0)]))?
            .with_openid(),
    };
    let beyond = scopes.beyond_policy(&service.scopes);
    if !beyond.is_empty() {
        return Err(ServiceError::Forbidden {
            code: "scope_not_allowed",
            detail: format!(
                "service {:?} may not ask for {}",
                service.name.as_str(),
                beyond.join(", ")
            ),
        });
    }
    let unregistered = scopes.outside(&registered);
    if !unregistered.is_empty() {
        let message = format!(
            "{} not registered for instance {:?} (registered: {registered})",
            unregistered.join(", "),
            instance.name
        );
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "scopes", message,
        )]));
    }
    let return_to = form
        .return_to
        .map(|to| allowed_return(service, &to))
        .transpose()?;

    let now = Utc::now().naive_utc();
    // The link carries the secret; the database keeps only its hash, so a database reader
    // cannot follow someone else's link.
    let link_secret = crate::crypto::generate_token("lgc_");
    let row = ConnectSessionRow {
        id: hash_secret(link_secret.expose_secret()),
        service_id: service.id.clone(),
        instance_id: instance.id,
        subject: subject.to_string(),
        scopes: scopes.to_string(),
        return_to: return_to.map(String::from),
        created_at: now,
        expires_at: now + VALIDITY,
        started_at: None,
        state_hash: None,
        nonce: None,
        pkce_verifier_sealed: None,
        browser_binding_hash: None,
        finished_at: None,
        outcome: None,
        connection_id: None,
    };
    let link = ConnectLink {
        url: format!(
            "{}/connect/{}",
            ctx.public_base(),
            link_secret.expose_secret()
        ),
        id: link_secret.expose_secret().to_owned(),
        expires_at: row.expires_at,
    };
    ctx.db_write(move |conn| db::connect_sessions::insert(conn, &row))
        .await?;
    tracing::info!(service.name = %service.name, instance.name = %instance.name, "connect link created");
    Ok(link)
}

/// `return_to` must lie on one of the service's origins, compared exactly: no open redirect.
fn allowed_return(service: &Service, return_to: &str) -> Result<Url, ServiceError> {
    let invalid =
        |message: String| ServiceError::Invalid(vec![FieldError::new("return_to", message)]);
    let (origin, url) = ReturnOrigin::of_return_url(return_to).map_err(|e| invalid(e.0))?;
    if service.return_origins.contains(&origin) {
        Ok(url)
    } else {
        let allowed: Vec<&str> = service
            .return_origins
            .iter()
            .map(ReturnOrigin::as_str)
            .collect();
        Err(invalid(format!(
            "origin {} is not one of the service's return_origins {allowed:?}",
            origin.as_str()
        )))
    }
}
