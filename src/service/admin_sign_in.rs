//! Administrators sign in with GitLab: an OpenID Connect code flow (PKCE, state, nonce) through
//! the sign-in instance's own OAuth application and redirect URL. Its state starts with
//! `STATE_PREFIX`, which no connect state does, so the shared callback tells the flows apart;
//! the state is stored hashed, spent once, expires, and only the browser that started the
//! sign-in (its cookie) may finish it. Who may sign in: `[admin] admin_groups` (the ID token's
//! `groups_direct`) and `admin_users` (`preferred_username`).

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::admin_sessions::{self, AdminSession};
use super::audit::AuditEvent;
use super::connect::{CallbackParams, VALIDITY, hash_secret};
use super::registration::Registration;
use super::{Context, ServiceError};
use crate::crypto::{SealedColumn, generate_token};
use crate::db::{self, admin_sign_ins::AdminSignInRow, instances::InstanceRow};
use crate::domain::ScopeSet;
use crate::oauth::GitLabError;

/// Starts every admin sign-in's state. Connect states are URL-safe base64, which has no dot.
pub const STATE_PREFIX: &str = "admin.";

/// What the sign-in asks GitLab for: who the person is, and their username.
const SCOPES: [&str; 2] = ["openid", "profile"];

/// Whether a callback's `state` belongs to an admin sign-in rather than a connect.
pub fn is_sign_in_state(state: &str) -> bool {
    state.starts_with(STATE_PREFIX)
}

/// Why a sign-in with GitLab did not open a session. None carries a code, token or state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInFailure {
    /// `[admin] sign_in_instance` is not set.
    NotEnabled,
    /// The configured instance is not registered (any more).
    UnknownInstance(String),
    /// No such state, or one already spent.
    UnknownState,
    Expired,
    /// The callback came to a browser other than the one that started the sign-in.
    OtherBrowser,
    /// The answer came back on another instance's callback.
    WrongInstance,
    IssuerMismatch,
    Denied,
    MissingCode,
    GitLabRefused(String),
    GitLabUnavailable,
    Unverified,
    /// A GitLab user outside `admin_groups` and `admin_users`.
    NotAllowed {
        username: String,
    },
    Internal,
}

/// Where to send the browser, and the value of the cookie that binds the sign-in to it.
pub struct Started {
    pub authorize_url: Url,
    pub binding: SecretString,
}

/// A session opened through GitLab.
pub struct SignedIn {
    pub token: SecretString,
    pub session: AdminSession,
    pub next: Option<String>,
}

fn internal(error: impl Into<anyhow::Error>) -> SignInFailure {
    tracing::error!(error.cause = ?error.into(), "admin sign-in with GitLab failed inside labgate");
    SignInFailure::Internal
}

/// `GET /admin/sign-in/gitlab`: a fresh state, nonce and PKCE verifier, kept server-side.
pub async fn start(ctx: &Context, next: Option<String>) -> Result<Started, SignInFailure> {
    let settings = ctx
        .gitlab_sign_in
        .clone()
        .ok_or(SignInFailure::NotEnabled)?;
    let name = settings.instance.clone();
    let instance = ctx
        .db_read(move |conn| db::instances::find_by_name(conn, &name))
        .await
        .map_err(internal)?
        .ok_or_else(|| SignInFailure::UnknownInstance(settings.instance.clone()))?;
    let registration = Registration::of(ctx, &instance).map_err(internal)?;
    let scopes = ScopeSet::parse(&SCOPES).map_err(|e| internal(anyhow::anyhow!(e.0)))?;
    let request = registration
        .app()
        .authorization_request_marked(&scopes, STATE_PREFIX)
        .map_err(internal)?;
    let binding = generate_token("");
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = Utc::now().naive_utc();
    let row = AdminSignInRow {
        pkce_verifier_sealed: ctx.sealer.seal(
            SealedColumn::AdminSignInPkceVerifier.of(&id),
            request.pkce_verifier.expose_secret().as_bytes(),
        ),
        id,
        state_hash: hash_secret(request.state.expose_secret()),
        instance_id: instance.id.clone(),
        nonce: request.nonce.clone(),
        browser_binding_hash: hash_secret(binding.expose_secret()),
        next_path: next,
        created_at: now,
        expires_at: now + VALIDITY,
    };
    ctx.db_write(move |conn| db::admin_sign_ins::insert(conn, &row, now))
        .await
        .map_err(internal)?;
    Ok(Started {
        authorize_url: request.url,
        binding,
    })
}

