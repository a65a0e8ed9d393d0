//! Refreshing tokens without ever losing a grant to GitLab's rotation (GITLAB.md: a refresh
//! revokes the old pair at once, with no grace).
//!
//! - One refresh per connection at a time: a lock per connection within the process, and a
//!   lease on the row (compare-and-set) across every process sharing the database. Waiters
//!   get the new token once it is stored.
//! - The refresh runs in a task of its own, so a caller that goes away (a client hanging up)
//!   cannot cancel it between GitLab's commit and labgate's.
//! - Before the request leaves, the row is marked "refresh in flight"; the mark is cleared
//!   only once the outcome is known. A timeout, a broken or unreadable answer, a 5xx or a crash
//!   leaves it set: GitLab may have rotated the pair without labgate learning the new one.
//! - Such an unknown outcome is never followed by a blind retry. Once GitLab has surely
//!   finished with the request (twice the request timeout), labgate asks GitLab whether the old
//!   access token still works (`/oauth/token/info`): if it does, nothing rotated and a refresh
//!   is safe; if it died before its expiry, the rotation happened and its answer was lost, so
//!   the connection needs re-authorization (recorded, audited).

//!
//! Rooms: `ensure` (the entry: a token valid long enough, refreshing first), `coordination`
//! (per-process locks and the row's lease), `exchange` (asking GitLab and storing the pair),
//! `renewal` (what a refresh is for each kind of connection: an OAuth refresh, or an access
//! token's self-rotation), `unknown_outcome` (settling a refresh whose answer was lost), `verdict` (recording a dead
//! or failed refresh), `sweeper` (the background refresher), `timing` (when a token is due).

mod backoff;
mod coordination;
mod ensure;
mod exchange;
mod ledger;
mod renewal;
mod sweeper;
mod timing;
mod unknown_outcome;
mod verdict;

use std::time::Duration;

pub use coordination::Refreshes;
pub(crate) use coordination::hold_for_revocation;
pub use ensure::ensure_fresh;
pub use sweeper::{run_background, sweep};
pub use timing::{longest_promise, satisfies, valid_until};

use super::ServiceError;
use crate::db::connections::ConnectionRow;
use crate::domain::ConnectionStatus;

/// How often a waiter looks again at a row another process is refreshing.
pub(super) const POLL: Duration = Duration::from_millis(50);
/// What to tell callers to wait when GitLab gave no `Retry-After`.
pub(super) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub enum RefreshError {
    /// The grant is dead; the person must connect again. The reason is recorded on the row.
    Reauthorization(String),
    /// GitLab cannot refresh now; stored tokens are untouched.
    Unavailable {
        retry_after: Duration,
        reason: String,
    },
    /// The connection is revoked or gone.
    Gone,
    /// An access token that cannot rotate itself (neither `api` nor `self_rotate`) would have
    /// to: it serves until its expiry, then a new one must be given.
    CannotRotate,
    Storage(ServiceError),
}

impl From<ServiceError> for RefreshError {
    fn from(error: ServiceError) -> Self {
        Self::Storage(error)
    }
}

/// Why a token is wanted: to hand it out, or to keep the connection healthy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A token valid long enough is handed out even while an earlier refresh's outcome is
    /// unknown: the stored tokens are untouched until GitLab says more.
    Handout,
    /// The background refresher also settles unknown outcomes.
    Maintain,
}

pub(super) fn unavailable(retry_after: Duration, reason: String) -> RefreshError {
    RefreshError::Unavailable {
        retry_after,
        reason,
    }
}

/// The row if it is active; otherwise why no token comes from it.
pub(super) fn usable(row: ConnectionRow) -> Result<ConnectionRow, RefreshError> {
    match row.status {
        ConnectionStatus::Active => Ok(row),
        ConnectionStatus::ReauthorizationRequired => Err(RefreshError::Reauthorization(
            row.status_reason
                .clone()
                .unwrap_or_else(|| "invalid_grant".into()),
        )),
        _ => Err(RefreshError::Gone),
    }
}
