//! A GitLab token for a subject, as a service's policy allows it: the least-privileged
//! connection that covers what is asked, with a token valid long enough, refreshed first when
//! it is not. Handouts give the token to the service; the proxy uses it on the service's behalf.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::handed_token::Credentials;
use super::handout_cache::{HandoutKeyRef, HandoutView, Held};
use super::principal::{self, Service};
use super::refresh::{self, Purpose, RefreshError};
use super::{Context, FieldError, ServiceError};
use crate::config::RefresherSettings;
use crate::db::{self, connections::ConnectionRow, instances::InstanceSummary};
use crate::domain::{ConnectionKind, ConnectionStatus, InstanceName, ScopeSet, Subject};

/// However little a caller asks for, a token handed out lives at least this long.
const MIN_VALIDITY_SECONDS: i64 = 60;

/// What a token is wanted for.
pub(super) struct Wanted<'a> {
    pub instance: &'a InstanceName,
    pub subject: &'a Subject,
    /// `None`: whatever the narrowest connection within policy grants.
    pub scopes: Option<&'a ScopeSet>,
    /// Seconds the token must stay valid; at least `MIN_VALIDITY_SECONDS` whatever is asked.
    pub min_valid_for: i64,
}

/// The service, the instance and the subject's connections there: as remembered, or read in
/// one trip to the database.
pub(super) async fn read_view(
    ctx: &Context,
    service_id: &str,
    instance: &InstanceName,
    subject: &Subject,
) -> Result<Arc<HandoutView>, ServiceError> {
    let wanted = HandoutKeyRef {
        service_id,
        instance: instance.as_str(),
        subject: subject.as_str(),
    };
    if let Some(view) = ctx.handouts.get(&wanted) {
        return Ok(view);
    }
    // Boxed: a handout's future is allocated and moved whole on every request, and the rare
    // trip to the database would make it several times larger.
    Box::pin(read_stored_view(ctx, wanted)).await
}

async fn read_stored_view(
    ctx: &Context,
    wanted: HandoutKeyRef<'_>,
) -> Result<Arc<HandoutView>, ServiceError> {
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

/// Whether the service may use the instance and receive the scopes asked for.
pub(super) fn within_policy(service: &Service, wanted: &Wanted<'_>) -> Result<(), ServiceError> {
    if !service.instances.allows(wanted.instance) {
        return Err(ServiceError::Forbidden {
            code: "instance_not_allowed",
            detail: format!(
                "service {:?} may not use instance {:?}",
                service.name.as_str(),
                wanted.instance.as_str()
            ),
        });
    }
    if let Some(requested) = wanted.scopes {
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
    Ok(())
}

/// The registered instance a view names, or why there is none.
pub(super) fn instance_of<'a>(
    view: &'a HandoutView,
    wanted: &Wanted<'_>,
) -> Result<&'a InstanceSummary, ServiceError> {
    view.instance.as_ref().ok_or_else(|| {
        ServiceError::NotConnected(format!(
            "no instance is registered under the name {}",
            wanted.instance
        ))
    })
}

/// A token from the narrowest connection that covers `wanted`, refreshed first if it would not
/// stay valid long enough. The service's policy is checked by the caller.
pub(super) async fn fresh_token(
    ctx: &Context,
    view: &HandoutView,
    service: &Service,
    wanted: &Wanted<'_>,
) -> Result<Arc<Credentials>, ServiceError> {
    let instance = instance_of(view, wanted)?;
    let subject = wanted.subject;
    let held = choose(service, subject, &instance.name, &view.held, wanted.scopes)?;
    let chosen = &held.row;

    let need = TimeDelta::seconds(wanted.min_valid_for.max(MIN_VALIDITY_SECONDS));
    // Asking more than a token of this lifetime can give would refresh in vain (and every
    // refresh ends the tokens handed out before it), unless the token is due anyway: its
    // successor may live longer, if GitLab's administrator lengthened the lifetime.
    if Utc::now().naive_utc() < chosen.refresh_due_at {
        beyond_lifetime(&ctx.refresher, chosen, need)?;
    }
    let need_until = Utc::now().naive_utc() + need;
    if chosen.rotation_impossible {
        expiring_without_rotation(chosen, need_until, subject.as_str(), &instance.name)?;
    }
    if refresh::satisfies(&ctx.refresher, chosen, need_until, Purpose::Handout) {
        let expires_at = refresh::valid_until(&ctx.refresher, chosen);
        return Ok(held.credentials(&ctx.sealer, expires_at, instance)?);
    }
    // Boxed, as the trip to the database is in `read_view`.
    let refresh = refresh::ensure_fresh(ctx, chosen.clone(), need_until, Purpose::Handout);
    let refreshed = Box::pin(refresh)
        .await
        .map_err(|e| refresh_failure(e, subject.as_str(), &instance.name))?;
    beyond_lifetime(&ctx.refresher, &refreshed, need)?;
    let expires_at = refresh::valid_until(&ctx.refresher, &refreshed);
    let scopes = held.granted.clone();
    let handed = Credentials::open(&ctx.sealer, &refreshed, expires_at, scopes, instance)?;
    Ok(Arc::new(handed))
}

