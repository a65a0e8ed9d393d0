//! What the client-side commands share: settings from the environment, an HTTP client that
//! trusts labgate's CA, a service token, and the credentials call. Failures are one line for
//! stderr; nothing waits longer than the timeouts below.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure worth exactly one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct ToolError(pub String);

pub(super) struct LabgateClient {
    url: String,
    client_id: String,
    client_secret: SecretString,
    pub default_subject: Option<String>,
    http: reqwest::Client,
}

impl LabgateClient {
    /// Reads `LABGATE_URL`, `LABGATE_CLIENT_ID`, `LABGATE_CLIENT_SECRET` (or `_FILE`),
    /// `LABGATE_SUBJECT` and `LABGATE_CA_FILE`.
    pub(super) fn from_env() -> Result<Self, ToolError> {
        let url = required(
            "LABGATE_URL",
            "labgate's URL, e.g. https://labgate.corp.example",
        )?;
        let client_id = required("LABGATE_CLIENT_ID", "the service's client ID")?;
        let client_secret = match (
            var("LABGATE_CLIENT_SECRET"),
            var("LABGATE_CLIENT_SECRET_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ToolError(
                    "set LABGATE_CLIENT_SECRET or LABGATE_CLIENT_SECRET_FILE, not both".into(),
                ));
            }
            (Some(secret), None) => secret,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|s| s.trim_end().to_owned())
                .map_err(|e| {
                    ToolError(format!(
                        "cannot read LABGATE_CLIENT_SECRET_FILE {path}: {e}"
                    ))
                })?,
            (None, None) => {
                return Err(ToolError(
                    "LABGATE_CLIENT_SECRET (or LABGATE_CLIENT_SECRET_FILE) is not set".into(),
                ));
            }
        };
        let ca_file = var("LABGATE_CA_FILE").map(PathBuf::from);
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client_id,
            client_secret: SecretString::from(client_secret),
            default_subject: var("LABGATE_SUBJECT"),
            http: http_client(ca_file)?,
        })
    }

    /// `subject`, or `LABGATE_SUBJECT`.
    pub(super) fn subject(&self, given: Option<String>) -> Result<String, ToolError> {
        given
            .or_else(|| self.default_subject.clone())
            .ok_or_else(|| ToolError("no subject: pass --subject or set LABGATE_SUBJECT".into()))
    }

    async fn service_token(&self) -> Result<String, ToolError> {
        let response = self
            .http
            .post(format!("{}/api/v1/service-token", self.url))
            .basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(self.client_secret.expose_secret())),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        match body["access_token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(ToolError(format!(
                "labgate refused the service credentials ({}): check LABGATE_CLIENT_ID and LABGATE_CLIENT_SECRET",
                body["error"].as_str().unwrap_or(status.as_str())
            ))),
        }
    }

    /// `POST /api/v1/credentials`; labgate's problem detail becomes the error line.
    pub(super) async fn credentials(&self, request: Value) -> Result<Value, ToolError> {
        let token = self.service_token().await?;
        self.call(
            self.http
                .post(format!("{}/api/v1/credentials", self.url))
                .bearer_auth(token)
                .json(&request),
        )
        .await
    }

    /// `POST /api/v1/access-grants`: a token for labgate's proxy.
    pub(super) async fn access_grant(&self, request: Value) -> Result<Value, ToolError> {
        let token = self.service_token().await?;
        self.call(
            self.http
                .post(format!("{}/api/v1/access-grants", self.url))
                .bearer_auth(token)
                .json(&request),
        )
        .await
    }

    /// labgate's own URL, without a trailing `/`.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The instances this service may use (`name`, `base_url`).
    pub(super) async fn instances(&self) -> Result<Vec<Value>, ToolError> {
        let token = self.service_token().await?;
        let listed = self
            .call(
                self.http
                    .get(format!("{}/api/v1/instances", self.url))
                    .bearer_auth(token),
            )
            .await?;
        Ok(listed["instances"].as_array().cloned().unwrap_or_default())
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ToolError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_else(|_| json!({}));
        if status.is_success() {
            Ok(body)
        } else {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            let code = body["code"].as_str().unwrap_or(status.as_str());
            Err(ToolError(format!(
                "labgate answered {} {code}: {detail}",
                status.as_u16()
            )))
        }
    }

    fn unreachable(&self, error: reqwest::Error) -> ToolError {
        let why = if error.is_timeout() {
            "no answer in time".to_owned()
        } else {
            source_chain(&error)
        };
        ToolError(format!("cannot reach labgate at {}: {why}", self.url))
    }
}

/// The platform's roots, plus labgate's own CA when it runs with a private one.
fn http_client(ca_file: Option<PathBuf>) -> Result<reqwest::Client, ToolError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect())
            .map_err(|e| {
                ToolError(format!(
                    "cannot read LABGATE_CA_FILE {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(ToolError(format!(
                "LABGATE_CA_FILE {} holds no certificate",
                path.display()
            )));
        }
        roots.add_parsable_certificates(certs);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ToolError(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .build()
        .map_err(|e| ToolError(format!("cannot build an HTTP client: {e}")))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str, what: &str) -> Result<String, ToolError> {
    var(name).ok_or_else(|| ToolError(format!("{name} is not set: it must hold {what}")))
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
