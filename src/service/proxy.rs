//! The proxy's use cases: which grant a presented token stands for, whether it allows a call,
//! the GitLab token to forward it with (from the handout machinery: single-flight refresh,
//! lease, unknown outcomes), and the record of each call. Streaming bytes is the edge's job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use secrecy::ExposeSecret;

use super::access_grants::{self, AccessGrant};
use super::audit::AuditEvent;
use super::gitlab_token::{self, Wanted};
use super::handed_token::Credentials;
use super::principal::{self, Service};
use super::{Context, ServiceError};
use crate::domain::{Access, InstanceName, ProjectPath, ProjectRef, ScopeSet, Subject};
use crate::oauth::{self, ProjectLookup};

/// How long a project id's full path is trusted: a project may be renamed or moved.
const PROJECT_ID_TTL: Duration = Duration::from_secs(60);

/// Scopes with which a token acts beyond its person's own rights: GitLab takes `sudo` from a
/// request's body as well as its query and headers, which labgate does not read.
const ACTING_AS_OTHERS: &[&str] = &["sudo", "admin_mode"];

/// Which door a call came through: git smart HTTP, or the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Git,
    Api,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Api => "api",
        }
    }

    /// The scope a connection needs for this door at this access level (SPEC, "Scoped access").
    fn scope(self, access: Access) -> &'static str {
        match (self, access) {
            (Self::Git, Access::Read) => "read_repository",
            (Self::Git, Access::Write) => "write_repository",
            (Self::Api, Access::Read) => "read_api",
            (Self::Api, Access::Write) => "api",
        }
    }
}

/// Project ids (numeric, or encoded paths) as GitLab resolved them, per instance.
pub struct ProjectIds(Cache<(String, String), (ProjectPath, Instant)>);

impl Default for ProjectIds {
    fn default() -> Self {
        Self(Cache::new(10_000))
    }
}

/// Everything needed to forward one call: the grant, its service as it stands now, and a GitLab
/// token that can do what the call needs. The token never leaves labgate.
pub struct ProxyPass {
    pub grant: AccessGrant,
    service: Service,
    instance_id: String,
    /// The token it forwards with, and what it may do as GitLab granted it.
    pub credentials: Arc<Credentials>,
    pub http: reqwest::Client,
    channel: Channel,
    needs: Access,
}

/// The grant a presented token stands for, if it is live and for `instance`.
pub async fn open_grant(
    ctx: &Context,
    presented: &str,
    instance: &str,
) -> Result<AccessGrant, ServiceError> {
    let grant = access_grants::by_token(ctx, presented).await?;
    if grant.instance != instance {
        return Err(ServiceError::Unauthenticated(format!(
            "this access grant is for instance {:?}, not {instance:?}",
            grant.instance
        )));
    }
    Ok(grant)
}

/// Whether the grant names the project and allows the access (SPEC: `403 outside_grant`).
pub fn within_grant(
    grant: &AccessGrant,
    project: &ProjectPath,
    needs: Access,
) -> Result<(), ServiceError> {
    if !grant.names(project) {
        return Err(outside_grant(format!(
            "this access grant does not name project {project}"
        )));
    }
    if !grant.access.covers(needs) {
        return Err(outside_grant(format!(
            "this access grant allows {} access only",
            grant.access
        )));
    }
    Ok(())
}

fn outside_grant(detail: String) -> ServiceError {
    ServiceError::Forbidden {
        code: "outside_grant",
        detail,
    }
}

/// A GitLab token for the grant's subject that can do `needs` through `channel`, with the
/// service's policy as it stands now (narrowing takes effect at the next call).
pub async fn pass_for(
    ctx: &Context,
    grant: AccessGrant,
    channel: Channel,
    needs: Access,
) -> Result<ProxyPass, ServiceError> {
    let (instance, subject) = stored_names(&grant)?;
    let view = gitlab_token::read_view(ctx, &grant.service_id, &instance, &subject).await?;
    let service = view.service.clone().ok_or_else(|| {
        ServiceError::Unauthenticated("the service that made this access grant is gone".into())
    })?;
    // Rotating the secret retires what the old one bought: its service tokens, and their grants.
    if grant.created_at < service.secret_rotated_at {
        return Err(ServiceError::Unauthenticated(
            "this access grant was made before its service's secret was rotated".into(),
        ));
    }
    let scopes = ScopeSet::granted([channel.scope(needs)]);
    let wanted = Wanted {
        instance: &instance,
        subject: &subject,
        scopes: Some(&scopes),
        min_valid_for: 0,
    };
    gitlab_token::within_policy(&service, &wanted)?;
    let instance_row = gitlab_token::instance_of(&view, &wanted)?;
    let http = ctx
        .clients
        .forwarding_client_for(
            &instance_row.id,
            instance_row.ca_pem.as_deref(),
            &ctx.outbound,
        )
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    let instance_id = instance_row.id.clone();
    let credentials = gitlab_token::fresh_token(ctx, &view, &service, &wanted).await?;
    if let Some(scope) = credentials
        .scopes
        .iter()
        .find(|scope| ACTING_AS_OTHERS.contains(scope))
    {
        return Err(outside_grant(format!(
            "{}'s connection carries the {scope} scope, with which GitLab acts for other users \
             when a request asks it to; labgate never forwards with such a token: connect them \
             without it",
            grant.subject
        )));
    }
    Ok(ProxyPass {
        grant,
        service,
        instance_id,
        credentials,
        http,
        channel,
        needs,
    })
}

