//! The connect flow: a service creates a single-use link for one of its users; the user's
//! browser follows it to GitLab and comes back to the callback, which becomes a connection.

use anyhow::Context as _;
use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::services::Service;
use super::{Context, FieldError, ServiceError, connections, required};
use crate::crypto::SealedField;
use crate::db::{self, connect_sessions::ConnectSessionRow, instances::InstanceRow};
use crate::domain::{BaseUrl, CaBundle, InstanceName, ReturnOrigin, ScopeSet, Subject};
use crate::oauth::{Discovery, GitLabApp, GitLabError};

/// How long a link may wait to be followed, and a sign-in at GitLab may take once it is.
const VALIDITY: TimeDelta = TimeDelta::minutes(10);

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

/// Parameters GitLab sends back to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// How a connect attempt ended, for the page or redirect the person sees.
pub enum Outcome {
    Connected {
        connection_id: String,
        username: String,
        instance: String,
        return_to: Option<Url>,
    },
    Failed {
        failure: Failure,
        return_to: Option<Url>,
    },
}

/// Why a link or callback could not go on. None of these carries a code, token or state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    UnknownLink,
    ExpiredLink,
    UsedLink,
    /// No state, an unknown one, or one already spent.
    UnknownState,
    ExpiredState,
    /// The response came back on another instance's callback (mix-up attempt or misconfiguration).
    WrongInstance,
    /// The `iss` parameter names another issuer than the instance's.
    IssuerMismatch,
    /// The callback came to a browser other than the one that followed the link.
    OtherBrowser,
    MissingCode,
    Denied,
    /// GitLab answered with this OAuth error.
    GitLabRefused(String),
    GitLabUnavailable,
    /// GitLab's ID token did not verify.
    Unverified,
    Internal,
}

