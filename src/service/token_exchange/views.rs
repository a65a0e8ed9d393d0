//! What an exchange reads from the database (the service by its client ID, and where each of
//! its identities' issuers is found and how to reach it), remembered until the database changes
//! under the handouts' generation: an exchange with cached keys needs no trip to the database.

use std::sync::Arc;

use anyhow::Context as _;
use quick_cache::sync::Cache;

use super::super::principal::{Service, to_service};
use super::super::{Context, ServiceError};
use crate::crypto::TokenHash;
use crate::db::{self, instances::InstanceRow};
use crate::domain::{CaBundle, IdentityIssuer, WorkloadIdentity};
use crate::oauth::{Discovery, KeySource, TrustedIssuer};

/// Client IDs remembered at once.
const CAPACITY: usize = 1_000;

/// A service as its exchanges see it.
pub(super) struct ExchangeView {
    pub(super) service: Service,
    /// Each identity with its issuer; an identity whose instance is no longer registered is
    /// left out.
    pub(super) identities: Vec<TrustedIdentity>,
    generation: u64,
}

/// One of the service's workload identities, with the issuer that verifies its tokens.
pub(super) struct TrustedIdentity {
    pub(super) identity: WorkloadIdentity,
    /// What the tokens minted through it carry (`identity_fingerprint`), computed once.
    pub(super) fingerprint: String,
    pub(super) issuer: TrustedIssuer,
}

pub struct ExchangeViews {
    by_client_id: Cache<String, Arc<ExchangeView>>,
}

impl Default for ExchangeViews {
    fn default() -> Self {
        Self {
            by_client_id: Cache::new(CAPACITY),
        }
    }
}

/// The service `client_id` names, as remembered or read now; `None` when no service has it.
pub(super) async fn read(
    ctx: &Context,
    client_id: &str,
) -> Result<Option<Arc<ExchangeView>>, ServiceError> {
    let usable = ctx.handouts.usable_generation();
    if let Some(generation) = usable
        && let Some(remembered) = ctx.exchange_views.by_client_id.get(client_id)
        && remembered.generation == generation
    {
        return Ok(Some(remembered));
    }
    // Taken before reading: a change committed meanwhile outdates what is read.
    let generation = ctx.handouts.generation();
    let owned = client_id.to_owned();
    let (row, instances) = ctx
        .db_read(move |conn| {
            let Some(row) = db::services::find_by_client_id(conn, &owned)? else {
                return Ok((None, Vec::new()));
            };
            Ok((Some(row), db::instances::list(conn)?))
        })
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let service = to_service(row)?;
    let mut identities = Vec::new();
    for (identity, fingerprint) in service
        .identities
        .iter()
        .zip(&service.identity_fingerprints)
    {
        if let Some(issuer) = trusted_issuer(ctx, identity, &instances)? {
            identities.push(TrustedIdentity {
                identity: identity.clone(),
                fingerprint: fingerprint.clone(),
                issuer,
            });
        }
    }
    // Issuers are resolved once per view: parsing the stored discovery document and CA bundle
    // is not for every exchange.
    let view = Arc::new(ExchangeView {
        service,
        identities,
        generation,
    });
    if usable.is_some() && generation == ctx.handouts.generation() {
        ctx.exchange_views
            .by_client_id
            .insert(client_id.to_owned(), view.clone());
    }
    Ok(Some(view))
}

/// Where `identity`'s tokens come from and how to reach it; `None` when its instance is no
/// longer registered.
fn trusted_issuer(
    ctx: &Context,
    identity: &WorkloadIdentity,
    instances: &[InstanceRow],
) -> Result<Option<TrustedIssuer>, ServiceError> {
    match &identity.issuer {
        IdentityIssuer::Instance(name) => {
            let Some(row) = instances.iter().find(|row| row.name == name.as_str()) else {
                return Ok(None);
            };
            let discovery: Discovery =
                serde_json::from_str(&row.discovery).context("stored discovery")?;
            let ca = row
                .ca_pem
                .as_deref()
                .map(CaBundle::parse)
                .transpose()
                .context("stored CA bundle")?;
            let client = ctx
                .clients
                .client_for(&row.id, ca.as_ref(), &ctx.outbound)
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
            Ok(Some(TrustedIssuer {
                // GitLab signs CI/CD ID tokens as its own URL, the OIDC issuer.
                iss: discovery.issuer.clone(),
                cache_key: format!("instance {} {}", row.id, discovery.jwks_uri),
                source: KeySource::Known {
                    jwks_uri: discovery.jwks_uri,
                    algorithms: discovery.id_token_signing_alg_values_supported,
                },
                client,
            }))
        }
        IdentityIssuer::Url(iss) => {
            let pem = identity.ca.as_ref().map(CaBundle::pem).unwrap_or_default();
            let client = ctx
                .clients
                .client_for(
                    &format!("issuer {iss}"),
                    identity.ca.as_ref(),
                    &ctx.outbound,
                )
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
            Ok(Some(TrustedIssuer {
                iss: iss.clone(),
                cache_key: format!("issuer {iss} {}", TokenHash::of(pem).to_hex()),
                source: KeySource::Discovered,
                client,
            }))
        }
    }
}
