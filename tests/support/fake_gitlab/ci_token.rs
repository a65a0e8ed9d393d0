//! CI/CD job ID tokens (workload identity), shaped as GitLab shapes them for a job declaring
//! `id_tokens: {NAME: {aud: ...}}`: RS256, the CI key's `kid`, `iss` the instance URL, the job's
//! project, ref and person as string claims. The CI key rotates on demand.

use std::sync::Arc;

use serde_json::json;

use super::super::jwt::{JwtKey, OldKey, TokenBuilder, now};
use super::FakeGitLab;
use super::user::{USER_ID, USERNAME};

/// Ids of the job, its pipeline and its project, as GitLab numbers them (any will do).
const PROJECT_ID: u64 = 1207;
const NAMESPACE_ID: u64 = 88;
const PIPELINE_ID: u64 = 990_201;
const JOB_ID: u64 = 5_550_123;
/// A job's ID token lives as long as the job may run: its timeout, one hour by default
/// (GITLAB.md; GitLab falls back to 300 s for a job without a timeout).
const LIFETIME_SECONDS: i64 = 3600;

impl FakeGitLab {
    /// The ID token GitLab gives a job of `project_path` on the protected branch `main`,
    /// started by alice, for audience `aud`, signed with the current CI key. Change any claim
    /// or header member before signing.
    pub(crate) fn ci_token(&self, aud: &str, project_path: &str) -> TokenBuilder {
        let state = self.state.lock().unwrap();
        let namespace = project_path.rsplit_once('/').map_or("", |(ns, _)| ns);
        let issued = now();
        let claims = json!({
            "namespace_id": NAMESPACE_ID.to_string(),
            "namespace_path": namespace,
            "project_id": PROJECT_ID.to_string(),
            "project_path": project_path,
            "user_id": USER_ID.to_string(),
            "user_login": USERNAME,
            "user_email": "alice@corp.example",
            "user_access_level": "maintainer",
            "pipeline_id": PIPELINE_ID.to_string(),
            "pipeline_source": "push",
            "job_id": JOB_ID.to_string(),
            "ref": "main",
            "ref_type": "branch",
            "ref_path": "refs/heads/main",
            "ref_protected": "true",
            "runner_id": "17",
            "runner_environment": "self-hosted",
            "sha": "4d2c6a1e0f9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
            "project_visibility": "internal",
            "jti": uuid::Uuid::new_v4().to_string(),
            "iss": state.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + LIFETIME_SECONDS,
            "sub": format!("project_path:{project_path}:ref_type:branch:ref:main"),
            "aud": aud,
        });
        TokenBuilder::new(state.ci_keys.current(), claims)
    }

    /// The key new CI tokens are signed with: its `kid` and public forms, for forgeries.
    pub(crate) fn ci_key(&self) -> Arc<JwtKey> {
        self.state.lock().unwrap().ci_keys.current()
    }

    /// An administrator rotates the CI/CD signing key: a new key under a new `kid` signs new
    /// tokens and is published; the old one stays published or is dropped.
    pub(crate) fn rotate_ci_key(&self, old: OldKey) {
        let kid = format!("ci-jwt-key-{}", uuid::Uuid::new_v4().simple());
        // Made outside the lock: RSA key generation is slow.
        let key = JwtKey::rsa(&kid);
        self.state.lock().unwrap().ci_keys.rotate(key, old);
    }
}
