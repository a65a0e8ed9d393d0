//! The callback: GitLab sends the browser back with a code; checked, exchanged, stored.

use chrono::NaiveDateTime;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{Failure, VALIDITY, binding_cookie_name, hash_secret, internal, session_key};
use crate::crypto::SealedColumn;
use crate::db::{self, connect_sessions::ConnectSessionRow, instances::InstanceRow};
use crate::domain::ScopeSet;
use crate::oauth::GitLabError;
use crate::service::audit::AuditEvent;
use crate::service::registration::Registration;
use crate::service::{Context, connections, principal, revocation};

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
        /// Names the session in the URL of its result page.
        session_key: String,
        return_to: Option<Url>,
    },
    Failed {
        failure: Failure,
        return_to: Option<Url>,
    },
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
        .db_write(move |conn| {
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
    let binding = cookie(&binding_cookie_name(session_key(&session.id)));
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
        Outcome::Connected { connection_id, .. } => (
            db::connect_sessions::CONNECTED.to_owned(),
            Some(connection_id.clone()),
        ),
        Outcome::Failed { failure, .. } => (format!("failed: {failure:?}"), None),
    };
    let id = session.id.clone();
    if let Err(e) = ctx
        .db_write(move |conn| {
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
        .open(
            SealedColumn::ConnectSessionPkceVerifier.of(&session.id),
            sealed_verifier,
        )
        .map_err(internal)?;
    let verifier =
        SecretString::from(String::from_utf8_lossy(verifier.expose_secret()).into_owned());
    let requested =
        ScopeSet::from_stored(&session.scopes).map_err(|e| internal(anyhow::anyhow!(e)))?;

    let http = registration
        .http_client(ctx)
        .map_err(|e| internal(anyhow::anyhow!(e)))?;
    let exchanged = registration
        .app()
        .exchange_code(&http, &code, &verifier, nonce, &requested)
        .await;
    let grant = match exchanged {
        Ok(grant) => grant,
        Err(e) => {
            tracing::warn!(instance.name = %instance.name, error.cause = %e, "code exchange failed");
            return Err(match e {
                GitLabError::InvalidGrant => Failure::GitLabRefused("invalid_grant".into()),
                GitLabError::Refused(code) => {
                    if code == "invalid_client" {
                        registration.record_rejected(ctx).await;
                    }
                    Failure::GitLabRefused(code)
                }
                GitLabError::Unavailable(_) => Failure::GitLabUnavailable,
                GitLabError::IdToken(_) => Failure::Unverified,
                GitLabError::Configuration(_) => Failure::Internal,
            });
        }
    };
    let username = grant.username.clone();
    let granted = grant.scopes.join(" ");
    let key = connections::GrantKey {
        service_id: &session.service_id,
        instance_id: &instance.id,
        instance_name: &instance.name,
        subject: &session.subject,
    };
    let stored = connections::store_grant(ctx, key, grant.into())
        .await
        .map_err(internal)?;
    let reconnected = stored.replaced.is_some();
    if let Some(replaced) = stored.replaced {
        revocation::revoke_replaced(&registration, &http, instance, replaced).await;
    }
    tracing::info!(instance.name = %instance.name, connection.id = %stored.connection_id, "connection stored");
    let kind = if reconnected {
        "connection_reconnected"
    } else {
        "connection_created"
    };
    let service_id = session.service_id.clone();
    let service = ctx
        .db_read(move |conn| db::services::find_by_id(conn, &service_id))
        .await
        .map_err(internal)?;
    let actor = service.map_or_else(
        || "service:deleted".to_owned(),
        |s| principal::actor_of(&s.name),
    );
    let event = AuditEvent::new(kind, actor)
        .instance(&instance.name)
        .subject(&session.subject)
        .connection(&stored.connection_id)
        .scopes(granted)
        .detail(format!("GitLab user @{username}"));
    ctx.audit.record(event).await;
    Ok(Outcome::Connected {
        connection_id: stored.connection_id,
        username,
        instance: instance.name.clone(),
        session_key: session_key(&session.id).to_owned(),
        return_to: session
            .return_to
            .as_deref()
            .and_then(|to| Url::parse(to).ok()),
    })
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
