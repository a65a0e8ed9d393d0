use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let builder = instance_client_builder(trust, limits)?.timeout(limits.request_timeout);
    build(builder)
}

/// How long a forwarded git or API call may go without a byte from GitLab. A long clone has no
/// overall limit: GitLab may take minutes to pack a big repository, and then streams.
const FORWARD_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// The client the proxy forwards calls with: as every client of the instance, but no overall
/// time limit, only one between reads.
fn forwarding_http_client(
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<reqwest::Client, String> {
    let builder = instance_client_builder(trust, limits)?.read_timeout(FORWARD_READ_TIMEOUT);
    build(builder)
}

fn instance_client_builder(
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<reqwest::ClientBuilder, String> {
    let verifier = tls::verifier(trust.root_store()).map_err(|e| e.to_string())?;
    let tls = tls::client_config(verifier as Arc<_>).map_err(|e| e.to_string())?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .no_proxy()
        .redirect(Policy::none())
        .connect_timeout(limits.connect_timeout)
        .user_agent(concat!("labgate/", env!("CARGO_PKG_VERSION"))))
}

fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Which of an instance's clients: the one for labgate's own calls, or the proxy's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ClientUse {
    Calls,
    Forwarding,
}

/// One HTTP client per instance, built on first use and kept while the instance's CA bundle
/// stays the same; a changed bundle gets a new client.
#[derive(Default)]
pub struct InstanceClients {
    clients: Mutex<HashMap<(String, ClientUse), BuiltClient>>,
}

/// A client, and the CA bundle (PEM) it was built with.
type BuiltClient = (Option<String>, reqwest::Client);

impl InstanceClients {
    pub fn client_for(
        &self,
        instance_id: &str,
        ca: Option<&CaBundle>,
        limits: &OutboundSettings,
    ) -> Result<reqwest::Client, String> {
        let pem = ca.map(CaBundle::pem);
        self.cached(instance_id, ClientUse::Calls, pem, || {
            instance_http_client(TrustRoots::of(ca), limits)
        })
    }

    /// The proxy's client for an instance whose CA bundle is stored as `ca_pem`; the bundle is
    /// parsed only when the client is built.
    pub fn forwarding_client_for(
        &self,
        instance_id: &str,
        ca_pem: Option<&str>,
        limits: &OutboundSettings,
    ) -> Result<reqwest::Client, String> {
        self.cached(instance_id, ClientUse::Forwarding, ca_pem, || {
            let ca = ca_pem
                .map(CaBundle::parse)
                .transpose()
                .map_err(|e| format!("the stored CA bundle is not valid: {e}"))?;
            forwarding_http_client(TrustRoots::of(ca.as_ref()), limits)
        })
    }

    fn cached(
        &self,
        instance_id: &str,
        used_for: ClientUse,
        pem: Option<&str>,
        build: impl FnOnce() -> Result<reqwest::Client, String>,
    ) -> Result<reqwest::Client, String> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "the client cache is poisoned".to_owned())?;
        let key = (instance_id.to_owned(), used_for);
        if let Some((cached_pem, client)) = clients.get(&key)
            && cached_pem.as_deref() == pem
        {
            return Ok(client.clone());
        }
        let client = build()?;
        clients.insert(key, (pem.map(str::to_owned), client.clone()));
        Ok(client)
    }
}
