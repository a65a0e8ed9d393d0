//! The use cases. Each takes the shared `Context`, parsed domain input, and returns domain
//! output or a `ServiceError`; storage runs on blocking threads, never on the async workers.

pub mod access_grants;
pub mod access_token_connections;
pub mod access_token_expiry;
pub mod admin_sessions;
pub mod admin_sign_in;
pub mod audit;
pub mod connect;
pub mod connection_tokens;
pub mod connections;
pub mod credentials;
mod error;
pub mod gauges;
mod gitlab_token;
mod handed_token;
pub mod handout_cache;
pub mod health;
pub mod instances;
pub mod key_rotation;
pub mod principal;
pub mod proxy;
pub mod refresh;
mod registration;
pub mod revocation;
pub mod service_token;
pub mod services;
pub mod token_exchange;
pub mod webhooks;

use std::sync::Arc;

use diesel::QueryResult;
use url::Url;

pub use crate::oauth::{CheckStep, StepStatus};
pub use error::{FieldError, ServiceError};

use crate::config::{GitLabSignIn, OutboundSettings, RefresherSettings};
use crate::crypto::{MasterKey, Sealer, ServiceTokenKeys, TokenHash};
use crate::db::{DbConnection, DbPool};
use crate::domain::{InstanceName, Invalid};
use crate::metrics::Metrics;
use crate::oauth::{InstanceClients, IssuerKeys};

/// What every use case may need, built once at start-up.
#[derive(Clone)]
pub struct Context {
    pub pool: DbPool,
    pub sealer: Arc<Sealer>,
    /// The configured master keys: the one it seals under, then the other of a rotation.
    pub master_keys: Arc<Vec<MasterKey>>,
    pub admin_token: TokenHash,
    pub service_tokens: Arc<ServiceTokenKeys>,
    pub clients: Arc<InstanceClients>,
    /// The signing keys of the issuers services trust for token exchange.
    pub issuer_keys: Arc<IssuerKeys>,
    /// What token exchanges read from the database, remembered.
    pub exchange_views: Arc<token_exchange::ExchangeViews>,
    pub refreshes: Arc<refresh::Refreshes>,
    pub refresher: RefresherSettings,
    pub audit: audit::AuditLog,
    pub handouts: Arc<handout_cache::HandoutCache>,
    pub metrics: Arc<Metrics>,
    /// The URL GitLab and browsers reach labgate at.
    pub public_url: Url,
    pub outbound: OutboundSettings,
    /// Who may sign in to the admin pages with GitLab, through which instance; `None`: only
    /// the admin token signs in.
    pub gitlab_sign_in: Option<Arc<GitLabSignIn>>,
    /// Numeric project ids the proxy has asked GitLab about.
    pub project_ids: Arc<proxy::ProjectIds>,
}

impl Context {
    /// Runs `work`, which writes, with a pooled connection on a blocking thread; handouts read
    /// afresh afterwards. Waiting for a connection is bounded by the pool's timeout, after which
    /// the caller gets `Unavailable` (503).
    pub async fn db_write<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let handouts = self.handouts.clone();
        // Outdated on the blocking thread, right after the work: a caller that stops waiting (a
        // client hanging up) cannot skip it.
        self.db_read(move |conn| {
            let done = work(conn);
            handouts.changed();
            done
        })
        .await
    }

    /// `db_write` for writes to what no handout reads (the rotation ledger, the webhook
    /// outbox): what handouts remember stays valid, as after `db_read`.
    pub async fn db_write_unread_by_handouts<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.db_read(work).await
    }

    /// `db_write` for work that only reads: what handouts remember stays valid.
    pub async fn db_read<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            work(&mut conn).map_err(ServiceError::from)
        })
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("database task failed: {e}")))?
    }

    /// `{public_url}/oauth/{name}/callback`: what the administrator pastes into GitLab.
    pub fn redirect_url(&self, name: &InstanceName) -> String {
        format!("{}/oauth/{name}/callback", self.public_base())
    }

    /// The public URL as a prefix for paths, and as the `iss` of service tokens.
    pub fn public_base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }
}

/// Parses a required input field, recording in `errors` why it is missing or refused.
pub(crate) fn required<T, U>(
    errors: &mut Vec<FieldError>,
    name: &str,
    value: Option<T>,
    parse: impl FnOnce(T) -> Result<U, Invalid>,
) -> Option<U> {
    match value {
        Some(value) => field(errors, name, parse(value)),
        None => {
            errors.push(FieldError::new(name, "is required"));
            None
        }
    }
}

/// Keeps a parsed field's value, or records why it was refused.
pub(crate) fn field<U>(
    errors: &mut Vec<FieldError>,
    name: &str,
    parsed: Result<U, Invalid>,
) -> Option<U> {
    parsed
        .map_err(|e| errors.push(FieldError::new(name, e.0)))
        .ok()
}
