//! Settings: built-in defaults, then `config/default.toml`, then the file named by
//! `$LABGATE_CONFIG`, then `LABGATE__SECTION__KEY` environment variables. A setting that cannot
//! work stops start-up with a message naming it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

mod admin;
mod effective;
mod secrets;
mod unknown_keys;

pub use admin::{AdminSettings, GitLabSignIn};
use secrets::{admin_token, secret};
use unknown_keys::UnknownKey;

const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub admin: AdminSettings,
    pub outbound: OutboundSettings,
    pub refresher: RefresherSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Any path is kept without its trailing slash (a root URL still prints as `https://host/`).
    pub public_url: Url,
    pub tls: Option<TlsFiles>,
    /// 0: one worker per core.
    pub workers: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub pool_size: u32,
    pub pool_timeout: Duration,
}

/// Which backend, chosen by the URL's scheme. A PostgreSQL URL may hold a password.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub master_key: Option<SecretString>,
    /// The other key of a master-key rotation: opens values, never seals.
    pub previous_master_key: Option<SecretString>,
    pub generated_master_key_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RefresherSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Unreadable(String),
    #[error("{key} ({env}): {message}")]
    Invalid {
        key: &'static str,
        env: String,
        message: String,
    },
}

impl From<config::ConfigError> for ConfigError {
    /// A TOML parse error quotes the offending line, which may hold a secret: keep the
    /// position and the reason, drop the quoted source.
    fn from(error: config::ConfigError) -> Self {
        match error {
            config::ConfigError::FileParse { uri, cause } => {
                let text = cause.to_string();
                let reason: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains('|') && !l.trim().is_empty())
                    .collect();
                let file = uri.unwrap_or_else(|| "built-in defaults".to_owned());
                Self::Unreadable(format!("{file} is not valid TOML: {}", reason.join(": ")))
            }
            other => Self::Unreadable(other.to_string()),
        }
    }
}

impl ConfigError {
    pub fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        let env = format!("LABGATE__{}", key.replace('.', "__").to_uppercase());
        Self::Invalid {
            key,
            env,
            message: message.into(),
        }
    }
}

/// Loads settings from the process environment and the files it names.
pub fn load() -> Result<Settings, ConfigError> {
    let config_file = std::env::var_os("LABGATE_CONFIG").map(PathBuf::from);
    load_from(std::env::vars().collect(), config_file.as_deref())
}

/// Loads settings from `env` (variables as `std::env::vars` would give them) and an optional file.
pub fn load_from(
    env: HashMap<String, String>,
    config_file: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let mut builder = Config::builder()
        .add_source(File::from_str(BUILT_IN_DEFAULTS, FileFormat::Toml))
        .add_source(File::new("config/default.toml", FileFormat::Toml).required(false));
    if let Some(path) = config_file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let variables: Vec<String> = env.keys().cloned().collect();
    let merged = builder
        .add_source(
            Environment::with_prefix("LABGATE")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        )
        .build()?;
    let mut unknown = Vec::new();
    let raw: RawSettings = serde_ignored::deserialize(merged, |path| {
        unknown.push(UnknownKey::new(&path, variables.iter()));
    })?;
    for key in &unknown {
        tracing::warn!("{}", key.describe());
    }
    raw.validate()
}

#[derive(Deserialize)]
struct RawSettings {
    server: RawServer,
    database: RawDatabase,
    security: RawSecurity,
    #[serde(default)]
    admin: RawAdmin,
    outbound: RawOutbound,
    refresher: RawRefresher,
    /// Read by `telemetry` before the settings; known here so that it is not warned about.
    #[serde(default, rename = "log")]
    _log: Option<RawLog>,
}

#[derive(Deserialize)]
struct RawLog {
    #[serde(rename = "format")]
    _format: Option<String>,
}

#[derive(Deserialize)]
struct RawRefresher {
    enabled: bool,
    interval_seconds: u64,
    concurrency: usize,
}

#[derive(Deserialize)]
struct RawServer {
    listen: String,
    public_url: String,
    allow_insecure_public_url: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    workers: usize,
}

#[derive(Deserialize)]
struct RawDatabase {
    url: Option<String>,
    url_file: Option<PathBuf>,
    pool_size: u32,
    pool_timeout_seconds: u64,
}

#[derive(Deserialize)]
struct RawSecurity {
    master_key: Option<String>,
    master_key_file: Option<PathBuf>,
    previous_master_key: Option<String>,
    previous_master_key_file: Option<PathBuf>,
    generated_master_key_path: PathBuf,
}

