use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::oauth::CheckStep;

/// One refused input field, for the person who filled it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The caller did not prove who it is.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but its policy does not allow this; `code` names the rule.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// The instance check failed; its steps say which one and why. Nothing was saved.
    #[error("instance check failed")]
    CheckFailed(Vec<CheckStep>),
    /// No connection can serve the request: the person must connect first.
    #[error("{0}")]
    NotConnected(String),
    /// GitLab refuses the access token given (unknown, revoked or expired). Nothing was stored.
    #[error("{0}")]
    TokenRejected(String),
    /// The grant is dead; the person must connect again.
    #[error("{0}")]
    ReauthorizationRequired(String),
    /// GitLab cannot give a fresh enough token now; stored tokens are untouched.
    #[error("{detail}")]
    GitLabUnavailable {
        detail: String,
        retry_after: std::time::Duration,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DieselError> for ServiceError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unavailable(info.message().to_owned())
            }
            other => Self::Internal(other.into()),
        }
    }
}
