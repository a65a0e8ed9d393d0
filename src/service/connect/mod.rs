//! The connect flow: a service creates a single-use link for one of its users (`link`); the
//! user's browser follows it to GitLab (`follow`) and comes back to the callback, which
//! becomes a connection (`callback`).

mod callback;
mod follow;
mod link;
mod result;

use chrono::TimeDelta;
use sha2::{Digest, Sha256};

pub use callback::{CallbackParams, Outcome, finish};
pub use follow::{BrowserBinding, LinkInfo, Started, cancel, describe, start};
pub use link::{ConnectForm, ConnectLink, create_session};
pub use result::{Connected, result};

/// How long a link may wait to be followed, and a sign-in at GitLab may take once it is.
pub(super) const VALIDITY: TimeDelta = TimeDelta::minutes(10);

/// Why a link or callback could not go on. None of these carries a code, token or state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    UnknownLink,
    ExpiredLink,
    UsedLink,
    /// No state, an unknown one, or one already spent.
    UnknownState,
    ExpiredState,
    /// The response came back on another instance's callback (mix-up attempt or misconfiguration).
    WrongInstance,
    /// The `iss` parameter names another issuer than the instance's.
    IssuerMismatch,
    /// The callback came to a browser other than the one that followed the link.
    OtherBrowser,
    MissingCode,
    Denied,
    /// GitLab answered with this OAuth error.
    GitLabRefused(String),
    GitLabUnavailable,
    /// GitLab's ID token did not verify.
    Unverified,
    /// A result page asked for by a browser that no longer holds (or never held) its cookie.
    ResultGone,
    Internal,
}

/// Names a session in its result page's URL and its binding cookie's name: a prefix of its
/// id, which is itself a hash of the link, so it opens nothing.
pub(super) fn session_key(session_id: &str) -> &str {
    &session_id[..16.min(session_id.len())]
}

/// One cookie per connect session, so that two sign-ins in one browser do not collide.
pub(super) fn binding_cookie_name(session_key: &str) -> String {
    format!("labgate_connect_{session_key}")
}

pub(super) fn internal(error: impl Into<anyhow::Error>) -> Failure {
    tracing::error!(error.cause = ?error.into(), "connect flow failed inside labgate");
    Failure::Internal
}

/// Link ids and states are stored hashed: a database reader can neither follow someone
/// else's link nor finish their sign-in.
pub(super) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
