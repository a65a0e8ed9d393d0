//! Newtypes and rules: what a valid instance name, base URL, CA bundle or scope set is.
//! Everything here parses untrusted input once, at the edge, into a type that cannot be wrong.

mod base_url;
mod ca_bundle;
mod instance_name;
mod scope;

pub use base_url::BaseUrl;
pub use ca_bundle::CaBundle;
pub use instance_name::InstanceName;
pub use scope::ScopeSet;

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
