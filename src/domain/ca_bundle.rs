use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Invalid;

/// The private CA certificates an instance is trusted with: when set, the only roots
/// labgate trusts for that instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pem: String,
    certificates: Vec<CertificateDer<'static>>,
    subjects: Vec<String>,
}

impl CaBundle {
    /// Accepts one or more `CERTIFICATE` blocks, each a CA certificate; refuses anything
    /// else, a pasted private key above all.
    pub fn parse(pem: &str) -> Result<Self, Invalid> {
        let mut certificates = Vec::new();
        let mut subjects = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
            let (kind, der) =
                section.map_err(|e| Invalid::new(format!("is not valid PEM ({e})")))?;
            match kind {
                SectionKind::Certificate => {
                    let number = certificates.len() + 1;
                    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| {
                        Invalid::new(format!(
                            "certificate #{number} is not a valid X.509 certificate ({e})"
                        ))
                    })?;
                    let subject = cert.subject().to_string();
                    if !cert.is_ca() {
                        return Err(Invalid::new(format!(
                            "certificate #{number} ({subject}) is not a CA certificate: give the CA \
                             that signed GitLab's certificate, not the server certificate itself"
                        )));
                    }
                    let certificate = CertificateDer::from(der);
                    rustls::RootCertStore::empty().add(certificate.clone()).map_err(|e| {
                        Invalid::new(format!("certificate #{number} ({subject}) cannot serve as a trust root ({e})"))
                    })?;
                    subjects.push(subject);
                    certificates.push(certificate);
                }
                SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey => {
                    return Err(Invalid::new(
                        "contains a private key: remove it, labgate needs only the CA certificate",
                    ));
                }
                _ => {}
            }
        }
        if certificates.is_empty() {
            return Err(Invalid::new(
                "contains no certificate: expected a PEM block starting with -----BEGIN CERTIFICATE-----",
            ));
        }
        Ok(Self {
            pem: pem.trim().to_owned() + "\n",
            certificates,
            subjects,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// Each CA's subject, in bundle order, e.g. `CN=Corp Root CA, O=Corp`.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }
}
