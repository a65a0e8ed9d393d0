//! Access grants: short-lived tokens (`lgp_…`) a service mints for the proxy, bound to one
//! subject on one instance, to named projects and an access level. The token is shown once and
//! stored as a hash; ending a grant deletes its row, so every process refuses it at its next
//! request.

use anyhow::Context as _;
use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::SecretString;

use super::audit::AuditEvent;
use super::gitlab_token::{self, Wanted};
use super::principal::{self, Service, SubjectBinding, VerifiedToken};
use super::{Context, FieldError, ServiceError, required};
use crate::crypto::{TokenHash, generate_token};
use crate::db::{
    self,
    access_grants::{AccessGrantRow, GrantFilter, NamedGrant},
};
use crate::domain::{
    Access, InstanceName, Page, Paged, ProjectPath, ScopeSet, Subject, created_key,
    parse_created_key,
};

const TOKEN_PREFIX: &str = "lgp_";
const MAX_PROJECTS: usize = 50;
const DEFAULT_TTL_SECONDS: i64 = 900;
const TTL_SECONDS: std::ops::RangeInclusive<i64> = 60..=3600;

/// What a service asks for, as typed.
#[derive(Debug, Default)]
pub struct GrantForm {
    pub instance: Option<String>,
    pub subject: Option<String>,
    pub projects: Option<Vec<String>>,
    pub access: Option<String>,
    pub ttl: Option<i64>,
}

/// A grant as answers and pages show it: never its token.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub id: String,
    pub service_id: String,
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub projects: Vec<ProjectPath>,
    pub access: Access,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl AccessGrant {
    pub fn names(&self, project: &ProjectPath) -> bool {
        self.projects.contains(project)
    }
}

/// Which live grants to list: of one instance, one subject, or all.
#[derive(Debug, Default)]
pub struct GrantQuery {
    pub instance: Option<String>,
    pub subject: Option<String>,
    /// One page; every live grant when `None`.
    pub page: Option<Page>,
}

/// Who ends a grant: an administrator, or the service that made it (with a token that may be
/// bound to one subject).
pub enum GrantOwner<'a> {
    /// An administrator, named as audit events name them (`admin:token`, `admin:alice`).
    Admin(&'a str),
    Service(&'a Service, &'a SubjectBinding),
}

