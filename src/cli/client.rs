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
    proof: Proof,
    pub default_subject: Option<String>,
    http: reqwest::Client,
}

/// How the tool proves it may act as the service.
enum Proof {
    /// The service's client secret: the client credentials grant.
    ClientSecret(SecretString),
    /// A workload's signed token (a GitLab CI/CD ID token): token exchange, no static secret.
    IdToken(SecretString),
}

impl LabgateClient {
    /// Reads `LABGATE_URL`, `LABGATE_CLIENT_ID`, `LABGATE_CLIENT_SECRET` (or `_FILE`) or else
    /// `LABGATE_ID_TOKEN` (or `_FILE`), `LABGATE_SUBJECT` and `LABGATE_CA_FILE`.
    pub(super) fn from_env() -> Result<Self, ToolError> {
        let url = required(
            "LABGATE_URL",
            "labgate's URL, e.g. https://labgate.corp.example",
        )?;
        let client_id = required("LABGATE_CLIENT_ID", "the service's client ID")?;
        let proof = match (
            secret_from_env("LABGATE_CLIENT_SECRET")?,
            secret_from_env("LABGATE_ID_TOKEN")?,
        ) {
            (Some(secret), _) => Proof::ClientSecret(secret),
            (None, Some(id_token)) => Proof::IdToken(id_token),
            (None, None) => {
                return Err(ToolError(
                    "set LABGATE_CLIENT_SECRET (or LABGATE_CLIENT_SECRET_FILE), or in a CI job or \
                     workload LABGATE_ID_TOKEN (or LABGATE_ID_TOKEN_FILE)"
                        .into(),
                ));
            }
        };
        let ca_file = var("LABGATE_CA_FILE").map(PathBuf::from);
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client_id,
            proof,
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
        let endpoint = format!("{}/api/v1/service-token", self.url);
        let (request, check) = match &self.proof {
            Proof::ClientSecret(secret) => (
                self.http
                    .post(endpoint)
                    .basic_auth(
                        form_encode(&self.client_id),
                        Some(form_encode(secret.expose_secret())),
                    )
                    .form(&[("grant_type", "client_credentials")]),
                "LABGATE_CLIENT_ID and LABGATE_CLIENT_SECRET",
            ),
            Proof::IdToken(id_token) => (
                self.http.post(endpoint).form(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("client_id", self.client_id.as_str()),
                    ("subject_token", id_token.expose_secret()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ]),
                "LABGATE_CLIENT_ID, LABGATE_ID_TOKEN and the service's identities",
            ),
        };
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        match body["access_token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => {
                let error = body["error"].as_str().unwrap_or(status.as_str());
                let why = body["error_description"]
                    .as_str()
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default();
                Err(ToolError(format!(
                    "labgate refused the service credentials ({error}{why}): check {check}"
                )))
            }
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

/// A secret from `NAME` or the file `NAME_FILE` (trailing whitespace dropped), not both.
fn secret_from_env(name: &str) -> Result<Option<SecretString>, ToolError> {
    let file = format!("{name}_FILE");
    match (var(name), var(&file)) {
        (Some(_), Some(_)) => Err(ToolError(format!("set {name} or {file}, not both"))),
        (Some(secret), None) => Ok(Some(SecretString::from(secret))),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| Some(SecretString::from(s.trim_end().to_owned())))
            .map_err(|e| ToolError(format!("cannot read {file} {path}: {e}"))),
        (None, None) => Ok(None),
    }
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
