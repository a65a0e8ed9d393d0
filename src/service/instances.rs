//! Registering GitLab instances: create, read, change, check and remove.

use anyhow::Context as _;
use chrono::{NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::audit::AuditEvent;
use super::registration::{Registration, open_client_secret};
use super::{Context, FieldError, ServiceError, field, required, revocation};
use crate::crypto::SealedColumn;
use crate::db::{self, instances::InstanceRow};
use crate::domain::{BaseUrl, CaBundle, InstanceName, Invalid, ScopeSet};
use crate::oauth::{
    CLIENT_REJECTED, CheckReport, CheckStep, ClientToCheck, Discovery, check_instance,
};

/// Instance fields as a person or program typed them, before parsing. Both the admin API and
/// the admin pages fill this, so both give the same messages.
#[derive(Debug, Default)]
pub struct InstanceForm {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// `Some(None)`: remove the CA; `None`: leave it as it is (on change).
    pub ca_pem: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
}

/// A registered instance as readers see it: everything but the secret.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: InstanceName,
    pub base_url: BaseUrl,
    pub client_id: String,
    pub ca: Option<CaBundle>,
    pub scopes: ScopeSet,
    pub redirect_url: String,
    pub discovery: Discovery,
    pub last_check: LastCheck,
    /// The access-token lifetime GitLab granted last, once a token was issued.
    pub token_lifetime_seconds: Option<i64>,
    /// Since when GitLab rejects the client ID or secret (`invalid_client`), until they are
    /// updated and a check passes.
    pub client_rejected_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone)]
pub struct LastCheck {
    pub ok: bool,
    pub steps: Vec<CheckStep>,
    pub at: NaiveDateTime,
}

pub async fn register(
    ctx: &Context,
    form: InstanceForm,
    actor: &str,
) -> Result<Instance, ServiceError> {
    let mut errors = Vec::new();
    let name = required(&mut errors, "name", form.name, |v| InstanceName::parse(&v));
    let base_url = required(&mut errors, "base_url", form.base_url, |v| {
        BaseUrl::parse(&v)
    });
    let client_id = required(&mut errors, "client_id", form.client_id, parse_client_id);
    let client_secret = required(
        &mut errors,
        "client_secret",
        form.client_secret,
        parse_client_secret,
    );
    let ca = parse_ca(&mut errors, form.ca_pem.flatten());
    let scopes = required(&mut errors, "scopes", form.scopes, |v| {
        ScopeSet::parse_registered(&v)
    });
    let (Some(name), Some(base_url), Some(client_id), Some(client_secret), Some(ca), Some(scopes)) =
        (name, base_url, client_id, client_secret, ca, scopes)
    else {
        return Err(ServiceError::Invalid(errors));
    };

    let taken = name.clone();
    if ctx
        .db_read(move |conn| db::instances::find_by_name(conn, taken.as_str()))
        .await?
        .is_some()
    {
        return Err(already_registered(&name));
    }
    let client = ClientToCheck {
        client_id: &client_id,
        client_secret: &client_secret,
        redirect_url: &ctx.redirect_url(&name),
    };
    let report = passing_check(ctx, &base_url, ca.as_ref(), &client).await?;

    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now().naive_utc();
    let row = InstanceRow {
        token_lifetime_seconds: None,
        client_rejected_at: None,
        client_secret_sealed: seal_secret(ctx, &id, &client_secret),
        id,
        name: name.to_string(),
        base_url: base_url.to_string(),
        client_id,
        ca_pem: ca.as_ref().map(|ca| ca.pem().to_owned()),
        scopes: scopes.to_string(),
        discovery: encode(&report.discovery)?,
        last_check_ok: true,
        last_check_report: encode(&report.steps)?,
        last_checked_at: now,
        created_at: now,
        updated_at: now,
    };
    let stored = row.clone();
    let inserted = ctx
        .db_write(move |conn| db::inserted(db::instances::insert(conn, &stored)))
        .await?;
    if !inserted {
        return Err(already_registered(&name));
    }
    tracing::info!(instance.name = %name, instance.base_url = %base_url, "instance registered");
    let event = AuditEvent::new("instance_registered", actor)
        .instance(name.as_str())
        .detail(base_url.as_str());
    ctx.audit.record(event).await;
    to_instance(ctx, row)
}

pub async fn list(ctx: &Context) -> Result<Vec<Instance>, ServiceError> {
    let rows = ctx.db_read(db::instances::list).await?;
    rows.into_iter().map(|row| to_instance(ctx, row)).collect()
}