pub async fn create_session(
    ctx: &Context,
    service: &Service,
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
        .db(move |conn| db::instances::find_by_name(conn, &name))
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
    ctx.db(move |conn| db::connect_sessions::insert(conn, &row))
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

/// What a person is asked to agree to before following a link to GitLab.
pub struct LinkInfo {
    pub service: String,
    pub instance: String,
    pub scopes: ScopeSet,
}

/// Where to send the browser, and the cookie that binds the sign-in to it.
pub struct Started {
    pub authorize_url: Url,
    pub binding: BrowserBinding,
}

/// A cookie only the browser that followed the link holds; the callback must bring it.
pub struct BrowserBinding {
    pub cookie_name: String,
    pub value: SecretString,
}

/// Looks a link up without spending it: a link scanner or chat preview fetching the page
/// leaves it usable.
pub async fn describe(ctx: &Context, link_id: &str) -> Result<LinkInfo, Failure> {
    let (session, instance) = usable_link(ctx, link_id).await?;
    let service_id = session.service_id.clone();
    let service = ctx
        .db(move |conn| db::services::find_by_id(conn, &service_id))
        .await
        .map_err(internal)?;
    Ok(LinkInfo {
        service: service.map(|s| s.name).ok_or(Failure::UnknownLink)?,
        instance: instance.name,
        scopes: ScopeSet::from_stored(&session.scopes).map_err(|e| internal(anyhow::anyhow!(e)))?,
    })
}

/// Following a link (the person agreed): a redirect to GitLab's authorize endpoint, once per link.
pub async fn start(ctx: &Context, link_id: &str) -> Result<Started, Failure> {
    let (session, instance) = usable_link(ctx, link_id).await?;
    let registration = Registration::of(ctx, &instance).map_err(internal)?;
    let scopes =
        ScopeSet::from_stored(&session.scopes).map_err(|e| internal(anyhow::anyhow!(e)))?;
    let request = registration.app().authorization_request(&scopes).map_err(|e| {
        tracing::error!(instance.name = %instance.name, error.cause = %e, "cannot build the authorize URL");
        Failure::Internal
    })?;
    let binding = crate::crypto::generate_token("");
    let binding_hash = hash_secret(binding.expose_secret());
    let state_hash = hash_secret(request.state.expose_secret());
    let verifier = ctx.sealer.seal(
        pkce_field(&session.id),
        request.pkce_verifier.expose_secret().as_bytes(),
    );
    let (id, nonce, now) = (
        session.id.clone(),
        request.nonce.clone(),
        Utc::now().naive_utc(),
    );
    let started = ctx
        .db(move |conn| {
            let auth = db::connect_sessions::Authorization {
                state_hash: &state_hash,
                nonce: &nonce,
                pkce_verifier_sealed: &verifier,
                browser_binding_hash: &binding_hash,
            };
            db::connect_sessions::start(conn, &id, auth, now)
        })
        .await
        .map_err(internal)?;
    if !started {
        return Err(Failure::UsedLink);
    }
    Ok(Started {
        authorize_url: request.url,
        binding: BrowserBinding {
            cookie_name: binding_cookie_name(&session.id),
            value: binding,
        },
    })
}

/// A link that exists, was not followed yet, and has not expired, with its instance.
async fn usable_link(
    ctx: &Context,
    link_id: &str,
) -> Result<(ConnectSessionRow, InstanceRow), Failure> {
    let id = hash_secret(link_id);
    let found = ctx
        .db(move |conn| {
            let Some(session) = db::connect_sessions::find(conn, &id)? else {
                return Ok(None);
            };
            Ok(db::instances::find_by_id(conn, &session.instance_id)?
                .map(|instance| (session, instance)))
        })
        .await
        .map_err(internal)?;
    let (session, instance) = found.ok_or(Failure::UnknownLink)?;
    if session.started_at.is_some() {
        return Err(Failure::UsedLink);
    }
    if session.expires_at <= Utc::now().naive_utc() {
        return Err(Failure::ExpiredLink);
    }
    Ok((session, instance))
}

/// One cookie per connect session, so that two sign-ins in one browser do not collide.
fn binding_cookie_name(session_id: &str) -> String {
    format!(
        "labgate_connect_{}",
        &session_id[..16.min(session_id.len())]
    )
}

/// The callback: the state is spent first, whatever happens next; then every check; then the
/// code exchange and the connection.
pub async fn finish(
    ctx: &Context,
    instance_path: &str,
    params: CallbackParams,
    cookie: impl Fn(&str) -> Option<String>,
) -> Outcome {
    let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return failed(Failure::UnknownState, None);
    };
    let state_hash = hash_secret(state);
    let now = Utc::now().naive_utc();
    let found = ctx
        .db(move |conn| {
            if !db::connect_sessions::spend_state(conn, &state_hash, now)? {
                return Ok(None);
            }
            let Some(session) = db::connect_sessions::find_by_state(conn, &state_hash)? else {
                return Ok(None);
            };
            Ok(db::instances::find_by_id(conn, &session.instance_id)?
                .map(|instance| (session, instance)))
        })
        .await;
    let (session, instance) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return failed(Failure::UnknownState, None),
        Err(e) => return failed(internal(e), None),
    };
    let return_to = session
        .return_to
        .as_deref()
        .and_then(|to| Url::parse(to).ok());
    let binding = cookie(&binding_cookie_name(&session.id));
    let outcome = match complete(
        ctx,
        instance_path,
        &session,
        &instance,
        params,
        binding,
        now,
    )
    .await
    {
        Ok(connected) => connected,
        Err(failure) => {
            tracing::info!(instance.name = %instance.name, failure = ?failure, "connect attempt failed");
            Outcome::Failed { failure, return_to }
        }
    };
    let (label, connection_id) = match &outcome {
        Outcome::Connected { connection_id, .. } => {
            ("connected".to_owned(), Some(connection_id.clone()))
        }
        Outcome::Failed { failure, .. } => (format!("failed: {failure:?}"), None),
    };
    let id = session.id.clone();
    if let Err(e) = ctx
        .db(move |conn| {
            db::connect_sessions::record_outcome(conn, &id, &label, connection_id.as_deref())
        })
        .await
    {
        tracing::warn!(error.cause = %e, "could not record a connect outcome");
    }
    outcome
}