impl ProxyPass {
    /// Whether the token may read GitLab's API (to ask which project a path leads to).
    pub fn can_read_api(&self) -> bool {
        self.credentials
            .scopes
            .covers(&ScopeSet::granted(["read_api"]))
    }

    /// Whether the call's project is within the grant, and still within the service's policy.
    pub fn allows(&self, project: &ProjectPath) -> Result<(), ServiceError> {
        within_grant(&self.grant, project, self.needs)?;
        access_grants::within_project_policy(
            &self.service,
            std::slice::from_ref(project),
            self.needs,
        )
    }

    /// What to record about a call made with this pass.
    pub fn record(&self, method: &str, project: Option<&ProjectPath>, path: &str) -> CallRecord {
        CallRecord {
            grant_id: self.grant.id.clone(),
            actor: self.service.actor.clone(),
            instance: self.grant.instance.clone(),
            subject: self.grant.subject.clone(),
            connection_id: Some(self.credentials.connection_id.clone()),
            channel: self.channel,
            method: method.to_owned(),
            project: project.map(ProjectPath::to_string),
            path: path.to_owned(),
        }
    }
}

/// After GitLab refused the pass's token: a newer one, from the database (another process may
/// have rotated it) or, when the database still holds the refused one (revoked early, or
/// expired before its time), from a refresh now. `None` when there is nothing newer to retry
/// with.
pub async fn after_rejection(
    ctx: &Context,
    pass: &ProxyPass,
) -> Result<Option<ProxyPass>, ServiceError> {
    // What this process remembers may predate the rotation: read the database again.
    ctx.handouts.changed();
    let again = pass_for(ctx, pass.grant.clone(), pass.channel, pass.needs).await?;
    if again.credentials.access_token.expose_secret()
        != pass.credentials.access_token.expose_secret()
    {
        return Ok(Some(again));
    }
    gitlab_token::replace_refused(ctx, &again.credentials.connection_id, &pass.grant.instance)
        .await?;
    let fresher = pass_for(ctx, pass.grant.clone(), pass.channel, pass.needs).await?;
    let newer = fresher.credentials.access_token.expose_secret()
        != pass.credentials.access_token.expose_secret();
    Ok(newer.then_some(fresher))
}

/// The full path of the project GitLab will act on for `project` (a numeric id, or a path that
/// may be a renamed project's old one), asked of GitLab with the person's token and remembered
/// a minute; `None` when the person cannot see such a project. If GitLab refuses the token, the
/// pass is replaced by a newer one (`after_rejection`) and GitLab asked once more.
pub async fn resolve(
    ctx: &Context,
    pass: &mut ProxyPass,
    project: &ProjectRef,
) -> Result<Option<ProjectPath>, ServiceError> {
    let id = match project {
        ProjectRef::Id(id) => id.to_string(),
        ProjectRef::Path(path) => path.encoded().to_ascii_lowercase(),
    };
    let key = (pass.instance_id.clone(), id);
    if let Some((path, at)) = ctx.project_ids.0.get(&key)
        && at.elapsed() < PROJECT_ID_TTL
    {
        return Ok(Some(path));
    }
    let mut retried = false;
    let found = loop {
        let timeout = ctx.outbound.request_timeout;
        let lookup = oauth::project_path(
            &pass.http,
            &pass.credentials.base_url,
            &pass.credentials.access_token,
            &key.1,
            timeout,
        )
        .await
        .map_err(|reason| ServiceError::GitLabUnavailable {
            detail: reason,
            retry_after: Duration::from_secs(5),
        })?;
        match lookup {
            ProjectLookup::Found(found) => break found,
            ProjectLookup::Missing => return Ok(None),
            ProjectLookup::TokenRefused if !retried => {
                retried = true;
                match after_rejection(ctx, pass).await? {
                    Some(fresher) => *pass = fresher,
                    None => return Err(token_refused()),
                }
            }
            ProjectLookup::TokenRefused => return Err(token_refused()),
        }
    };
    // A name labgate cannot judge is refused, never guessed at.
    let path = ProjectPath::parse(&found).map_err(|e| {
        outside_grant(format!(
            "GitLab names project {project} {found:?}, which labgate cannot judge: {e}"
        ))
    })?;
    ctx.project_ids
        .0
        .insert(key, (path.clone(), Instant::now()));
    Ok(Some(path))
}

