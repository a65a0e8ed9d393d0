//! What the instance check found: one line per step, and the discovery document when it passed.

use serde::{Deserialize, Serialize};

use crate::oauth::discovery::Discovery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckStep {
    pub step: String,
    pub status: StepStatus,
    /// A stable code for a failed step, e.g. `tls_unknown_ca` or `issuer_mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub steps: Vec<CheckStep>,
    /// The discovery document, when every step passed.
    pub discovery: Option<Discovery>,
}

impl CheckReport {
    pub fn failure(&self) -> Option<&CheckStep> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }
}
