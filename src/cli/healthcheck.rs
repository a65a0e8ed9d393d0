//! `labgate healthcheck`: asks the labgate configured here whether it is alive, for a
//! container's `HEALTHCHECK` (the image has no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};

const TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn run() -> anyhow::Result<()> {
    let settings = crate::config::load()?;
    let scheme = if settings.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{}/healthz", loopback(settings.server.listen));
    // Loopback to this host's own server, sending nothing secret: its certificate, made for
    // the public name, is not checked.
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(true)
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("labgate does not answer at {url}"))?;
    if !response.status().is_success() {
        bail!("labgate answered {} at {url}", response.status());
    }
    Ok(())
}

/// Where to reach a server listening on `listen` from this host: a wildcard address is
/// reached on loopback.
fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}
