//! Talking to GitLab instances: one HTTP client per instance with that instance's trust roots,
//! and the check that proves an instance is reachable and is the GitLab it claims to be.

mod access_tokens;
mod check;
mod client;
mod discovery;
mod gitlab;
mod gitlab_identity;
mod projects;
mod refresh;
mod tls;
mod webhook_client;
mod workload_token;

pub use access_tokens::{
    AccessTokenInfo, CANNOT_ROTATE, Described, OwnerAnswer, TokenOwner, access_token_owner,
    describe_access_token, next_expiry, revoke_access_token, rotate_access_token,
};
pub use check::{
    CLIENT_REJECTED, CheckReport, CheckStep, ClientToCheck, StepStatus, check_instance,
};
pub use client::{InstanceClients, instance_http_client};
pub use discovery::Discovery;
pub use gitlab::{AuthorizationRequest, GitLabApp, GitLabError, Grant};
pub use gitlab_identity::Identity;
pub use projects::{PROJECT_ANSWER_LIMIT, ProjectLookup, body_within, project_path};
pub use refresh::{RefreshOutcome, RefreshReply};
pub use tls::TrustRoots;
pub use webhook_client::{post_event, webhook_http_client};
pub use workload_token::{
    IssuerKeys, KeySource, TokenRefusal, TrustedIssuer, UnverifiedToken, VerifyError,
};

/// An error and its causes on one line: reqwest hides the useful part in `source()`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