/// The project git will reach at `project`: GitLab serves a renamed project at its old path
/// too. Asked with the pass's token where it may read the API, otherwise with another of the
/// person's connections that may; where none may, git is refused rather than let through
/// unchecked. `None` when GitLab shows the person no such project.
pub async fn resolve_for_git(
    ctx: &Context,
    pass: &mut ProxyPass,
    project: &ProjectPath,
) -> Result<Option<ProjectPath>, ServiceError> {
    let asked = ProjectRef::Path(project.clone());
    if pass.can_read_api() {
        return resolve(ctx, pass, &asked).await;
    }
    let mut asker = pass_for(ctx, pass.grant.clone(), Channel::Api, Access::Read)
        .await
        .map_err(|e| match e {
            ServiceError::NotConnected(_) | ServiceError::Forbidden { .. } => {
                outside_grant(format!(
                    "labgate checks through GitLab's API which project {project} leads to (a \
                     renamed project's old path leads elsewhere), and none of {}'s connections \
                     may read the API: connect them with read_api as well",
                    pass.grant.subject
                ))
            }
            other => other,
        })?;
    resolve(ctx, &mut asker, &asked).await
}

fn token_refused() -> ServiceError {
    ServiceError::GitLabUnavailable {
        detail: "GitLab refused the person's token, and no newer one could be had".into(),
        retry_after: Duration::from_secs(5),
    }
}

/// One proxied call, recorded when its answer has been sent: audited and counted.
pub struct CallRecord {
    grant_id: String,
    actor: Arc<str>,
    instance: String,
    subject: String,
    connection_id: Option<Arc<str>>,
    channel: Channel,
    method: String,
    project: Option<String>,
    path: String,
}

impl CallRecord {
    /// A call refused before any GitLab token was sought (its grant known).
    pub fn refused(grant: &AccessGrant, channel: Channel, method: &str, path: &str) -> Self {
        Self {
            grant_id: grant.id.clone(),
            actor: principal::actor_of(&grant.service).into(),
            instance: grant.instance.clone(),
            subject: grant.subject.clone(),
            connection_id: None,
            channel,
            method: method.to_owned(),
            project: None,
            path: path.to_owned(),
        }
    }

    pub fn with_project(mut self, project: &ProjectPath) -> Self {
        self.project = Some(project.to_string());
        self
    }

    /// Audits and counts the call; `bytes` is the size of the answer's body as sent.
    pub fn finish(self, ctx: &Context, status: u16, bytes: u64) {
        ctx.metrics
            .proxied(&self.instance, self.channel.as_str(), status, bytes);
        let mut event = AuditEvent::new("proxy_call", self.actor)
            .instance(&self.instance)
            .subject(&self.subject)
            .detail(format!(
                "grant {} {} {} {} {} → {status}, {bytes} bytes",
                self.grant_id,
                self.channel.as_str(),
                self.method,
                self.project.as_deref().unwrap_or("-"),
                self.path,
            ));
        if let Some(id) = &self.connection_id {
            event = event.connection(id);
        }
        let audit = ctx.audit.clone();
        // Called when a streamed answer ends, possibly from a destructor: the writer's queue
        // takes the event on a task of its own.
        tokio::spawn(async move { audit.record(event).await });
    }
}

/// Counts a call refused before its grant was known (no token, or an unknown one).
pub fn count_unauthenticated(ctx: &Context, channel: Channel, status: u16) {
    // Labels only ever name registered instances: request text must not grow the metrics.
    ctx.metrics.proxied("unknown", channel.as_str(), status, 0);
}

fn stored_names(grant: &AccessGrant) -> Result<(InstanceName, Subject), ServiceError> {
    let instance = InstanceName::parse(&grant.instance)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("stored instance name: {e}")))?;
    let subject = Subject::parse(&grant.subject)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("stored grant subject: {e}")))?;
    Ok((instance, subject))
}