/// The callback for an admin sign-in state: spent first, then every check, then the code
/// exchange and the membership. Success and failure are both audited.
pub async fn finish(
    ctx: &Context,
    instance_path: &str,
    state: &str,
    params: CallbackParams,
    binding: Option<String>,
) -> Result<SignedIn, SignInFailure> {
    let outcome = complete(ctx, instance_path, state, params, binding).await;
    let event = match &outcome {
        Ok(signed_in) => {
            tracing::info!(admin.actor = %signed_in.session.actor, "admin signed in with GitLab");
            AuditEvent::new("admin_signed_in", signed_in.session.actor.clone())
                .instance(instance_path)
                .detail("signed in with GitLab")
        }
        Err(failure) => {
            tracing::warn!(failure = ?failure, "admin sign-in with GitLab refused");
            let detail = match failure {
                SignInFailure::NotAllowed { username } => {
                    format!("GitLab user @{username} is in neither admin_groups nor admin_users")
                }
                other => format!("signing in with GitLab failed: {other:?}"),
            };
            AuditEvent::new("admin_sign_in_refused", "unknown")
                .instance(instance_path)
                .detail(detail)
        }
    };
    ctx.audit.record(event).await;
    outcome
}

async fn complete(
    ctx: &Context,
    instance_path: &str,
    state: &str,
    params: CallbackParams,
    binding: Option<String>,
) -> Result<SignedIn, SignInFailure> {
    let state_hash = hash_secret(state);
    let now = Utc::now().naive_utc();
    let spent = ctx
        .db_write(move |conn| {
            let Some(row) = db::admin_sign_ins::spend(conn, &state_hash)? else {
                return Ok(None);
            };
            Ok(db::instances::find_by_id(conn, &row.instance_id)?.map(|i| (row, i)))
        })
        .await
        .map_err(internal)?;
    let (row, instance) = spent.ok_or(SignInFailure::UnknownState)?;
    if row.expires_at <= now {
        return Err(SignInFailure::Expired);
    }
    if instance.name != instance_path {
        return Err(SignInFailure::WrongInstance);
    }
    if binding.is_none_or(|value| hash_secret(&value) != row.browser_binding_hash) {
        return Err(SignInFailure::OtherBrowser);
    }
    let settings = ctx
        .gitlab_sign_in
        .clone()
        .ok_or(SignInFailure::NotEnabled)?;
    if settings.instance != instance.name {
        return Err(SignInFailure::WrongInstance);
    }
    let registration = Registration::of(ctx, &instance).map_err(internal)?;
    check_response(&registration, &params)?;
    let code = params
        .code
        .filter(|c| !c.is_empty())
        .ok_or(SignInFailure::MissingCode)?;
    let verifier = ctx
        .sealer
        .open(
            SealedColumn::AdminSignInPkceVerifier.of(&row.id),
            &row.pkce_verifier_sealed,
        )
        .map_err(internal)?;
    let verifier =
        SecretString::from(String::from_utf8_lossy(verifier.expose_secret()).into_owned());
    let http = registration
        .http_client(ctx)
        .map_err(|e| internal(anyhow::anyhow!(e)))?;
    let identity = registration
        .app()
        .identify(&http, &code, &verifier, &row.nonce)
        .await
        .map_err(|e| gitlab_failure(&instance, e))?;
    if !settings.admits(&identity.username, &identity.groups_direct) {
        return Err(SignInFailure::NotAllowed {
            username: identity.username,
        });
    }
    let actor = format!("admin:{}", identity.username);
    let (token, session) = admin_sessions::open(ctx, actor)
        .await
        .map_err(|e: ServiceError| internal(anyhow::anyhow!(e)))?;
    Ok(SignedIn {
        token,
        session,
        next: row.next_path,
    })
}

/// RFC 9207's `iss` (checked when present, required when advertised), then GitLab's `error`.
fn check_response(
    registration: &Registration,
    params: &CallbackParams,
) -> Result<(), SignInFailure> {
    let iss_required = registration
        .discovery
        .authorization_response_iss_parameter_supported;
    match params.iss.as_deref() {
        Some(iss) if iss != registration.discovery.issuer => {
            return Err(SignInFailure::IssuerMismatch);
        }
        None if iss_required => return Err(SignInFailure::IssuerMismatch),
        _ => {}
    }
    match params.error.as_deref() {
        Some("access_denied") => Err(SignInFailure::Denied),
        Some(_) => Err(SignInFailure::GitLabRefused("gitlab_error".into())),
        None => Ok(()),
    }
}

fn gitlab_failure(instance: &InstanceRow, error: GitLabError) -> SignInFailure {
    tracing::warn!(instance.name = %instance.name, error.cause = %error, "admin sign-in: GitLab's answer was refused");
    match error {
        GitLabError::InvalidGrant => SignInFailure::GitLabRefused("invalid_grant".into()),
        GitLabError::Refused(code) => SignInFailure::GitLabRefused(code),
        GitLabError::Unavailable(_) => SignInFailure::GitLabUnavailable,
        GitLabError::IdToken(_) => SignInFailure::Unverified,
        GitLabError::Configuration(_) => SignInFailure::Internal,
    }
}
