//! An instance's OAuth application as GitLab knows it: discovery, client ID and secret, the
//! redirect URL, and the outbound client built from the instance's own trust roots.

use anyhow::Context as _;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::Context;
use crate::crypto::SealedColumn;
use crate::db::{self, instances::InstanceRow};
use crate::domain::{BaseUrl, CaBundle, InstanceName};
use crate::oauth::{ClientToCheck, Discovery, GitLabApp};

/// An instance's OAuth registration, opened for one flow.
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
        BaseUrl::parse(&instance.base_url).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Self {
            discovery: serde_json::from_str(&instance.discovery).context("stored discovery")?,
            instance_id: instance.id.clone(),
            client_id: instance.client_id.clone(),
            client_secret: open_client_secret(ctx, instance)?,
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

    /// The credentials as the instance check tries them.
    pub(super) fn client_to_check(&self) -> ClientToCheck<'_> {
        ClientToCheck {
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            redirect_url: &self.redirect_url,
        }
    }

    /// GitLab answered `invalid_client`: the instance shows it (page, API, `/metrics`) until
    /// its credentials are updated and a check passes. The grant behind the call is kept.
    pub(super) async fn record_rejected(&self, ctx: &Context) {
        let (id, at) = (self.instance_id.clone(), Utc::now().naive_utc());
        let recorded = ctx
            .db_write(move |conn| db::instances::record_client_rejected(conn, &id, at))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error.cause = %e, "could not record the client's rejection");
        }
    }

    pub(super) fn http_client(&self, ctx: &Context) -> Result<reqwest::Client, String> {
        ctx.clients
            .client_for(&self.instance_id, self.ca.as_ref(), &ctx.outbound)
    }
}

/// The instance's client secret, unsealed.
pub(super) fn open_client_secret(
    ctx: &Context,
    instance: &InstanceRow,
) -> Result<SecretString, anyhow::Error> {
    let field = SealedColumn::InstanceClientSecret.of(&instance.id);
    let secret = ctx.sealer.open(field, &instance.client_secret_sealed)?;
    Ok(SecretString::from(
        String::from_utf8_lossy(secret.expose_secret()).into_owned(),
    ))
}
