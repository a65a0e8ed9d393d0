//! Connections that hold a GitLab access token (personal, project or group) given by an
//! administrator or by a service for its own subjects. GitLab is asked about the token
//! before anything is stored; the token is sealed like every token and never shown again.

use secrecy::{ExposeSecret, SecretString};

use super::audit::AuditEvent;
use super::connections::{self, ConnectionView, GrantKey, HeldGrant};
use super::gitlab_token::{self, Wanted};
use super::principal::{Service, SubjectBinding, to_service};
use super::registration::Registration;
use super::{Context, FieldError, ServiceError, required, revocation};
use crate::db::{self, connections::ConnectionRow};
use crate::domain::{ConnectionKind, InstanceName, Invalid, ScopeSet, ServiceName, Subject};
use crate::oauth::{
    AccessTokenInfo, Described, OwnerAnswer, TokenOwner, access_token_owner, describe_access_token,
};

/// GitLab's tokens are a few dozen characters; anything this long is not one.
const MAX_TOKEN_LENGTH: usize = 1024;

/// Who gives the token: an administrator (for any service, named in the form), or a service
/// for its own subjects.
pub enum Giver<'a> {
    Admin { actor: &'a str },
    Service(&'a Service, &'a SubjectBinding),
}

/// The request as typed.
#[derive(Default)]
pub struct AccessTokenForm {
    /// Which service the connection is for: the administrator names it; a service may not.
    pub service: Option<String>,
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub access_token: Option<SecretString>,
}

struct Parsed {
    service: Option<ServiceName>,
    instance: InstanceName,
    subject: Subject,
    token: SecretString,
}

/// Checks the token with GitLab (`/personal_access_tokens/self`, `/user`) and stores it as an
/// `access_token` connection of (service, instance, subject, the token's scopes). A connection
/// already held for that key is replaced, and its old grant revoked at GitLab.
pub async fn add(
    ctx: &Context,
    giver: Giver<'_>,
    form: AccessTokenForm,
) -> Result<ConnectionView, ServiceError> {
    let parsed = parse(form, matches!(giver, Giver::Admin { .. }))?;
    let (service, actor) = match giver {
        Giver::Admin { actor } => {
            let name = parsed.service.as_ref().map_or("", ServiceName::as_str);
            (service_named(ctx, name).await?, actor.to_owned())
        }
        Giver::Service(service, binding) => {
            binding.allows(&parsed.subject)?;
            (service.clone(), service.actor.to_string())
        }
    };
    let wanted = Wanted {
        instance: &parsed.instance,
        subject: &parsed.subject,
        scopes: None,
        min_valid_for: 0,
    };
    gitlab_token::within_policy(&service, &wanted)?;
    let name = parsed.instance.as_str().to_owned();
    let instance = ctx
        .db_read(move |conn| db::instances::find_by_name(conn, &name))
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "no instance is registered under the name {}",
                parsed.instance
            ))
        })?;
    let registration = Registration::of(ctx, &instance)?;
    let http = registration
        .http_client(ctx)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    let (info, owner) = ask_gitlab(&http, &instance.base_url, &parsed.token).await?;
    let scopes = ScopeSet::granted(&info.scopes);
    let beyond = scopes.beyond_policy(&service.scopes);
    if !beyond.is_empty() {
        return Err(ServiceError::Forbidden {
            code: "scope_not_allowed",
            detail: format!(
                "the token carries {}, more than service {:?} may receive: give a narrower token",
                beyond.join(", "),
                service.name.as_str()
            ),
        });
    }
    let key = GrantKey {
        service_id: &service.id,
        instance_id: &instance.id,
        instance_name: &instance.name,
        subject: parsed.subject.as_str(),
    };
    refuse_second_holder(ctx, &key, &scopes, &info.id).await?;
    let grant = HeldGrant {
        kind: ConnectionKind::AccessToken,
        access_token: parsed.token,
        refresh_token: SecretString::from(String::new()),
        life: info.life,
        scopes: scopes.clone(),
        user_id: owner.user_id.clone(),
        username: owner.username.clone(),
        access_token_id: Some(info.id.clone()),
        rotation_impossible: !info.can_rotate(),
    };
    let stored = connections::store_grant(ctx, key, grant).await?;
    let kind = match stored.replaced {
        Some(old) => {
            revocation::revoke_replaced(&registration, &http, &instance, old).await;
            "connection_reconnected"
        }
        None => "connection_created",
    };
    let event = AuditEvent::new(kind, actor)
        .instance(&instance.name)
        .subject(parsed.subject.as_str())
        .connection(&stored.connection_id)
        .scopes(scopes.to_string())
        .detail(format!(
            "access token {} of GitLab user @{}, expires {}",
            info.id,
            owner.username,
            info.life.expires_at.date()
        ));
    ctx.audit.record(event).await;
    connections::view(ctx, &stored.connection_id).await
}

