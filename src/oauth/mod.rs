//! Talking to GitLab instances: one HTTP client per instance with that instance's trust roots,
//! and the check that proves an instance is reachable and is the GitLab it claims to be.

mod check;
mod client;
mod discovery;
mod gitlab;
mod projects;
mod refresh;
mod tls;

pub use check::{
    CLIENT_REJECTED, CheckReport, CheckStep, ClientToCheck, StepStatus, check_instance,
};
pub use client::{InstanceClients, instance_http_client};
pub use discovery::Discovery;
pub use gitlab::{AuthorizationRequest, GitLabApp, GitLabError, Grant};
pub use projects::{PROJECT_ANSWER_LIMIT, ProjectLookup, body_within, project_path};
pub use refresh::{RefreshOutcome, RefreshReply};
pub use tls::TrustRoots;
