//! The rotation ledger: every refresh attempt and its outcome, recorded per connection (the
//! newest few kept), so an administrator can tell what happened to a grant and when.

use chrono::{NaiveDateTime, Utc};

use crate::db::refresh_attempts::NewRefreshAttempt;
use crate::service::Context;

/// How a refresh attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptOutcome {
    /// A new pair, stored.
    Ok,
    /// GitLab refused the refresh token: the grant is dead.
    InvalidGrant,
    /// GitLab refused labgate's client credentials: the grant is fine, the registration is not.
    InvalidClient,
    /// GitLab was unreachable, throttling or refusing; nothing rotated.
    Unavailable,
    /// GitLab may or may not have rotated the pair (timeout, broken answer, 5xx).
    Unknown,
    /// GitLab rotated the pair and labgate never stored the answer.
    ResponseLost,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
            Self::ResponseLost => "response_lost",
        }
    }
}

/// One attempt, as it will be recorded.
pub(super) struct Attempt {
    pub(super) connection_id: String,
    pub(super) started_at: NaiveDateTime,
    pub(super) request_id: Option<String>,
}

impl Attempt {
    fn entry(
        &self,
        ctx: &Context,
        outcome: AttemptOutcome,
        detail: Option<String>,
    ) -> NewRefreshAttempt {
        NewRefreshAttempt {
            connection_id: self.connection_id.clone(),
            started_at: self.started_at,
            finished_at: Utc::now().naive_utc(),
            outcome: outcome.as_str().to_owned(),
            gitlab_request_id: self.request_id.clone(),
            process: ctx.refreshes.owner.clone(),
            detail,
        }
    }

    /// Records the attempt, batched with the audit log (off the refresh path).
    pub(super) async fn record(
        &self,
        ctx: &Context,
        outcome: AttemptOutcome,
        detail: Option<String>,
    ) {
        ctx.audit
            .record_attempt(self.entry(ctx, outcome, detail))
            .await;
    }
}
