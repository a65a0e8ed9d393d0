use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::redirect::Policy;

use super::tls::{self, TrustRoots};
use crate::config::OutboundSettings;
use crate::domain::CaBundle;

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

/// One HTTP client per instance, built on first use and kept while the instance's CA bundle
/// stays the same; a changed bundle gets a new client.
#[derive(Default)]
pub struct InstanceClients {
    clients: Mutex<HashMap<String, (Option<String>, reqwest::Client)>>,
}

impl InstanceClients {
    pub fn client_for(
        &self,
        instance_id: &str,
        ca: Option<&CaBundle>,
        limits: &OutboundSettings,
    ) -> Result<reqwest::Client, String> {
        let pem = ca.map(|ca| ca.pem().to_owned());
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "the client cache is poisoned".to_owned())?;
        if let Some((cached_pem, client)) = clients.get(instance_id)
            && *cached_pem == pem
        {
            return Ok(client.clone());
        }
        let client = instance_http_client(TrustRoots::of(ca), limits)?;
        clients.insert(instance_id.to_owned(), (pem, client.clone()));
        Ok(client)
    }
}