async fn complete(
    ctx: &Context,
    instance_path: &str,
    session: &ConnectSessionRow,
    instance: &InstanceRow,
    params: CallbackParams,
    binding: Option<String>,
    now: NaiveDateTime,
) -> Result<Outcome, Failure> {
    if instance.name != instance_path {
        return Err(Failure::WrongInstance);
    }
    if session
        .started_at
        .is_none_or(|started| started + VALIDITY <= now)
    {
        return Err(Failure::ExpiredState);
    }
    // Only the browser that followed the link may finish: an authorize URL lifted from someone
    // else's link and sent to a victim connects nothing.
    let same_browser =
        binding.is_some_and(|value| Some(hash_secret(&value)) == session.browser_binding_hash);
    if !same_browser {
        return Err(Failure::OtherBrowser);
    }
    let registration = Registration::of(ctx, instance).map_err(internal)?;
    // RFC 9207: checked when present, and required when the provider says it sends it.
    let iss_required = registration
        .discovery
        .authorization_response_iss_parameter_supported;
    match params.iss.as_deref() {
        Some(iss) if iss != registration.discovery.issuer => return Err(Failure::IssuerMismatch),
        None if iss_required => return Err(Failure::IssuerMismatch),
        _ => {}
    }
    match params.error.as_deref() {
        Some("access_denied") => return Err(Failure::Denied),
        Some(error) => return Err(Failure::GitLabRefused(oauth_error_code(error))),
        None => {}
    }
    let code = params
        .code
        .filter(|c| !c.is_empty())
        .ok_or(Failure::MissingCode)?;
    let (Some(nonce), Some(sealed_verifier)) = (&session.nonce, &session.pkce_verifier_sealed)
    else {
        return Err(Failure::UnknownState);
    };
    let verifier = ctx
        .sealer
        .open(pkce_field(&session.id), sealed_verifier)
        .map_err(internal)?;
    let verifier =
        SecretString::from(String::from_utf8_lossy(verifier.expose_secret()).into_owned());
    let requested =
        ScopeSet::from_stored(&session.scopes).map_err(|e| internal(anyhow::anyhow!(e)))?;

    let http = registration
        .http_client(ctx)
        .map_err(|e| internal(anyhow::anyhow!(e)))?;
    let grant = registration
        .app()
        .exchange_code(&http, &code, &verifier, nonce, &requested)
        .await
        .map_err(|e| {
            tracing::warn!(instance.name = %instance.name, error.cause = %e, "code exchange failed");
            match e {
                GitLabError::InvalidGrant => Failure::GitLabRefused("invalid_grant".into()),
                GitLabError::Refused(code) => Failure::GitLabRefused(code),
                GitLabError::Unavailable(_) => Failure::GitLabUnavailable,
                GitLabError::IdToken(_) => Failure::Unverified,
                GitLabError::Configuration(_) => Failure::Internal,
            }
        })?;
    let username = grant.username.clone();
    let key = connections::GrantKey {
        service_id: &session.service_id,
        instance_id: &instance.id,
        subject: &session.subject,
    };
    let stored = connections::store_grant(ctx, key, grant)
        .await
        .map_err(internal)?;
    if let Some(old_refresh_token) = stored.replaced_refresh_token {
        // The old grant is dead weight at GitLab now; revoking it is courtesy, not correctness.
        if let Err(e) = registration.app().revoke(&http, &old_refresh_token).await {
            tracing::warn!(instance.name = %instance.name, error.cause = %e, "revoking the replaced grant failed");
        }
    }
    tracing::info!(instance.name = %instance.name, connection.id = %stored.connection_id, "connection stored");
    Ok(Outcome::Connected {
        connection_id: stored.connection_id,
        username,
        instance: instance.name.clone(),
        return_to: session
            .return_to
            .as_deref()
            .and_then(|to| Url::parse(to).ok()),
    })
}

/// An instance's OAuth registration, opened for one flow: discovery, client ID and secret.
pub(super) struct Registration {
    pub(super) discovery: Discovery,
    instance_id: String,
    client_id: String,
    client_secret: SecretString,
    redirect_url: String,
    ca: Option<CaBundle>,
}

impl Registration {
    pub(super) fn of(ctx: &Context, instance: &InstanceRow) -> Result<Self, anyhow::Error> {
        let name = InstanceName::parse(&instance.name).map_err(|e| anyhow::anyhow!(e))?;
        let field = SealedField {
            table: "instances",
            column: "client_secret",
            row_id: &instance.id,
        };
        let secret = ctx.sealer.open(field, &instance.client_secret_sealed)?;
        BaseUrl::parse(&instance.base_url).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Self {
            discovery: serde_json::from_str(&instance.discovery).context("stored discovery")?,
            instance_id: instance.id.clone(),
            client_id: instance.client_id.clone(),
            client_secret: SecretString::from(
                String::from_utf8_lossy(secret.expose_secret()).into_owned(),
            ),
            redirect_url: ctx.redirect_url(&name),
            ca: instance
                .ca_pem
                .as_deref()
                .map(CaBundle::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?,
        })
    }

    pub(super) fn app(&self) -> GitLabApp<'_> {
        GitLabApp {
            discovery: &self.discovery,
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            redirect_url: &self.redirect_url,
        }
    }

    pub(super) fn http_client(&self, ctx: &Context) -> Result<reqwest::Client, String> {
        ctx.clients
            .client_for(&self.instance_id, self.ca.as_ref(), &ctx.outbound)
    }
}

/// GitLab's `error` parameter, if it is one of RFC 6749's codes; it is shown to people and
/// passed to `return_to`, so nothing else an attacker could put there is repeated.
fn oauth_error_code(error: &str) -> String {
    const CODES: [&str; 6] = [
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    CODES
        .iter()
        .find(|code| **code == error)
        .map_or("gitlab_error", |code| code)
        .to_owned()
}

fn failed(failure: Failure, return_to: Option<Url>) -> Outcome {
    Outcome::Failed { failure, return_to }
}

fn internal(error: impl Into<anyhow::Error>) -> Failure {
    tracing::error!(error.cause = ?error.into(), "connect flow failed inside labgate");
    Failure::Internal
}

/// Link ids and states are stored hashed: a database reader can neither follow someone
/// else's link nor finish their sign-in.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn pkce_field(session_id: &str) -> SealedField<'_> {
    SealedField {
        table: "connect_sessions",
        column: "pkce_verifier",
        row_id: session_id,
    }
}