#[derive(Deserialize, Default)]
struct RawAdmin {
    token: Option<String>,
    token_file: Option<PathBuf>,
    sign_in_instance: Option<String>,
    admin_groups: Option<Vec<String>>,
    admin_users: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawOutbound {
    connect_timeout_seconds: u64,
    request_timeout_seconds: u64,
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let server = self.server.validate()?;
        let url = secret("database.url", self.database.url, self.database.url_file)?
            .ok_or_else(|| ConfigError::invalid("database.url", "is required"))?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        if self.outbound.connect_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "outbound.connect_timeout_seconds",
                "must be at least 1 second",
            ));
        }
        if self.outbound.request_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "outbound.request_timeout_seconds",
                "must be at least 1 second",
            ));
        }
        Ok(Settings {
            server,
            database: DatabaseSettings {
                url: DatabaseUrl::parse(&url)?,
                pool_size: self.database.pool_size,
                pool_timeout: Duration::from_secs(self.database.pool_timeout_seconds.max(1)),
            },
            security: SecuritySettings {
                master_key: secret(
                    "security.master_key",
                    self.security.master_key,
                    self.security.master_key_file,
                )?,
                previous_master_key: secret(
                    "security.previous_master_key",
                    self.security.previous_master_key,
                    self.security.previous_master_key_file,
                )?,
                generated_master_key_path: self.security.generated_master_key_path,
            },
            admin: AdminSettings {
                gitlab_sign_in: admin::gitlab_sign_in(&self.admin)?,
                token: admin_token(self.admin)?,
            },
            outbound: OutboundSettings {
                connect_timeout: Duration::from_secs(self.outbound.connect_timeout_seconds),
                request_timeout: Duration::from_secs(self.outbound.request_timeout_seconds),
            },
            refresher: self.refresher.validate()?,
        })
    }
}

impl RawRefresher {
    fn validate(self) -> Result<RefresherSettings, ConfigError> {
        if self.interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "refresher.interval_seconds",
                "must be at least 1 second",
            ));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::invalid(
                "refresher.concurrency",
                "must be at least 1",
            ));
        }
        Ok(RefresherSettings {
            enabled: self.enabled,
            interval: Duration::from_secs(self.interval_seconds),
            concurrency: self.concurrency,
        })
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerSettings, ConfigError> {
        let listen = self.listen.parse().map_err(|e| {
            ConfigError::invalid(
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080 ({e})",
                    self.listen
                ),
            )
        })?;
        let public_url = parse_public_url(&self.public_url, self.allow_insecure_public_url)?;
        warn_if_public_url_misses(&public_url, listen);
        let tls = match (non_empty(self.tls_cert), non_empty(self.tls_key)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "server.tls_key",
                    "is required when server.tls_cert is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "server.tls_cert",
                    "is required when server.tls_key is set",
                ));
            }
        };
        Ok(ServerSettings {
            listen,
            public_url,
            tls,
            workers: self.workers,
        })
    }
}

/// A loopback `public_url` on another port than `listen` is almost always the default left
/// behind when the port was changed: redirect URLs and links would lead nowhere.
fn warn_if_public_url_misses(public_url: &Url, listen: SocketAddr) {
    let port = public_url.port_or_known_default();
    if is_loopback(public_url) && listen.port() != 0 && port != Some(listen.port()) {
        tracing::warn!(
            "server.public_url is {public_url} but server.listen is {listen}: redirect URLs and \
             connect links will not reach this server; set server.public_url \
             (LABGATE__SERVER__PUBLIC_URL) to the URL people and GitLab use"
        );
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_public_url(input: &str, allow_insecure: bool) -> Result<Url, ConfigError> {
    let key = "server.public_url";
    let mut url = Url::parse(input)
        .map_err(|e| ConfigError::invalid(key, format!("{input:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::invalid(
            key,
            format!("{input:?} must be an http or https URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            key,
            "must not have a query string or fragment",
        ));
    }
    if url.scheme() == "http" && !is_loopback(&url) && !allow_insecure {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{input:?} is plain http on a host other than loopback: redirect URLs and admin cookies \
                 would travel in clear. Use https, or set server.allow_insecure_public_url = true"
            ),
        ));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

impl DatabaseUrl {
    pub fn parse(url: &SecretString) -> Result<Self, ConfigError> {
        let url = url.expose_secret();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::invalid(
                    "database.url",
                    "sqlite:// needs a file path, e.g. sqlite://data/labgate.db",
                ));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // libpq quotes a malformed URL back, password included: refuse it here, unquoted.
            if Url::parse(url).is_err() || has_malformed_percent_escape(url) {
                return Err(ConfigError::invalid(
                    "database.url",
                    "is not a valid postgres:// URL: percent-encode special characters in the user name and password",
                ));
            }
            Ok(Self::Postgres(SecretString::from(url.to_owned())))
        } else {
            Err(ConfigError::invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ))
        }
    }
}

fn has_malformed_percent_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)))
    })
}

fn non_empty(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests;
