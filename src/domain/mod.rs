//! Newtypes and rules: what a valid name, base URL, CA bundle, scope set, subject, origin or
//! project path pattern is.
//! Everything here parses untrusted input once, at the edge, into a type that cannot be wrong.

mod base_url;
mod ca_bundle;
mod connection_status;
mod names;
mod project_path;
mod scope;
mod service_policy;
mod subject;
mod token_timing;

pub use base_url::BaseUrl;
pub use ca_bundle::CaBundle;
pub use connection_status::ConnectionStatus;
pub use names::{InstanceName, ServiceName};
pub use project_path::{Access, ProjectPath, ProjectPattern, ProjectPatterns};
pub use scope::ScopeSet;
pub use service_policy::{InstanceAccess, ReturnOrigin};
pub use subject::Subject;
pub use token_timing::TokenLife;

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
