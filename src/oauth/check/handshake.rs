//! The TLS step: the handshake with the instance's trust roots, saying which CA verified
//! GitLab's certificate, or why it was refused in terms of the certificate GitLab showed.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::failure::Failure;
use crate::config::OutboundSettings;
use crate::domain::{BaseUrl, CaBundle};
use crate::oauth::tls::{self, RecordingVerifier, TrustRoots};

pub(super) async fn handshake(
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

/// Turns a failed handshake into what a person can act on, naming the certificate GitLab showed.
fn explain_tls_error(
    error: &io::Error,
    chain: &[CertificateDer<'_>],
    trust: TrustRoots<'_>,
    host: &str,
) -> Failure {
    let presented = chain.first().and_then(summarize);
    let shown = presented
        .as_ref()
        .map(|c| {
            format!(
                "GitLab's certificate (subject {}, issued by {})",
                c.subject, c.issuer
            )
        })
        .unwrap_or_else(|| "GitLab's certificate".to_owned());
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(rustls::Error::InvalidCertificate(cert_error)) = rustls_error else {
        let cause = rustls_error.map_or_else(|| error.to_string(), ToString::to_string);
        return Failure::new(
            "tls_handshake_failed",
            format!("the TLS handshake failed ({cause}): is this port serving HTTPS?"),
        );
    };
    match cert_error {
        CertificateError::UnknownIssuer => {
            let fix = match trust {
                TrustRoots::Platform => {
                    "set ca_pem to the private CA that signs GitLab's certificate"
                }
                TrustRoots::Bundle(_) => "set ca_pem to the CA that issued it",
            };
            Failure::new(
                "tls_unknown_ca",
                format!("{shown} is not signed by {}: {fix}", trust.describe()),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let when = presented
                .as_ref()
                .map(|c| format!(" on {}", c.not_after))
                .unwrap_or_default();
            Failure::new(
                "tls_certificate_expired",
                format!("{shown} expired{when}: renew it on the GitLab server"),
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = presented
                .as_ref()
                .map(|c| c.names.join(", "))
                .unwrap_or_default();
            Failure::new(
                "tls_hostname_mismatch",
                format!(
                    "{shown} is valid for [{names}], not for {host}: use a base_url whose host the \
                     certificate names, or reissue the certificate"
                ),
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Failure::new(
                "tls_certificate_not_yet_valid",
                format!("{shown} is not valid yet: check the clocks of GitLab and labgate"),
            )
        }
        other => Failure::new(
            "tls_invalid_certificate",
            format!("{shown} was refused: {other:?}"),
        ),
    }
}

fn describe_verified(
    chain: &[CertificateDer<'_>],
    trust: TrustRoots<'_>,
    server_name: &ServerName<'_>,
) -> String {
    let subject = chain
        .first()
        .and_then(summarize)
        .map(|c| c.subject)
        .unwrap_or_default();
    let verified_by = match trust {
        TrustRoots::Bundle(bundle) => verifying_ca(chain, bundle, server_name)
            .map(|ca| format!("the configured CA {ca}"))
            .unwrap_or_else(|| trust.describe()),
        TrustRoots::Platform => {
            let top_issuer = chain
                .last()
                .and_then(summarize)
                .map(|c| c.issuer)
                .unwrap_or_default();
            format!("the platform's trusted CAs (chain issued by {top_issuer})")
        }
    };
    format!("certificate {subject} verified by {verified_by}")
}

/// Which CA of the bundle the chain leads to: each root is tried on its own.
fn verifying_ca<'a>(
    chain: &[CertificateDer<'_>],
    bundle: &'a CaBundle,
    server_name: &ServerName<'_>,
) -> Option<&'a str> {
    let (end_entity, intermediates) = chain.split_first()?;
    bundle
        .certificates()
        .iter()
        .zip(bundle.subjects())
        .find_map(|(root, subject)| {
            let mut store = RootCertStore::empty();
            store.add(root.clone()).ok()?;
            let verifier = tls::verifier(Arc::new(store)).ok()?;
            verifier
                .verify_server_cert(end_entity, intermediates, server_name, &[], UnixTime::now())
                .ok()
                .map(|_| subject.as_str())
        })
}

struct CertificateSummary {
    subject: String,
    issuer: String,
    not_after: String,
    names: Vec<String>,
}

fn summarize(der: &CertificateDer<'_>) -> Option<CertificateSummary> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.to_string(),
        names,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}