/// Mints a grant for the service `token` speaks for, within its policy, for a subject who has
/// a connection that can do what the grant allows.
pub async fn create(
    ctx: &Context,
    token: &VerifiedToken,
    form: GrantForm,
) -> Result<(AccessGrant, SecretString), ServiceError> {
    let parsed = parse(form);
    let service = principal::admit_stored(ctx, token).await?;
    let (instance, subject, projects, access, ttl) = parsed?;
    token.binding().allows(&subject)?;
    let wanted = Wanted {
        instance: &instance,
        subject: &subject,
        scopes: None,
        min_valid_for: 0,
    };
    gitlab_token::within_policy(&service, &wanted)?;
    within_project_policy(&service, &projects, access)?;
    let view = gitlab_token::read_view(ctx, &service.id, &instance, &subject).await?;
    let instance_row = gitlab_token::instance_of(&view, &wanted)?;
    able_to(&service, &subject, &instance, &view.held, access)?;

    let secret = generate_token(TOKEN_PREFIX);
    let now = Utc::now().naive_utc();
    let row = AccessGrantRow {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: TokenHash::of_secret(&secret).to_hex(),
        service_id: service.id.clone(),
        instance_id: instance_row.id.clone(),
        subject: subject.as_str().to_owned(),
        projects: projects
            .iter()
            .map(ProjectPath::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        access: access.to_string(),
        created_at: now,
        expires_at: now + TimeDelta::seconds(ttl),
    };
    let stored = row.clone();
    ctx.db_write(move |conn| db::access_grants::insert(conn, &stored))
        .await?;
    let event = AuditEvent::new("access_grant_created", &service.actor)
        .instance(&instance_row.name)
        .subject(subject.as_str())
        .detail(format!("grant {} {access} {}", row.id, row.projects));
    ctx.audit.record(event).await;
    let grant = to_grant(NamedGrant {
        grant: row,
        service_name: service.name.to_string(),
        instance_name: instance_row.name.clone(),
    })?;
    Ok((grant, secret))
}

/// Ends a grant at once. A service may end only its own; another's is "not found" to it.
pub async fn end(ctx: &Context, by: GrantOwner<'_>, id: &str) -> Result<(), ServiceError> {
    let owned = id.to_owned();
    let found = ctx
        .db_read(move |conn| db::access_grants::find(conn, &owned))
        .await?
        .filter(|found| match &by {
            GrantOwner::Admin(_) => true,
            GrantOwner::Service(service, _) => found.grant.service_id == service.id,
        })
        .ok_or_else(|| ServiceError::NotFound(format!("no access grant has the id {id:?}")))?;
    if let GrantOwner::Service(_, binding) = &by {
        binding.allows(&Subject::parse(&found.grant.subject).context("stored subject")?)?;
    }
    let owned = id.to_owned();
    ctx.db_write(move |conn| db::access_grants::delete(conn, &owned))
        .await?;
    let actor = match by {
        GrantOwner::Admin(actor) => actor.to_owned(),
        GrantOwner::Service(service, _) => service.actor.to_string(),
    };
    let event = AuditEvent::new("access_grant_revoked", actor)
        .instance(&found.instance_name)
        .subject(&found.grant.subject)
        .detail(format!("grant {id}"));
    ctx.audit.record(event).await;
    Ok(())
}

/// Ends, at once, the service's live grants its (just narrowed) policy no longer covers: an
/// instance it may no longer use, a project outside its patterns, access above its maximum.
/// Returns how many ended.
pub(super) async fn end_outside_policy(
    ctx: &Context,
    service: &Service,
    actor: &str,
) -> Result<usize, ServiceError> {
    let filter = GrantFilter {
        instance: None,
        subject: None,
        service_id: Some(service.id.clone()),
        after: None,
        limit: None,
    };
    let now = Utc::now().naive_utc();
    let live = ctx
        .db_read(move |conn| db::access_grants::list(conn, &filter, now))
        .await?;
    let mut ended = 0;
    for named in live {
        let grant = to_grant(named)?;
        let instance_allowed =
            InstanceName::parse(&grant.instance).is_ok_and(|name| service.instances.allows(&name));
        if instance_allowed && within_project_policy(service, &grant.projects, grant.access).is_ok()
        {
            continue;
        }
        let id = grant.id.clone();
        ctx.db_write(move |conn| db::access_grants::delete(conn, &id))
            .await?;
        let event = AuditEvent::new("access_grant_revoked", actor)
            .instance(&grant.instance)
            .subject(&grant.subject)
            .detail(format!(
                "grant {}: outside the service's narrowed policy",
                grant.id
            ));
        ctx.audit.record(event).await;
        ended += 1;
    }
    Ok(ended)
}

/// Live grants, newest first; one page of them when the query asks for one.
pub async fn list(ctx: &Context, query: GrantQuery) -> Result<Paged<AccessGrant>, ServiceError> {
    let now = Utc::now().naive_utc();
    let after = query
        .page
        .as_ref()
        .and_then(|page| page.after.as_deref())
        .map(parse_created_key)
        .transpose()
        .map_err(|e| ServiceError::Invalid(vec![FieldError::new("cursor", e.0)]))?;
    let limit = query.page.as_ref().map(|page| page.limit);
    let filter = GrantFilter {
        instance: query.instance,
        subject: query.subject,
        service_id: None,
        after,
        // One more than the page: it only says whether another page follows.
        limit: limit.map(|n| n + 1),
    };
    let grants = ctx
        .db_read(move |conn| db::access_grants::list(conn, &filter, now))
        .await?
        .into_iter()
        .map(to_grant)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::of(
        grants,
        limit.unwrap_or(i64::MAX),
        |grant: &AccessGrant| created_key(grant.created_at, &grant.id),
    ))
}

/// The live grant a presented token stands for.
pub(super) async fn by_token(ctx: &Context, presented: &str) -> Result<AccessGrant, ServiceError> {
    let refused = || {
        ServiceError::Unauthenticated(
            "the access grant token is unknown, expired or revoked".into(),
        )
    };
    if !presented.starts_with(TOKEN_PREFIX) {
        return Err(refused());
    }
    let (hash, now) = (TokenHash::of(presented).to_hex(), Utc::now().naive_utc());
    ctx.db_read(move |conn| db::access_grants::live_by_token_hash(conn, &hash, now))
        .await?
        .map(to_grant)
        .transpose()?
        .ok_or_else(refused)
}

