//! Handing out credentials: the least-privileged connection that covers the request, with a
//! token valid long enough, refreshed first when it is not.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::SecretString;

use super::audit::AuditEvent;
use super::connection_tokens::{TokenKind, open_token};
use super::handout_cache::{HandoutKeyRef, HandoutView, Held};
use super::principal::{self, Service, VerifiedToken};
use super::refresh::{self, Purpose, RefreshError};
use super::{Context, FieldError, ServiceError, field, required};
use crate::config::RefresherSettings;
use crate::db::{self, connections::ConnectionRow};
use crate::domain::{ConnectionStatus, InstanceName, ScopeSet, Subject};

/// However little a caller asks for, a token handed out lives at least this long.
const MIN_VALIDITY_SECONDS: i64 = 60;
const MAX_MIN_VALID_FOR_SECONDS: i64 = 3600;

/// What a service asks for, as typed.
#[derive(Debug, Default)]
pub struct CredentialsForm {
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub min_valid_for: Option<i64>,
}

pub struct Credentials {
    pub access_token: SecretString,
    pub expires_at: NaiveDateTime,
    pub scopes: ScopeSet,
    pub connection_id: String,
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    pub instance: String,
    pub base_url: String,
}

/// Hands a token to the service `token` speaks for. The service, the instance and the subject's
/// connections come from memory, or from one trip to the database; a fresh token needs no more.
pub async fn hand_out(
    ctx: &Context,
    token: &VerifiedToken,
    form: CredentialsForm,
) -> Result<Credentials, ServiceError> {
    let result = hand_out_checked(ctx, token, form).await;
    // Labels only ever name registered instances: request text must not grow the metrics.
    let instance_name = match &result {
        Ok(handed) => handed.instance.as_str(),
        Err(_) => "unknown",
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ServiceError::NotConnected(_)) => "not_connected",
        Err(ServiceError::ReauthorizationRequired(_)) => "reauthorization_required",
        Err(ServiceError::GitLabUnavailable { .. }) => "unavailable",
        Err(ServiceError::Forbidden { .. }) => "forbidden",
        Err(ServiceError::Invalid(_)) => "invalid",
        Err(ServiceError::Unauthenticated(_)) => "unauthenticated",
        Err(_) => "error",
    };
    ctx.metrics.handout(instance_name, outcome);
    result
}

async fn hand_out_checked(
    ctx: &Context,
    token: &VerifiedToken,
    form: CredentialsForm,
) -> Result<Credentials, ServiceError> {
    let (instance_name, subject, requested, min_valid_for) = match parse(form) {
        Ok(parsed) => parsed,
        // Who is asking comes first: a deleted service learns nothing about its input.
        Err(invalid) => {
            principal::admit_stored(ctx, token).await?;
            return Err(invalid);
        }
    };
    let view = read_view(ctx, token, &instance_name, &subject).await?;
    let service = principal::admit(token, view.service.as_ref())?;
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
    if let Some(requested) = &requested {
        let beyond = requested.beyond_policy(&service.scopes);
        if !beyond.is_empty() {
            return Err(ServiceError::Forbidden {
                code: "scope_not_allowed",
                detail: format!(
                    "service {:?} may not receive {}",
                    service.name.as_str(),
                    beyond.join(", ")
                ),
            });
        }
    }
    let instance = view.instance.as_ref().ok_or_else(|| {
        ServiceError::NotConnected(format!(
            "no instance is registered under the name {instance_name}"
        ))
    })?;
    let Held {
        row: chosen,
        granted: scopes,
    } = choose(
        service,
        &subject,
        &instance.name,
        &view.held,
        requested.as_ref(),
    )?;

    let need = TimeDelta::seconds(min_valid_for.max(MIN_VALIDITY_SECONDS));
    // Asking more than a token of this lifetime can give would refresh in vain (and every
    // refresh ends the tokens handed out before it), unless the token is due anyway: its
    // successor may live longer, if GitLab's administrator lengthened the lifetime.
    if Utc::now().naive_utc() < chosen.refresh_due_at {
        beyond_lifetime(&ctx.refresher, chosen, need)?;
    }
    let need_until = Utc::now().naive_utc() + need;
    let refreshed;
    let row = if refresh::satisfies(&ctx.refresher, chosen, need_until, Purpose::Handout) {
        chosen
    } else {
        refreshed = refresh::ensure_fresh(ctx, chosen.clone(), need_until, Purpose::Handout)
            .await
            .map_err(|e| match e {
                RefreshError::Reauthorization(reason) => {
                    ServiceError::ReauthorizationRequired(format!(
                        "{subject}'s connection on {} needs the person to connect again ({reason})",
                        instance.name
                    ))
                }
                RefreshError::Unavailable {
                    retry_after,
                    reason,
                } => ServiceError::GitLabUnavailable {
                    detail: format!("GitLab could not refresh the token: {reason}"),
                    retry_after: retry_after.max(Duration::from_secs(1)),
                },
                RefreshError::Gone => ServiceError::NotConnected(format!(
                    "{subject} is not connected to {}",
                    instance.name
                )),
                RefreshError::Storage(e) => e,
            })?;
        beyond_lifetime(&ctx.refresher, &refreshed, need)?;
        &refreshed
    };
    let access_token = open_token(&ctx.sealer, row, TokenKind::Access)?;
    let valid_until = refresh::valid_until(&ctx.refresher, row);
    let event = AuditEvent::new("handout", format!("service:{}", service.name))
        .instance(&instance.name)
        .subject(subject.as_str())
        .connection(&row.id)
        .scopes(scopes);
    ctx.audit.record(event).await;
    Ok(Credentials {
        access_token,
        expires_at: valid_until,
        scopes: scopes.clone(),
        connection_id: row.id.clone(),
        gitlab_user_id: row.gitlab_user_id.clone(),
        gitlab_username: row.gitlab_username.clone(),
        instance: instance.name.clone(),
        base_url: instance.base_url.clone(),
    })
}