/// After GitLab refused a token labgate still counts as valid (revoked early, or dead before
/// its recorded expiry): a refresh now, through the usual single flight, unless one has
/// already replaced that token by the time the lease is taken. An access token is never
/// rotated for this.
pub(super) async fn replace_refused(
    ctx: &Context,
    connection_id: &str,
    instance: &str,
) -> Result<(), ServiceError> {
    let id = connection_id.to_owned();
    let row = ctx
        .db_read(move |conn| db::connections::find(conn, &id))
        .await?
        .ok_or_else(|| ServiceError::NotConnected("the connection is gone".into()))?;
    if row.kind == ConnectionKind::AccessToken {
        // GitLab refuses an access token that was revoked, or rotated by someone else who
        // holds it: rotating it now would present a dead token, and GitLab revokes the whole
        // family of a token rotated twice. The retry uses the token as stored now (one that a
        // rotation by labgate stored meanwhile included).
        return Ok(());
    }
    // Beyond what the refused token can give: only a newer token satisfies it.
    let need_until = refresh::valid_until(&ctx.refresher, &row) + TimeDelta::seconds(1);
    let subject = row.subject.clone();
    refresh::ensure_fresh(ctx, row, need_until, Purpose::Handout)
        .await
        .map(drop)
        .map_err(|e| refresh_failure(e, &subject, instance))
}

/// A failed refresh, as the caller of a handout or the proxy hears it.
fn refresh_failure(error: RefreshError, subject: &str, instance: &str) -> ServiceError {
    match error {
        RefreshError::Reauthorization(reason) => ServiceError::ReauthorizationRequired(format!(
            "{subject}'s connection on {instance} needs the person to connect again ({reason})"
        )),
        RefreshError::Unavailable {
            retry_after,
            reason,
        } => ServiceError::GitLabUnavailable {
            detail: format!("GitLab could not refresh the token: {reason}"),
            retry_after: retry_after.max(Duration::from_secs(1)),
        },
        RefreshError::Gone => {
            ServiceError::NotConnected(format!("{subject} is not connected to {instance}"))
        }
        RefreshError::CannotRotate => ServiceError::ReauthorizationRequired(format!(
            "{subject}'s access token on {instance} cannot rotate itself (it has neither api nor \
             self_rotate) and will not stay valid long enough: give labgate a new token"
        )),
        RefreshError::Storage(e) => e,
    }
}

/// An access token that cannot rotate itself serves until its expiry and no longer: a request
/// for more validity is refused, and once it is (nearly) expired, a new token must be given.
fn expiring_without_rotation(
    row: &ConnectionRow,
    need_until: NaiveDateTime,
    subject: &str,
    instance: &str,
) -> Result<(), ServiceError> {
    let now = Utc::now().naive_utc();
    if need_until <= row.expires_at {
        return Ok(());
    }
    if row.expires_at - now < TimeDelta::seconds(MIN_VALIDITY_SECONDS) {
        return Err(refresh_failure(
            RefreshError::CannotRotate,
            subject,
            instance,
        ));
    }
    let message = format!(
        "this connection's access token expires in {} s and cannot rotate itself; ask for less",
        (row.expires_at - now).num_seconds()
    );
    Err(ServiceError::Invalid(vec![FieldError::new(
        "min_valid_for",
        message,
    )]))
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

/// The narrowest usable connection that covers the request and stays within the service's
/// policy; otherwise the error that says why there is none.
pub(super) fn choose<'a>(
    service: &Service,
    subject: &Subject,
    instance: &str,
    held: &'a [Held],
    requested: Option<&ScopeSet>,
) -> Result<&'a Held, ServiceError> {
    // One pass, nothing collected: this runs at every handout.
    let mut first_covering = None;
    let mut any_within = false;
    let mut narrowest: Option<&Held> = None;
    let covering = held
        .iter()
        .filter(|held| held.row.status != ConnectionStatus::Revoked)
        .filter(|held| requested.is_none_or(|wanted| held.granted.covers(wanted)));
    for candidate in covering {
        first_covering.get_or_insert(candidate);
        if !candidate.granted.within_policy(&service.scopes) {
            continue;
        }
        any_within = true;
        if candidate.row.status != ConnectionStatus::Active {
            continue;
        }
        let rank = |held: &Held| {
            (
                held.granted.privilege(),
                std::cmp::Reverse(held.row.updated_at),
            )
        };
        // The first of equals wins, as `min_by_key` would have it.
        if narrowest.is_none_or(|best| rank(candidate) < rank(best)) {
            narrowest = Some(candidate);
        }
    }
    let Some(first_covering) = first_covering else {
        let what = requested.map(|s| format!(" with {s}")).unwrap_or_default();
        return Err(ServiceError::NotConnected(format!(
            "{subject} has no connection on {instance}{what}: send them a connect link"
        )));
    };
    if !any_within {
        return Err(ServiceError::Forbidden {
            code: "scope_not_allowed",
            detail: format!(
                "{subject}'s connection on {instance} grants {}, more than service {:?} may receive",
                first_covering.granted,
                service.name.as_str()
            ),
        });
    }
    narrowest.ok_or_else(|| {
        ServiceError::ReauthorizationRequired(format!(
            "{subject}'s connection on {instance} needs the person to connect again"
        ))
    })
}
