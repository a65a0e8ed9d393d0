//! Settings nobody reads: a misspelt key (`LABGATE__SERVER__LISTN`, `[servr]`) would otherwise
//! be ignored in silence while the default it meant to change stays in force.

/// Every key labgate reads, as `section.key`. A unit test holds this list to the settings
/// types: each key here deserialises without being ignored, and each default is listed.
pub(super) const KNOWN_KEYS: &[&str] = &[
    "server.listen",
    "server.public_url",
    "server.allow_insecure_public_url",
    "server.tls_cert",
    "server.tls_key",
    "server.workers",
    "database.url",
    "database.url_file",
    "database.pool_size",
    "database.pool_timeout_seconds",
    "security.master_key",
    "security.master_key_file",
    "security.previous_master_key",
    "security.previous_master_key_file",
    "security.generated_master_key_path",
    "admin.token",
    "admin.token_file",
    "admin.sign_in_instance",
    "admin.admin_groups",
    "admin.admin_users",
    "outbound.connect_timeout_seconds",
    "outbound.request_timeout_seconds",
    "refresher.enabled",
    "refresher.interval_seconds",
    "refresher.concurrency",
    "log.format",
];

/// A key the settings do not read: where it was set, and the known key it most resembles.
pub(super) struct UnknownKey {
    key: String,
    /// The environment variable that set it, or `None` when it came from a file.
    variable: Option<String>,
    nearest: Option<&'static str>,
}

impl UnknownKey {
    /// The key at `path` (`server.listn`), looked up among the `LABGATE__` variables.
    pub(super) fn new<'a>(
        path: &serde_ignored::Path<'_>,
        variables: impl Iterator<Item = &'a String>,
    ) -> Self {
        // serde_ignored writes `?` for each optional value on the way.
        let key = path
            .to_string()
            .split('.')
            .filter(|segment| *segment != "?")
            .collect::<Vec<_>>()
            .join(".");
        let spelled = format!("LABGATE__{}", key.replace('.', "__")).to_ascii_uppercase();
        let variable = variables
            .into_iter()
            .find(|name| name.to_ascii_uppercase() == spelled)
            .cloned();
        let nearest = nearest_known(&key);
        Self {
            key,
            variable,
            nearest,
        }
    }

    /// The warning's text.
    pub(super) fn describe(&self) -> String {
        let place = match &self.variable {
            Some(variable) => format!("the environment variable {variable}"),
            None => format!("the key {} in a configuration file", self.key),
        };
        match self.nearest {
            Some(known) => format!("{place} is not a setting labgate reads; did you mean {known}?"),
            None => format!("{place} is not a setting labgate reads"),
        }
    }
}

/// The known key closest to `key` by edit distance, when close enough to be a misspelling.
/// A whole section (`[servr]`) is compared with the sections.
fn nearest_known(key: &str) -> Option<&'static str> {
    let sections = KNOWN_KEYS.iter().filter_map(|known| known.split_once('.'));
    let candidates: Vec<&'static str> = if key.contains('.') {
        KNOWN_KEYS.to_vec()
    } else {
        sections.map(|(section, _)| section).collect()
    };
    candidates
        .into_iter()
        .map(|known| (strsim::levenshtein(key, known), known))
        .min()
        .filter(|(distance, known)| *distance <= (known.len() / 4).max(2))
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use config::{Config, File, FileFormat};

    use super::*;

    /// The keys without a default, each set: with the defaults, every known key.
    const OPTIONAL: &str = r#"
        [server]
        tls_cert = "c.pem"
        tls_key = "k.pem"
        [database]
        url_file = "u"
        [security]
        master_key = "m"
        master_key_file = "m"
        previous_master_key = "p"
        previous_master_key_file = "p"
        [admin]
        token = "t"
        token_file = "t"
        sign_in_instance = "corp"
        admin_groups = ["platform"]
        admin_users = ["alice"]
        [log]
        format = "json"
    "#;

    #[test]
    fn the_known_keys_are_the_keys_the_settings_read() {
        let merged = Config::builder()
            .add_source(File::from_str(
                super::super::BUILT_IN_DEFAULTS,
                FileFormat::Toml,
            ))
            .add_source(File::from_str(OPTIONAL, FileFormat::Toml))
            .build()
            .unwrap();
        let mut ignored = Vec::new();
        let _: super::super::RawSettings =
            serde_ignored::deserialize(merged.clone(), |path| ignored.push(path.to_string()))
                .unwrap();
        assert_eq!(
            ignored,
            Vec::<String>::new(),
            "keys the settings do not read"
        );

        let table = merged.cache.into_table().unwrap();
        let mut set: Vec<String> = table
            .into_iter()
            .flat_map(|(section, keys)| {
                let keys = keys.into_table().unwrap();
                keys.into_keys().map(move |key| format!("{section}.{key}"))
            })
            .collect();
        set.sort();
        let mut known: Vec<String> = KNOWN_KEYS.iter().map(|k| k.to_string()).collect();
        known.sort();
        assert_eq!(set, known);
    }

    #[test]
    fn a_misspelling_names_the_key_it_resembles() {
        assert_eq!(nearest_known("server.listn"), Some("server.listen"));
        assert_eq!(nearest_known("servr.listen"), Some("server.listen"));
        assert_eq!(nearest_known("admin.tokn_file"), Some("admin.token_file"));
        assert_eq!(nearest_known("servr"), Some("server"));
        assert_eq!(nearest_known("telemetry.endpoint"), None);
    }

    #[test]
    fn an_unknown_variable_is_named_as_it_was_written() {
        let variables = ["LABGATE__SERVER__LISTN".to_owned(), "PATH".to_owned()];
        let server = serde_ignored::Path::Root;
        let server = serde_ignored::Path::Map {
            parent: &server,
            key: "server".into(),
        };
        let listn = serde_ignored::Path::Map {
            parent: &server,
            key: "listn".into(),
        };
        let unknown = UnknownKey::new(&listn, variables.iter());
        assert_eq!(
            unknown.describe(),
            "the environment variable LABGATE__SERVER__LISTN is not a setting labgate reads; did \
             you mean server.listen?"
        );
        let servr = serde_ignored::Path::Map {
            parent: &serde_ignored::Path::Root,
            key: "servr".into(),
        };
        let from_file = UnknownKey::new(&servr, variables.iter());
        assert_eq!(
            from_file.describe(),
            "the key servr in a configuration file is not a setting labgate reads; did you mean \
             server?"
        );
    }
}
