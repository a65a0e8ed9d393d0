/// Why a step failed: a stable code for programs and a sentence for the person who fixes it.
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
