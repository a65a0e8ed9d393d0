//! Handing out credentials: the service's own token checked, then a GitLab token for the
//! subject as its policy allows (`gitlab_token`), audited.

use std::sync::Arc;

use super::audit::AuditEvent;
use super::gitlab_token::{self, Wanted};
use super::principal::{self, VerifiedToken};
use super::{Context, FieldError, ServiceError, field, required};
use crate::domain::{InstanceName, ScopeSet, Subject};

pub use super::handed_token::Credentials;

const MAX_MIN_VALID_FOR_SECONDS: i64 = 3600;

/// What a service asks for, as typed.
#[derive(Debug, Default)]
pub struct CredentialsForm {
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub min_valid_for: Option<i64>,
}

/// Hands a token to the service `token` speaks for. The service, the instance and the subject's
/// connections come from memory, or from one trip to the database; a fresh token needs no more.
pub async fn hand_out(
    ctx: &Context,
    token: &VerifiedToken,
    form: CredentialsForm,
) -> Result<Arc<Credentials>, ServiceError> {
    let mut registered = None;
    let result = hand_out_checked(ctx, token, form, &mut registered).await;
    // Labels only ever name registered instances: request text must not grow the metrics.
    let instance_name = registered.as_deref().unwrap_or("unknown");
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

/// `registered` learns the instance's name as soon as it is known to be registered, so that a
/// refused handout is counted under it.
async fn hand_out_checked(
    ctx: &Context,
    token: &VerifiedToken,
    form: CredentialsForm,
    registered: &mut Option<String>,
) -> Result<Arc<Credentials>, ServiceError> {
    let (instance, subject, requested, min_valid_for) = match parse(form) {
        Ok(parsed) => parsed,
        // Who is asking comes first: a deleted service learns nothing about its input.
        Err(invalid) => {
            Box::pin(principal::admit_stored(ctx, token)).await?;
            return Err(invalid);
        }
    };
    let view = gitlab_token::read_view(ctx, token.service_id(), &instance, &subject).await?;
    if view.instance.is_some() {
        *registered = Some(instance.as_str().to_owned());
    }
    let service = principal::admit(token, view.service.as_ref())?;
    token.binding().allows(&subject)?;
    let wanted = Wanted {
        instance: &instance,
        subject: &subject,
        scopes: requested.as_ref(),
        min_valid_for,
    };
    gitlab_token::within_policy(service, &wanted)?;
    let handed = gitlab_token::fresh_token(ctx, &view, service, &wanted).await?;
    let event = AuditEvent::new("handout", &service.actor)
        .instance(&handed.instance)
        .subject(subject.into_string())
        .connection(&handed.connection_id)
        .scopes(&handed.scopes_text);
    ctx.audit.record(event).await;
    Ok(handed)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<'a, F, Fut>(_: F) -> usize
    where
        F: FnOnce(&'a Context, &'a VerifiedToken, CredentialsForm) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// actix allocates and moves a handler's future whole for every request: the rare trips
    /// to the database and to GitLab stay boxed, out of it (they made it 3,088 bytes).
    #[test]
    fn a_handouts_future_leaves_the_rare_paths_out() {
        let size = future_size(hand_out);
        assert!(size <= 1024, "hand_out's future is {size} bytes");
    }
}
