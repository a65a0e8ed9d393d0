//! The first two steps: the host name resolves, and one of its addresses takes a TCP connection.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;

use super::failure::Failure;
use crate::config::OutboundSettings;
use crate::domain::BaseUrl;

pub(super) async fn resolve(
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

pub(super) async fn connect(
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
