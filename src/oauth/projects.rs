//! Asking GitLab which project a numeric id names, with the person's own token: the proxy
//! judges a call by the project's full path, which a numeric id does not show.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

/// The full path of project `id` as the token's person sees it; `None` when GitLab says it is
/// not there (or not visible to them).
pub async fn project_path(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
    id: u64,
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
