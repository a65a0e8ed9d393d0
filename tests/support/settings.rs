//! labgate's settings for a test or the benchmark: the real configuration, with what isolation
//! needs put in.

use std::collections::HashMap;

use labgate::config::Settings;
use secrecy::SecretString;

use super::PUBLIC_URL;
use super::database::TestDatabase;

/// labgate's own configuration (built-in defaults, then `config/default.toml`; no environment,
/// no file from `LABGATE_CONFIG`), isolated: a random port on loopback, `db`, a master key that
/// labgate generates in the database's directory, `admin_token`, and the public https URL the
/// tests use. Everything else is as an operator would find it.
pub(crate) fn isolated(db: &TestDatabase, admin_token: &str) -> Settings {
    let mut settings =
        labgate::config::load_from(HashMap::new(), None).expect("labgate's defaults load");
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.public_url = url::Url::parse(PUBLIC_URL).unwrap();
    settings.server.tls = None;
    settings.database.url = db.url.clone();
    settings.security.master_key = None;
    settings.security.generated_master_key_path = db.dir().join("master.key");
    settings.admin.token = Some(SecretString::from(admin_token.to_owned()));
    settings
}
