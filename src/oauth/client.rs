use std::sync::Arc;

use reqwest::redirect::Policy;

use super::tls::{self, TrustRoots};
use crate::config::OutboundSettings;

/// The HTTP client for one instance: only that instance's trust roots, https only, no
/// redirects followed (a redirect from GitLab is a configuration to fix, or an SSRF lure),
/// no proxy from the environment (the check's steps must describe the connection used),
/// and bounded connect and total times.
pub fn instance_http_client(
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<reqwest::Client, String> {
    let verifier = tls::verifier(trust.root_store()).map_err(|e| e.to_string())?;
    let tls = tls::client_config(verifier as Arc<_>).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .no_proxy()
        .redirect(Policy::none())
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.request_timeout)
        .user_agent(concat!("labgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}
