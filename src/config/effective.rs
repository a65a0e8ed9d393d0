//! The settings in effect, as TOML with every secret masked: what `labgate config check` prints,
//! so that an operator sees what the layers added up to without a secret reaching a terminal.

use std::fmt::Write as _;

use secrecy::ExposeSecret;
use url::Url;

use super::{DatabaseUrl, Settings};

/// What a masked secret prints as.
const MASK: &str = "********";

impl Settings {
    pub fn effective(&self) -> String {
        let mut toml = Toml::default();
        let server = &self.server;
        toml.section("server");
        toml.text("listen", &server.listen.to_string());
        toml.text("public_url", server.public_url.as_str());
        if let Some(tls) = &server.tls {
            toml.text("tls_cert", &tls.cert.display().to_string());
            toml.text("tls_key", &tls.key.display().to_string());
        }
        toml.number("workers", server.workers);

        let database = &self.database;
        toml.section("database");
        match &database.url {
            DatabaseUrl::Sqlite(path) => toml.text("url", &format!("sqlite://{}", path.display())),
            DatabaseUrl::Postgres(url) => toml.text("url", &without_password(url.expose_secret())),
        }
        toml.number("pool_size", database.pool_size);
        toml.number("pool_timeout_seconds", database.pool_timeout.as_secs());

        toml.section("security");
        match &self.security.master_key {
            Some(_) => toml.text("master_key", MASK),
            None => {
                toml.comment("no master_key: the generated file is used");
                let path = self.security.generated_master_key_path.display();
                toml.text("generated_master_key_path", &path.to_string());
            }
        }
        if self.security.previous_master_key.is_some() {
            toml.text("previous_master_key", MASK);
        }
        toml.section("admin");
        match &self.admin.token {
            Some(_) => toml.text("token", MASK),
            None => toml.comment("no token: one is generated and printed on first start"),
        }
        if let Some(sign_in) = &self.admin.gitlab_sign_in {
            toml.text("sign_in_instance", &sign_in.instance);
            toml.texts("admin_groups", &sign_in.groups);
            toml.texts("admin_users", &sign_in.users);
        }

        toml.section("outbound");
        let outbound = &self.outbound;
        toml.number(
            "connect_timeout_seconds",
            outbound.connect_timeout.as_secs(),
        );
        toml.number(
            "request_timeout_seconds",
            outbound.request_timeout.as_secs(),
        );
        toml.section("refresher");
        let refresher = &self.refresher;
        toml.number("enabled", refresher.enabled);
        toml.number("interval_seconds", refresher.interval.as_secs());
        toml.number("concurrency", refresher.concurrency);
        toml.0
    }
}

#[derive(Default)]
struct Toml(String);

impl Toml {
    fn section(&mut self, name: &str) {
        let gap = if self.0.is_empty() { "" } else { "\n" };
        let _ = writeln!(self.0, "{gap}[{name}]");
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {text}");
    }

    fn text(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.0, "{key} = {}", quoted(value));
    }

    fn texts(&mut self, key: &str, values: &[String]) {
        let quoted: Vec<String> = values.iter().map(|v| quoted(v)).collect();
        let _ = writeln!(self.0, "{key} = [{}]", quoted.join(", "));
    }

    /// A number or boolean, which TOML writes as Rust does.
    fn number(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{key} = {value}");
    }
}

/// A TOML basic string (JSON's escaping is TOML's for these characters).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// A PostgreSQL URL with its password, in the user part or the query, masked.
fn without_password(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return MASK.to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    }
    let query: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(key, value)| {
            let value = if key.eq_ignore_ascii_case("password") {
                MASK.to_owned()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    if !query.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(query);
    }
    parsed.into()
}
