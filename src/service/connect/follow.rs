//! Following a link: shown without spending it, then, once the person agrees, a redirect to
//! GitLab's authorize endpoint bound to this browser.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{Failure, binding_cookie_name, hash_secret, internal, session_key};
use crate::crypto::SealedColumn;
use crate::db::{self, connect_sessions::ConnectSessionRow, instances::InstanceRow};
use crate::domain::ScopeSet;
use crate::service::Context;
use crate::service::registration::Registration;

/// What a person is asked to agree to before following a link to GitLab.
pub struct LinkInfo {
    pub service: String,
    pub instance: String,
    /// The GitLab's address, so that the person knows where they will sign in.
    pub gitlab_url: String,
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
        .db_read(move |conn| db::services::find_by_id(conn, &service_id))
        .await
        .map_err(internal)?;
    Ok(LinkInfo {
        service: service.map(|s| s.name).ok_or(Failure::UnknownLink)?,
        instance: instance.name,
        gitlab_url: instance.base_url,
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
        SealedColumn::ConnectSessionPkceVerifier.of(&session.id),
        request.pkce_verifier.expose_secret().as_bytes(),
    );
    let (id, nonce, now) = (
        session.id.clone(),
        request.nonce.clone(),
        Utc::now().naive_utc(),
    );
    let started = ctx
        .db_write(move |conn| {
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
            cookie_name: binding_cookie_name(session_key(&session.id)),
            value: binding,
        },
    })
}

/// The person declined on labgate's page: the link is spent, and the service learns it where
/// it asked to (`return_to`, if it gave one), as if the person had declined at GitLab.
pub async fn cancel(ctx: &Context, link_id: &str) -> Result<Option<Url>, Failure> {
    let (session, _) = usable_link(ctx, link_id).await?;
    let (id, now) = (session.id.clone(), Utc::now().naive_utc());
    let cancelled = ctx
        .db_write(move |conn| db::connect_sessions::cancel(conn, &id, now))
        .await
        .map_err(internal)?;
    if !cancelled {
        return Err(Failure::UsedLink);
    }
    Ok(session
        .return_to
        .as_deref()
        .and_then(|to| Url::parse(to).ok()))
}

/// A link that exists, was not followed yet, and has not expired, with its instance.
async fn usable_link(
    ctx: &Context,
    link_id: &str,
) -> Result<(ConnectSessionRow, InstanceRow), Failure> {
    let id = hash_secret(link_id);
    let found = ctx
        .db_read(move |conn| {
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
