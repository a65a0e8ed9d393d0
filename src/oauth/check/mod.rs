//! The instance check: resolve, connect, TLS (and which CA verified it), discovery, issuer,
//! endpoints, and the OAuth client's ID and secret. Each step says what it saw; the first
//! failure says what to fix.

mod client;
mod discovery_document;
mod failure;
mod handshake;
mod network;
mod report;

use crate::config::OutboundSettings;
use crate::domain::{BaseUrl, CaBundle};
use crate::oauth::discovery::Discovery;
use crate::oauth::tls::TrustRoots;
use client::check_client;
pub use client::{CLIENT_REJECTED, ClientToCheck};
use discovery_document::fetch_discovery;
use failure::Failure;
use handshake::handshake;
use network::{connect, resolve};
pub use report::{CheckReport, CheckStep, StepStatus};

/// The steps in the order they run; a report names each of them once.
const STEPS: [&str; 7] = [
    "resolve",
    "connect",
    "tls",
    "discovery",
    "issuer",
    "endpoints",
    "client",
];

/// Runs every step against `base_url`, trusting `ca` alone when given, else the platform's roots.
pub async fn check_instance(
    base_url: &BaseUrl,
    ca: Option<&CaBundle>,
    client: &ClientToCheck<'_>,
    limits: &OutboundSettings,
) -> CheckReport {
    let mut steps = Vec::new();
    let outcome = run_steps(base_url, TrustRoots::of(ca), client, limits, &mut steps).await;
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
    client: &ClientToCheck<'_>,
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

    pass(check_client(&discovery, client, trust, limits).await?);
    Ok(discovery)
}
