//! Trust roots and rustls configurations for calls to one instance.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::domain::CaBundle;

/// Whom an instance's certificate must chain to: its own CA bundle alone, or the platform's roots.
#[derive(Clone, Copy)]
pub enum TrustRoots<'a> {
    Bundle(&'a CaBundle),
    Platform,
}

impl<'a> TrustRoots<'a> {
    pub fn of(ca: Option<&'a CaBundle>) -> Self {
        ca.map_or(Self::Platform, Self::Bundle)
    }

    pub(super) fn root_store(self) -> Arc<RootCertStore> {
        match self {
            Self::Platform => platform_roots(),
            Self::Bundle(bundle) => {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(bundle.certificates().iter().cloned());
                Arc::new(store)
            }
        }
    }

    /// How a person would name these roots in a message.
    pub(super) fn describe(self) -> String {
        match self {
            Self::Platform => "the platform's trusted CAs".to_owned(),
            Self::Bundle(bundle) => format!("the configured CA ({})", bundle.subjects().join("; ")),
        }
    }
}

pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The operating system's roots, read once per process.
fn platform_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "could not load a platform root certificate");
            }
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(loaded.certs);
            Arc::new(store)
        })
        .clone()
}

pub(super) fn verifier(
    roots: Arc<RootCertStore>,
) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| rustls::Error::General(format!("no usable trust roots: {e}")))
}

pub(super) fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Verifies exactly as webpki does, and keeps the chain the server presented, so that a
/// failed check can say whose certificate it was, who issued it and when it expired.
#[derive(Debug)]
pub(super) struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    presented: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    pub(super) fn new(inner: Arc<WebPkiServerVerifier>) -> Self {
        Self {
            inner,
            presented: Mutex::new(Vec::new()),
        }
    }

    /// End-entity first, then intermediates; empty when no certificate was presented.
    pub(super) fn presented_chain(&self) -> Vec<CertificateDer<'static>> {
        self.presented
            .lock()
            .map(|chain| chain.clone())
            .unwrap_or_default()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut presented) = self.presented.lock() {
            *presented = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|cert| cert.clone().into_owned())
                .collect();
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    use super::*;

    #[test]
    fn a_bundle_trusts_its_own_roots_and_nothing_else() {
        let ca_pem = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .self_signed(&KeyPair::generate().unwrap())
                .unwrap()
                .pem()
        };
        let bundle = CaBundle::parse(&format!("{}{}", ca_pem("Root A"), ca_pem("Root B"))).unwrap();
        let store = TrustRoots::Bundle(&bundle).root_store();
        assert_eq!(
            store.len(),
            2,
            "exactly the bundle's roots, no platform roots beside them"
        );
        assert!(
            TrustRoots::Platform.root_store().len() != 2
                || store.roots != TrustRoots::Platform.root_store().roots
        );
    }
}