/// A grant never reaches beyond what the service may ever be granted.
pub(super) fn within_project_policy(
    service: &Service,
    projects: &[ProjectPath],
    access: Access,
) -> Result<(), ServiceError> {
    let outside: Vec<&str> = projects
        .iter()
        .filter(|p| !service.projects.allows(p))
        .map(ProjectPath::as_str)
        .collect();
    if !outside.is_empty() {
        return Err(ServiceError::Forbidden {
            code: "outside_policy",
            detail: format!(
                "service {:?} may not be granted {} (its projects: {})",
                service.name.as_str(),
                outside.join(", "),
                service.projects
            ),
        });
    }
    if !service.max_access.covers(access) {
        return Err(ServiceError::Forbidden {
            code: "outside_policy",
            detail: format!(
                "service {:?} may be granted at most {} access",
                service.name.as_str(),
                service.max_access
            ),
        });
    }
    Ok(())
}

/// The scopes a connection needs for git and for the API at an access level: a grant is
/// refused when the subject has no connection that can do either.
pub(super) fn scopes_for(access: Access) -> [(&'static str, ScopeSet); 2] {
    let one = |scope: &str| ScopeSet::granted([scope]);
    match access {
        Access::Read => [("git", one("read_repository")), ("API", one("read_api"))],
        Access::Write => [("git", one("write_repository")), ("API", one("api"))],
    }
}

fn able_to(
    service: &Service,
    subject: &Subject,
    instance: &InstanceName,
    held: &[super::handout_cache::Held],
    access: Access,
) -> Result<(), ServiceError> {
    let mut first_refusal = None;
    for (_, scopes) in scopes_for(access) {
        match gitlab_token::choose(service, subject, instance.as_str(), held, Some(&scopes)) {
            Ok(_) => return Ok(()),
            Err(refused) => {
                first_refusal.get_or_insert(refused);
            }
        }
    }
    Err(match first_refusal {
        Some(ServiceError::NotConnected(_)) | None => ServiceError::NotConnected(format!(
            "{subject} has no connection on {instance} that can {} repositories or the API \
             (needs {}): send them a connect link",
            if access == Access::Write {
                "write"
            } else {
                "read"
            },
            scopes_for(access)
                .iter()
                .map(|(_, s)| s.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
        Some(other) => other,
    })
}

type Parsed = (InstanceName, Subject, Vec<ProjectPath>, Access, i64);

fn parse(form: GrantForm) -> Result<Parsed, ServiceError> {
    let mut errors = Vec::new();
    let instance = required(&mut errors, "instance", form.instance, |v| {
        InstanceName::parse(&v)
    });
    let subject = required(&mut errors, "subject", form.subject, |v| Subject::parse(&v));
    let projects = required(&mut errors, "projects", form.projects, |list| {
        if list.is_empty() || list.len() > MAX_PROJECTS {
            return Err(crate::domain::Invalid(format!(
                "must name 1 to {MAX_PROJECTS} projects by full path"
            )));
        }
        let mut parsed = list
            .iter()
            .map(|p| ProjectPath::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.dedup();
        Ok(parsed)
    });
    let access = required(&mut errors, "access", form.access, |v| Access::parse(&v));
    let ttl = form.ttl.unwrap_or(DEFAULT_TTL_SECONDS);
    if !TTL_SECONDS.contains(&ttl) {
        let message = format!(
            "must be a number of seconds from {} to {}",
            TTL_SECONDS.start(),
            TTL_SECONDS.end()
        );
        errors.push(FieldError::new("ttl", message));
    }
    match (instance, subject, projects, access) {
        (Some(instance), Some(subject), Some(projects), Some(access)) if errors.is_empty() => {
            Ok((instance, subject, projects, access, ttl))
        }
        _ => Err(ServiceError::Invalid(errors)),
    }
}

fn to_grant(named: NamedGrant) -> Result<AccessGrant, ServiceError> {
    use anyhow::Context as _;
    let NamedGrant {
        grant,
        service_name,
        instance_name,
    } = named;
    Ok(AccessGrant {
        projects: grant
            .projects
            .split_whitespace()
            .map(ProjectPath::parse)
            .collect::<Result<_, _>>()
            .context("stored grant projects")?,
        access: Access::parse(&grant.access).context("stored grant access")?,
        id: grant.id,
        service_id: grant.service_id,
        service: service_name,
        instance: instance_name,
        subject: grant.subject,
        created_at: grant.created_at,
        expires_at: grant.expires_at,
    })
}
