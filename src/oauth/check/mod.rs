//! The instance check: resolve, connect, TLS (and which CA verified it), discovery, issuer,
//! endpoints. Each step says what it saw; the first failure says what to fix.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

mod failure;
mod tls_report;

use failure::Failure;
use tls_report::{describe_verified, explain_tls_error};

use super::tls::{self, RecordingVerifier, TrustRoots};
use super::{Discovery, instance_http_client};
use crate::config::OutboundSettings;
use crate::domain::{BaseUrl, CaBundle};

const STEPS: [&str; 6] = [
    "resolve",
    "connect",
    "tls",
    "discovery",
    "issuer",
    "endpoints",
];
const MAX_DISCOVERY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Runs every step against `base_url`, trusting `ca` alone when given, else the platform's roots.
pub async fn check_instance(
    base_url: &BaseUrl,
    ca: Option<&CaBundle>,
    limits: &OutboundSettings,
) -> CheckReport {
    let mut steps = Vec::new();
    let outcome = run_steps(base_url, TrustRoots::of(ca), limits, &mut steps).await;
    let discovery = match outcome {
        Ok(discovery) => Some(discovery),
        Err(failure) => {
            steps.push(CheckStep {
                step: STEPS[steps.len()].to_owned(),
                status: StepStatus::Failed,
                code: Some(failure.code.to_owned()),
                detail: failure.detail,
            });
            None
        }
    };
    for name in &STEPS[steps.len()..] {
        steps.push(CheckStep {
            step: (*name).to_owned(),
            status: StepStatus::Skipped,
            code: None,
            detail: "not run: an earlier step failed".to_owned(),
        });
    }
    CheckReport { steps, discovery }
}

async fn run_steps(
    base_url: &BaseUrl,
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
    steps: &mut Vec<CheckStep>,
) -> Result<Discovery, Failure> {
    let mut pass = |detail: String| {
        let step = STEPS[steps.len()].to_owned();
        steps.push(CheckStep {
            step,
            status: StepStatus::Passed,
            code: None,
            detail,
        });
    };

    let addresses = resolve(base_url, limits).await?;
    let listed: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    pass(format!(
        "{} resolves to {}",
        base_url.host(),
        listed.join(", ")
    ));

    let (stream, peer) = connect(&addresses, limits).await?;
    pass(format!("connected to {peer}"));

    pass(handshake(base_url, stream, trust, limits).await?);

    let discovery = fetch_discovery(base_url, trust, limits).await?;
    pass(format!(
        "fetched {}",
        base_url.join("/.well-known/openid-configuration")
    ));

    if discovery.issuer != base_url.as_str() {
        return Err(Failure::new(
            "issuer_mismatch",
            format!(
                "GitLab's discovery document names the issuer {:?}, but base_url is {:?}: they must be \
                 equal, sub-path included. Set base_url to GitLab's external URL",
                discovery.issuer,
                base_url.as_str()
            ),
        ));
    }
    pass(format!("issuer is {:?}, as expected", discovery.issuer));

    let problems = discovery.problems(base_url.as_str());
    if !problems.is_empty() {
        return Err(Failure::new("endpoints_unsupported", problems.join("; ")));
    }
    let endpoints: Vec<String> = discovery
        .endpoints()
        .iter()
        .map(|(name, url)| format!("{name} {url}"))
        .collect();
    pass(format!(
        "authorization code with PKCE S256 over https: {}",
        endpoints.join(", ")
    ));
    Ok(discovery)
}

async fn resolve(
    base_url: &BaseUrl,
    limits: &OutboundSettings,
) -> Result<Vec<SocketAddr>, Failure> {
    let host = base_url.host_for_connect();
    match timeout(limits.connect_timeout, lookup_host((host, base_url.port()))).await {
        Ok(Ok(found)) => {
            let addresses: Vec<SocketAddr> = found.collect();
            if addresses.is_empty() {
                Err(Failure::new("dns_failed", format!("{host} has no address")))
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(e)) => Err(Failure::new(
            "dns_failed",
            format!("the host name {host} does not resolve ({e})"),
        )),
        Err(_) => Err(Failure::new(
            "dns_failed",
            format!(
                "looking up {host} took longer than {} s",
                limits.connect_timeout.as_secs()
            ),
        )),
    }
}

async fn connect(
    addresses: &[SocketAddr],
    limits: &OutboundSettings,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut failures = Vec::new();
    let mut all_refused = true;
    for address in addresses {
        match timeout(limits.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok((stream, *address)),
            Ok(Err(e)) => {
                all_refused &= e.kind() == io::ErrorKind::ConnectionRefused;
                failures.push(format!("{address}: {e}"));
            }
            Err(_) => {
                all_refused = false;
                failures.push(format!(
                    "{address}: no answer within {} s",
                    limits.connect_timeout.as_secs()
                ));
            }
        }
    }
    let (code, hint) = if all_refused {
        (
            "connection_refused",
            "nothing listens on that port: check the port in base_url",
        )
    } else {
        (
            "connection_failed",
            "check that labgate can reach GitLab through firewalls and proxies",
        )
    };
    Err(Failure::new(
        code,
        format!("cannot connect ({}); {hint}", failures.join("; ")),
    ))
}

async fn handshake(
    base_url: &BaseUrl,
    stream: TcpStream,
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<String, Failure> {
    let tls_setup = |e: rustls::Error| Failure::new("tls_handshake_failed", e.to_string());
    let recorder = Arc::new(RecordingVerifier::new(
        tls::verifier(trust.root_store()).map_err(tls_setup)?,
    ));
    let config = tls::client_config(recorder.clone()).map_err(tls_setup)?;
    let host = base_url.host_for_connect();
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| {
        Failure::new(
            "tls_handshake_failed",
            format!("{host} cannot be a TLS server name ({e})"),
        )
    })?;
    let connecting = TlsConnector::from(Arc::new(config)).connect(server_name.clone(), stream);
    match timeout(limits.connect_timeout, connecting).await {
        Err(_) => Err(Failure::new(
            "tls_handshake_failed",
            format!(
                "the TLS handshake did not finish within {} s",
                limits.connect_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(explain_tls_error(
            &e,
            &recorder.presented_chain(),
            trust,
            host,
        )),
        Ok(Ok(_)) => Ok(describe_verified(
            &recorder.presented_chain(),
            trust,
            &server_name,
        )),
    }
}

async fn fetch_discovery(
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

/// An error and its causes on one line: reqwest hides the useful part in `source()`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
