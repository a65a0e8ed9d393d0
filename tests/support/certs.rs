//! Throwaway certificate authorities and server certificates, made with rcgen for each test.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// PEMs of the intermediates between this CA and its root, this CA first (empty for a root).
    intermediates: Vec<String>,
}

/// A server certificate and its key, PEM-encoded, as a web server is given them.
pub(crate) struct ServerCert {
    pub chain_pem: String,
    pub key_pem: String,
}

#[derive(Clone, Copy)]
pub(crate) enum Validity {
    Current,
    Expired,
}

impl TestCa {
    pub(crate) fn new(common_name: &str) -> Self {
        let issuer =
            CertifiedIssuer::self_signed(ca_params(common_name), KeyPair::generate().unwrap())
                .unwrap();
        Self {
            issuer,
            intermediates: Vec::new(),
        }
    }

    /// An intermediate CA under this one, as corporate PKIs issue server certificates.
    pub(crate) fn intermediate(&self, common_name: &str) -> Self {
        let issuer = CertifiedIssuer::signed_by(
            ca_params(common_name),
            KeyPair::generate().unwrap(),
            &self.issuer,
        )
        .unwrap();
        let mut intermediates = vec![issuer.pem()];
        intermediates.extend(self.intermediates.iter().cloned());
        Self {
            issuer,
            intermediates,
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP literals) signed by this CA.
    pub(crate) fn issue(&self, names: &[&str], validity: Validity) -> ServerCert {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        if let Validity::Expired = validity {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain_pem = std::iter::once(cert.pem())
            .chain(self.intermediates.iter().cloned())
            .collect();
        ServerCert {
            chain_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl ServerCert {
    pub(crate) fn rustls_server_config(&self) -> rustls::ServerConfig {
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
    }
}