/// Refuses a validity that no token of this connection can be promised: GitLab issues it
/// tokens of a set lifetime, and the refresher rotates them before they expire.
fn beyond_lifetime(
    refresher: &RefresherSettings,
    row: &ConnectionRow,
    need: TimeDelta,
) -> Result<(), ServiceError> {
    let longest = refresh::longest_promise(refresher, row);
    if need <= longest {
        return Ok(());
    }
    let message = format!(
        "GitLab issues this connection's tokens for {} s, so at most {} s of validity can be \
         promised; ask for less",
        (row.expires_at - row.token_issued_at).num_seconds(),
        longest.num_seconds().max(0)
    );
    Err(ServiceError::Invalid(vec![FieldError::new(
        "min_valid_for",
        message,
    )]))
}

/// The service, the instance and the subject's connections there: as remembered, or read in
/// one trip to the database.
async fn read_view(
    ctx: &Context,
    token: &VerifiedToken,
    instance: &InstanceName,
    subject: &Subject,
) -> Result<Arc<HandoutView>, ServiceError> {
    let wanted = HandoutKeyRef {
        service_id: token.service_id(),
        instance: instance.as_str(),
        subject: subject.as_str(),
    };
    if let Some(view) = ctx.handouts.get(&wanted) {
        return Ok(view);
    }
    let key = wanted.to_key();
    let generation = ctx.handouts.generation();
    let read = key.clone();
    let (service, instance, held) = ctx
        .db_read(move |conn| {
            let service = db::services::find_by_id(conn, &read.service_id)?;
            let instance = db::instances::summary_by_name(conn, &read.instance)?;
            let held = match &instance {
                Some(instance) => db::connections::for_subject(
                    conn,
                    &read.service_id,
                    &instance.id,
                    &read.subject,
                )?,
                None => Vec::new(),
            };
            Ok((service, instance, held))
        })
        .await?;
    let service = service.map(principal::to_service).transpose()?;
    Ok(ctx
        .handouts
        .remember(key, generation, service, instance, held))
}

/// The narrowest usable connection that covers the request and stays within the service's
/// policy; otherwise the error that says why there is none.
fn choose<'a>(
    service: &Service,
    subject: &Subject,
    instance: &str,
    held: &'a [Held],
    requested: Option<&ScopeSet>,
) -> Result<&'a Held, ServiceError> {
    let covering: Vec<&Held> = held
        .iter()
        .filter(|held| held.row.status != ConnectionStatus::Revoked)
        .filter(|held| requested.is_none_or(|wanted| held.granted.covers(wanted)))
        .collect();
    if covering.is_empty() {
        let what = requested.map(|s| format!(" with {s}")).unwrap_or_default();
        return Err(ServiceError::NotConnected(format!(
            "{subject} has no connection on {instance}{what}: send them a connect link"
        )));
    }
    let (within, beyond): (Vec<_>, Vec<_>) = covering
        .into_iter()
        .partition(|held| held.granted.beyond_policy(&service.scopes).is_empty());
    if within.is_empty() {
        let broad = beyond
            .first()
            .map(|held| held.granted.to_string())
            .unwrap_or_default();
        return Err(ServiceError::Forbidden {
            code: "scope_not_allowed",
            detail: format!(
                "{subject}'s connection on {instance} grants {broad}, more than service {:?} may receive",
                service.name.as_str()
            ),
        });
    }
    match within
        .into_iter()
        .filter(|held| held.row.status == ConnectionStatus::Active)
        .min_by_key(|held| {
            (
                held.granted.privilege(),
                std::cmp::Reverse(held.row.updated_at),
            )
        }) {
        Some(held) => Ok(held),
        None => Err(ServiceError::ReauthorizationRequired(format!(
            "{subject}'s connection on {instance} needs the person to connect again"
        ))),
    }
}

fn parse(
    form: CredentialsForm,
) -> Result<(InstanceName, Subject, Option<ScopeSet>, i64), ServiceError> {
    let mut errors = Vec::new();
    let instance = required(&mut errors, "instance", form.instance, |v| {
        InstanceName::parse(&v)
    });
    let subject = required(&mut errors, "subject", form.subject, |v| Subject::parse(&v));
    // `Some(None)`: no scopes asked for; `None`: the ones asked for were refused.
    let scopes = match form.scopes {
        None => Some(None),
        Some(list) => field(&mut errors, "scopes", ScopeSet::parse(&list)).map(Some),
    };
    let min_valid_for = form.min_valid_for.unwrap_or(0);
    if !(0..=MAX_MIN_VALID_FOR_SECONDS).contains(&min_valid_for) {
        let message = format!("must be a number of seconds from 0 to {MAX_MIN_VALID_FOR_SECONDS}");
        errors.push(FieldError::new("min_valid_for", message));
    }
    match (instance, subject, scopes) {
        (Some(instance), Some(subject), Some(scopes)) if errors.is_empty() => {
            Ok((instance, subject, scopes, min_valid_for))
        }
        _ => Err(ServiceError::Invalid(errors)),
    }
}
