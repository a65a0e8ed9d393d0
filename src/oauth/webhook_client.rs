//! The client webhook deliveries leave through: the platform's trust roots, no redirects
//! followed, no proxy from the environment, bounded connect and total times. Plain http is
//! possible only because a webhook URL was refused unless it is https or loopback.

use std::sync::Arc;

use reqwest::header::CONTENT_TYPE;
use reqwest::redirect::Policy;

use super::error_chain;
use super::tls::{self, TrustRoots};
use crate::config::OutboundSettings;
use crate::crypto::SIGNATURE_HEADER;

pub fn webhook_http_client(limits: &OutboundSettings) -> Result<reqwest::Client, String> {
    let verifier = tls::verifier(TrustRoots::Platform.root_store()).map_err(|e| e.to_string())?;
    let tls = tls::client_config(verifier as Arc<_>).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .redirect(Policy::none())
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.request_timeout)
        .user_agent(concat!("labgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

/// POSTs one event; `Err` says why it did not arrive (a non-2xx answer, a timeout, a refused
/// connection), without the URL, which may carry a token of the receiver's.
pub async fn post_event(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    signature: &str,
) -> Result<(), String> {
    let sent = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) if answer.status().is_redirection() => Err(format!(
            "answered {} (redirects are not followed)",
            answer.status()
        )),
        Ok(answer) => Err(format!("answered {}", answer.status())),
        Err(e) if e.is_timeout() => Err("timed out".to_owned()),
        Err(e) => Err(error_chain(&e.without_url())),
    }
}
