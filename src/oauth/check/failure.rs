//! Why a check step failed: a stable code and what to fix.

pub(super) struct Failure {
    pub(super) code: &'static str,
    pub(super) detail: String,
}

impl Failure {
    pub(super) fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}
