//! The discovery step: GET the OpenID Connect discovery document over the instance's own
//! client, refusing redirects, odd statuses, oversized or non-JSON answers with a hint each.

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};

use super::failure::Failure;
use crate::config::OutboundSettings;
use crate::domain::BaseUrl;
use crate::oauth::client::instance_http_client;
use crate::oauth::discovery::Discovery;
use crate::oauth::error_chain;
use crate::oauth::tls::TrustRoots;

/// A discovery document is a few KiB; more is not GitLab's.
const MAX_DISCOVERY_BYTES: usize = 1024 * 1024;

pub(super) async fn fetch_discovery(
    base_url: &BaseUrl,
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<Discovery, Failure> {
    let url = base_url.join("/.well-known/openid-configuration");
    let client =
        instance_http_client(trust, limits).map_err(|e| Failure::new("discovery_failed", e))?;
    let mut response = client
        .get(&url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            let code = if e.is_timeout() {
                "discovery_timeout"
            } else {
                "discovery_failed"
            };
            Failure::new(code, format!("GET {url} failed: {}", error_chain(&e)))
        })?;

    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere");
        return Err(Failure::new(
            "discovery_redirected",
            format!(
                "{url} answered HTTP {status} redirecting to {location}; labgate follows no redirects: \
                 if GitLab lives there, use that URL as base_url"
            ),
        ));
    }
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::NOT_FOUND {
            ": is base_url GitLab's root URL, sub-path included (e.g. https://git.corp/gitlab)?"
        } else {
            ""
        };
        return Err(Failure::new(
            "discovery_http_status",
            format!("{url} answered HTTP {status}{hint}"),
        ));
    }

    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_owned();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Failure::new(
            "discovery_failed",
            format!("reading {url} failed: {}", error_chain(&e)),
        )
    })? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DISCOVERY_BYTES {
            return Err(Failure::new(
                "discovery_invalid",
                format!("{url} answered more than 1 MiB"),
            ));
        }
    }
    let document: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        Failure::new(
            "discovery_not_json",
            format!("{url} answered {content_type}, not JSON: is base_url GitLab's root URL?"),
        )
    })?;
    serde_json::from_value(document).map_err(|e| {
        Failure::new(
            "discovery_invalid",
            format!("{url} is not an OpenID Connect discovery document ({e})"),
        )
    })
}