/// What GitLab says the token is, and whose it is (the username stays empty for a token that
/// may not read its user); a token GitLab refuses is `TokenRejected`.
async fn ask_gitlab(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Result<(AccessTokenInfo, TokenOwner), ServiceError> {
    let unavailable = |detail: String| ServiceError::GitLabUnavailable {
        detail,
        retry_after: std::time::Duration::from_secs(30),
    };
    let info = match describe_access_token(http, base_url, token).await {
        Ok(Described::Live(info)) => info,
        Ok(Described::Rejected) => return Err(rejected()),
        Ok(Described::NotAnAccessToken) => {
            return Err(ServiceError::TokenRejected(
                "GitLab says this is not an access token (an OAuth token?): people connect \
                 their accounts through connect links instead; nothing was stored"
                    .into(),
            ));
        }
        Err(e) => return Err(unavailable(e)),
    };
    let owner = match access_token_owner(http, base_url, token)
        .await
        .map_err(unavailable)?
    {
        OwnerAnswer::Named(owner) => owner,
        // A git-only token: its user's id is known, its username is not.
        OwnerAnswer::NotReadable => TokenOwner {
            user_id: info.user_id.clone(),
            username: String::new(),
        },
        OwnerAnswer::Rejected => return Err(rejected()),
    };
    Ok((info, owner))
}

/// One token, one connection: two holders would each rotate it, and GitLab revokes the whole
/// family of a token rotated twice. Only the connection of this very key may hold it already.
async fn refuse_second_holder(
    ctx: &Context,
    key: &GrantKey<'_>,
    scopes: &ScopeSet,
    token_id: &str,
) -> Result<(), ServiceError> {
    let (instance_id, token_id) = (key.instance_id.to_owned(), token_id.to_owned());
    let holders = ctx
        .db_read(move |conn| db::connections::holding_access_token(conn, &instance_id, &token_id))
        .await?;
    let scopes = scopes.to_string();
    let this_key = |row: &ConnectionRow| {
        row.service_id == key.service_id && row.subject == key.subject && row.scopes == scopes
    };
    match holders.iter().find(|row| !this_key(row)) {
        Some(other) => Err(ServiceError::Conflict(format!(
            "connection {} already holds this access token: one token, one connection (each \
             would rotate it, and GitLab revokes a token family rotated twice)",
            other.id
        ))),
        None => Ok(()),
    }
}

fn rejected() -> ServiceError {
    ServiceError::TokenRejected(
        "GitLab refuses this access token (unknown, revoked or expired): nothing was stored".into(),
    )
}

fn parse(form: AccessTokenForm, by_admin: bool) -> Result<Parsed, ServiceError> {
    let mut errors = Vec::new();
    let service = match (by_admin, form.service) {
        (true, service) => required(&mut errors, "service", service, |v| ServiceName::parse(&v)),
        (false, None) => None,
        (false, Some(_)) => {
            errors.push(FieldError::new(
                "service",
                "is the calling service itself: leave it out",
            ));
            None
        }
    };
    let instance = required(&mut errors, "instance", form.instance, |v| {
        InstanceName::parse(&v)
    });
    let subject = required(&mut errors, "subject", form.subject, |v| Subject::parse(&v));
    let token = required(&mut errors, "access_token", form.access_token, check_token);
    match (instance, subject, token) {
        (Some(instance), Some(subject), Some(token)) if errors.is_empty() => Ok(Parsed {
            service,
            instance,
            subject,
            token,
        }),
        _ => Err(ServiceError::Invalid(errors)),
    }
}

/// A token as GitLab could have issued it: never judged by its prefix, which GitLab lets
/// administrators change, and never repeated in the refusal.
fn check_token(token: SecretString) -> Result<SecretString, Invalid> {
    let text = token.expose_secret();
    if text.is_empty() {
        return Err(Invalid::new("must not be empty"));
    }
    if text.len() > MAX_TOKEN_LENGTH {
        return Err(Invalid::new(format!(
            "is longer than {MAX_TOKEN_LENGTH} characters: not a GitLab token"
        )));
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid::new(
            "holds spaces or characters GitLab tokens never hold",
        ));
    }
    Ok(token)
}

async fn service_named(ctx: &Context, name: &str) -> Result<Service, ServiceError> {
    let looked_up = name.to_owned();
    let row = ctx
        .db_read(move |conn| db::services::find_by_name(conn, &looked_up))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no service is named {name:?}")))?;
    to_service(row)
}
