//! Newtypes and rules: what a valid name, base URL, CA bundle, scope set, subject or origin is,
//! which proxied git and API calls an access grant may make, and which workload tokens a
//! service trusts.
//! Everything here parses untrusted input once, at the edge, into a type that cannot be wrong.

mod api_route;
mod base_url;
mod ca_bundle;
mod connection_kind;
mod connection_status;
mod git_route;
mod names;
mod page;
mod project_path;
mod request_path;
mod scope;
mod service_policy;
mod subject;
mod token_timing;
mod webhook;
mod workload_identity;

pub use api_route::{ApiCall, ApiTarget, ProjectRef, judge_api};
pub use base_url::BaseUrl;
pub use ca_bundle::CaBundle;
pub use connection_kind::ConnectionKind;
pub use connection_status::ConnectionStatus;
pub use git_route::{GitCall, GitEndpoint, GitService, judge_git};
pub use names::{InstanceName, ServiceName};
pub use page::{Page, Paged, created_key, parse_created_key};
pub use project_path::{Access, ProjectPath, ProjectPattern, ProjectPatterns};
pub use request_path::Refused;
pub use scope::ScopeSet;
pub use service_policy::{InstanceAccess, ReturnOrigin};
pub use subject::Subject;
pub use token_timing::TokenLife;
pub use webhook::{
    ConnectionEvent, DeliveryStatus, EventType, MAX_ATTEMPTS, MAX_WEBHOOKS, Webhook,
    WebhookRefusals, WebhookSecret, WebhookSecrets, WebhookUrl, next_retry, parse_webhooks,
};
pub use workload_identity::{
    AcceptedClaims, ClaimMatch, ClaimRefusal, IdentityIssuer, WorkloadIdentities, WorkloadIdentity,
};

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
