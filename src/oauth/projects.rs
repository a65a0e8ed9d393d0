//! Asking GitLab which project an id names, with the person's own token: the proxy judges a
//! call by the project's full path, which a numeric id does not show, and which an old path
//! (GitLab follows a renamed project's redirect) may not be.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

/// The full path of the project GitLab's API finds at `id` (a numeric id, or a URL-encoded full
/// path), as the token's person sees it; `None` when GitLab says it is not there (or not visible
/// to them).
pub async fn project_path(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
    id: &str,
) -> Result<Option<String>, String> {
    let url = format!("{}/api/v4/projects/{id}", base_url.trim_end_matches('/'));
    let response = http
        .get(url)
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(|e| format!("GitLab could not be asked about project {id}: {e}"))?;
    match response.status().as_u16() {
        200 => response
            .json::<Project>()
            .await
            .map(|p| Some(p.path_with_namespace))
            .map_err(|e| format!("GitLab's answer about project {id} is not understood: {e}")),
        403 | 404 => Ok(None),
        status => Err(format!("GitLab answered {status} about project {id}")),
    }
}