pub async fn get(ctx: &Context, name: &str) -> Result<Instance, ServiceError> {
    to_instance(ctx, find(ctx, name).await?)
}

/// Applies the given changes, checks the result against GitLab, and saves only if it passes.
pub async fn change(
    ctx: &Context,
    name: &str,
    form: InstanceForm,
    actor: &str,
) -> Result<Instance, ServiceError> {
    let mut row = find(ctx, name).await?;
    let mut errors = Vec::new();
    if form.name.as_deref().is_some_and(|new| new != row.name) {
        errors.push(FieldError::new(
            "name",
            "cannot be changed: register the instance again under the new name",
        ));
    }
    let base_url = match form.base_url {
        Some(v) => field(&mut errors, "base_url", BaseUrl::parse(&v)),
        None => Some(BaseUrl::parse(&row.base_url).context("stored base_url")?),
    };
    let client_id = form
        .client_id
        .and_then(|v| field(&mut errors, "client_id", parse_client_id(v)));
    let client_secret = form
        .client_secret
        .and_then(|v| field(&mut errors, "client_secret", parse_client_secret(v)));
    let ca = match form.ca_pem {
        Some(pem) => parse_ca(&mut errors, pem),
        None => Some(stored_ca(&row)?),
    };
    let scopes = form
        .scopes
        .and_then(|v| field(&mut errors, "scopes", ScopeSet::parse_registered(&v)));
    let (Some(base_url), Some(ca)) = (base_url, ca) else {
        return Err(ServiceError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }

    // The stored secret is opened only when no new one replaces it.
    let stored_secret;
    let secret = match &client_secret {
        Some(new) => new,
        None => {
            stored_secret = open_client_secret(ctx, &row)?;
            &stored_secret
        }
    };
    let instance_name = InstanceName::parse(&row.name).context("stored instance name")?;
    let client = ClientToCheck {
        client_id: client_id.as_deref().unwrap_or(&row.client_id),
        client_secret: secret,
        redirect_url: &ctx.redirect_url(&instance_name),
    };
    let report = passing_check(ctx, &base_url, ca.as_ref(), &client).await?;
    let seen_at = row.updated_at;
    let now = Utc::now().naive_utc();
    row.base_url = base_url.to_string();
    row.ca_pem = ca.as_ref().map(|ca| ca.pem().to_owned());
    if let Some(client_id) = client_id {
        row.client_id = client_id;
    }
    if let Some(secret) = client_secret {
        row.client_secret_sealed = seal_secret(ctx, &row.id, &secret);
    }
    if let Some(scopes) = scopes {
        row.scopes = scopes.to_string();
    }
    row.discovery = encode(&report.discovery)?;
    // The check just proved the credentials good.
    row.client_rejected_at = None;
    row.last_check_ok = true;
    row.last_check_report = encode(&report.steps)?;
    row.last_checked_at = now;
    row.updated_at = now;
    let stored = row.clone();
    if !ctx
        .db_write(move |conn| db::instances::update_if_unchanged(conn, &stored, seen_at))
        .await?
    {
        find(ctx, name).await?;
        return Err(ServiceError::Conflict(format!(
            "the instance {name:?} was changed by someone else meanwhile: read it again and retry"
        )));
    }
    tracing::info!(instance.name = %row.name, "instance changed");
    ctx.audit
        .record(AuditEvent::new("instance_changed", actor).instance(&row.name))
        .await;
    to_instance(ctx, row)
}

/// Runs the checks again and records the outcome; a failure is reported, not an error.
pub async fn check(ctx: &Context, name: &str) -> Result<(CheckReport, Instance), ServiceError> {
    let row = find(ctx, name).await?;
    let base_url = BaseUrl::parse(&row.base_url).context("stored base_url")?;
    let registration = Registration::of(ctx, &row)?;
    let report = check_instance(
        &base_url,
        stored_ca(&row)?.as_ref(),
        &registration.client_to_check(),
        &ctx.outbound,
    )
    .await;
    let steps = encode(&report.steps)?;
    let discovery = report.discovery.as_ref().map(encode).transpose()?;
    let rejected = report
        .failure()
        .is_some_and(|step| step.code.as_deref() == Some(CLIENT_REJECTED));
    let (id, at) = (row.id.clone(), Utc::now().naive_utc());
    ctx.db_write(move |conn| {
        if rejected {
            db::instances::record_client_rejected(conn, &id, at)?;
        }
        db::instances::record_check(conn, &id, &steps, at, discovery.as_deref())
    })
    .await?;
    Ok((report, get(ctx, name).await?))
}

/// Revokes the instance's connections at GitLab, then removes it and them. Nothing is removed
/// while a grant may still live at GitLab.
pub async fn remove(ctx: &Context, name: &str, actor: &str) -> Result<(), ServiceError> {
    let row = find(ctx, name).await?;
    let instance_id = row.id.clone();
    let held = ctx
        .db_read(move |conn| db::connections::for_instance(conn, &instance_id))
        .await?;
    revocation::revoke_all(ctx, held, actor).await?;
    let (instance_id, owned) = (row.id.clone(), name.to_owned());
    ctx.db_write(move |conn| {
        db::connections::delete_for_instance(conn, &instance_id)?;
        db::instances::delete(conn, &owned)
    })
    .await?;
    tracing::info!(instance.name = %name, "instance removed");
    ctx.audit
        .record(AuditEvent::new("instance_removed", actor).instance(name))
        .await;
    Ok(())
}

async fn find(ctx: &Context, name: &str) -> Result<InstanceRow, ServiceError> {
    let owned = name.to_owned();
    ctx.db_read(move |conn| db::instances::find_by_name(conn, &owned))
        .await?
        .ok_or_else(|| not_found(name))
}

async fn passing_check(
    ctx: &Context,
    base_url: &BaseUrl,
    ca: Option<&CaBundle>,
    client: &ClientToCheck<'_>,
) -> Result<CheckReport, ServiceError> {
    let report = check_instance(base_url, ca, client, &ctx.outbound).await;
    if report.failure().is_some() {
        Err(ServiceError::CheckFailed(report.steps))
    } else {
        Ok(report)
    }
}

fn seal_secret(ctx: &Context, row_id: &str, secret: &SecretString) -> Vec<u8> {
    let field = SealedColumn::InstanceClientSecret.of(row_id);
    ctx.sealer.seal(field, secret.expose_secret().as_bytes())
}

fn to_instance(ctx: &Context, row: InstanceRow) -> Result<Instance, ServiceError> {
    let name = InstanceName::parse(&row.name).context("stored instance name")?;
    Ok(Instance {
        redirect_url: ctx.redirect_url(&name),
        base_url: BaseUrl::parse(&row.base_url).context("stored base_url")?,
        ca: stored_ca(&row)?,
        scopes: ScopeSet::from_stored(&row.scopes).context("stored scopes")?,
        discovery: serde_json::from_str(&row.discovery).context("stored discovery")?,
        last_check: LastCheck {
            ok: row.last_check_ok,
            steps: serde_json::from_str(&row.last_check_report).context("stored check report")?,
            at: row.last_checked_at,
        },
        name,
        client_id: row.client_id,
        token_lifetime_seconds: row.token_lifetime_seconds,
        client_rejected_at: row.client_rejected_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn stored_ca(row: &InstanceRow) -> Result<Option<CaBundle>, ServiceError> {
    Ok(row
        .ca_pem
        .as_deref()
        .map(CaBundle::parse)
        .transpose()
        .context("stored CA bundle")?)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, ServiceError> {
    Ok(serde_json::to_string(value).context("encoding a stored value")?)
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no instance is registered under the name {name:?}"))
}

fn already_registered(name: &InstanceName) -> ServiceError {
    ServiceError::Conflict(format!(
        "an instance named {:?} is registered already",
        name.as_str()
    ))
}

fn parse_client_id(value: String) -> Result<String, Invalid> {
    let value = value.trim().to_owned();
    if value.is_empty()
        || value.len() > 255
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::new(
            "must be the application ID GitLab shows: 1 to 255 characters, no spaces",
        ));
    }
    Ok(value)
}

fn parse_client_secret(value: SecretString) -> Result<SecretString, Invalid> {
    let secret = value.expose_secret();
    if secret.trim().is_empty() || secret.len() > 1024 {
        // Never echo the value: the message speaks only of its shape.
        return Err(Invalid::new(
            "must be the application secret GitLab shows (1 to 1024 characters)",
        ));
    }
    Ok(SecretString::from(secret.trim().to_owned()))
}

/// `Some(None)`: no CA (platform roots); `None`: the CA given was refused (error recorded).
fn parse_ca(errors: &mut Vec<FieldError>, pem: Option<String>) -> Option<Option<CaBundle>> {
    match pem.filter(|p| !p.trim().is_empty()) {
        None => Some(None),
        Some(pem) => field(errors, "ca_pem", CaBundle::parse(&pem)).map(Some),
    }
}
