//! Asking GitLab which project an id names, with the person's own token: the proxy judges a
//! call by the project's full path, which a numeric id does not show, and which an old path
//! (GitLab follows a renamed project's redirect) may not be.

use std::time::Duration;

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A project's description is a few kilobytes; GitLab answering more is not to be believed.
pub const PROJECT_ANSWER_LIMIT: usize = 1 << 20;

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

/// What GitLab's API said about a project id.
pub enum ProjectLookup {
    /// Its full path.
    Found(String),
    /// Not there, or not visible to the token's person.
    Missing,
    /// GitLab refused the token itself (401).
    TokenRefused,
}

/// The full path of the project GitLab's API finds at `id` (a numeric id, or a URL-encoded full
/// path), as the token's person sees it, asked within `timeout`. The error is a sentence for
/// the caller; the cause (which names GitLab's internal address) goes to the log only.
pub async fn project_path(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
    id: &str,
    timeout: Duration,
) -> Result<ProjectLookup, String> {
    let url = format!("{}/api/v4/projects/{id}", base_url.trim_end_matches('/'));
    let response = http
        .get(url)
        .bearer_auth(token.expose_secret())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error.cause = %e, "asking GitLab about a project failed");
            format!("GitLab could not be asked about project {id}; try again")
        })?;
    match response.status().as_u16() {
        200 => body_within(response, PROJECT_ANSWER_LIMIT)
            .await
            .and_then(|body| serde_json::from_slice::<Project>(&body).ok())
            .map(|p| ProjectLookup::Found(p.path_with_namespace))
            .ok_or_else(|| format!("GitLab's answer about project {id} is not understood")),
        401 => Ok(ProjectLookup::TokenRefused),
        403 | 404 => Ok(ProjectLookup::Missing),
        status => Err(format!("GitLab answered {status} about project {id}")),
    }
}

/// The whole body of an answer, if it arrives and holds at most `limit` bytes.
pub async fn body_within(response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}
