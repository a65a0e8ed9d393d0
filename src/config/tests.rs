use std::fs;

use super::*;

fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_from(env, None)
}

fn message(result: Result<Settings, ConfigError>) -> String {
    result.expect_err("settings should be refused").to_string()
}

#[test]
fn defaults_run_on_sqlite_on_loopback() {
    let settings = load_env(&[]).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        settings.server.public_url.as_str(),
        "http://127.0.0.1:8080/"
    );
    assert!(
        matches!(settings.database.url, DatabaseUrl::Sqlite(ref p) if p == Path::new("data/labgate.db"))
    );
    assert!(settings.security.master_key.is_none() && settings.admin.token.is_none());
    assert!(settings.server.tls.is_none());
}

#[test]
fn environment_overrides_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    fs::write(
        &file,
        "[server]\nlisten = \"0.0.0.0:9000\"\npublic_url = \"https://file.example\"\n",
    )
    .unwrap();
    let env = HashMap::from([(
        "LABGATE__SERVER__PUBLIC_URL".to_owned(),
        "https://env.example/lg/".to_owned(),
    )]);
    let settings = load_from(env, Some(&file)).unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(
        settings.server.public_url.as_str(),
        "https://env.example/lg"
    );
}

#[test]
fn secrets_come_from_files_but_not_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    fs::write(&token_file, "from-file-0123456789abcdef0123456789\n").unwrap();
    let path = token_file.to_str().unwrap();
    let settings = load_env(&[("LABGATE__ADMIN__TOKEN_FILE", path)]).unwrap();
    assert_eq!(
        settings.admin.token.unwrap().expose_secret(),
        "from-file-0123456789abcdef0123456789"
    );

    let both = message(load_env(&[
        ("LABGATE__ADMIN__TOKEN_FILE", path),
        ("LABGATE__ADMIN__TOKEN", "inline"),
    ]));
    assert!(
        both.contains("set either admin.token or admin.token_file, not both"),
        "{both}"
    );
    let missing = message(load_env(&[(
        "LABGATE__SECURITY__MASTER_KEY_FILE",
        "/nonexistent/key",
    )]));
    assert!(
        missing.starts_with("security.master_key (LABGATE__SECURITY__MASTER_KEY)"),
        "{missing}"
    );
    assert!(missing.contains("/nonexistent/key"), "{missing}");
}

#[test]
fn settings_that_cannot_work_name_their_key() {
    let cases = [
        (
            ("LABGATE__SERVER__PUBLIC_URL", "not a url"),
            "server.public_url",
        ),
        (
            ("LABGATE__SERVER__PUBLIC_URL", "http://labgate.corp"),
            "plain http",
        ),
        (("LABGATE__SERVER__LISTEN", "localhost"), "server.listen"),
        (
            ("LABGATE__DATABASE__URL", "mysql://x"),
            "must start with sqlite:// or postgres://",
        ),
        (
            ("LABGATE__SERVER__TLS_CERT", "certs/labgate.pem"),
            "server.tls_key",
        ),
    ];
    for ((key, value), expected) in cases {
        let text = message(load_env(&[(key, value)]));
        assert!(text.contains(expected), "{key}={value}: {text}");
    }
}

#[test]
fn secrets_are_taken_as_written_and_never_quoted_in_errors() {
    // Digits with leading zeros: a number to a lax parser.
    let digits = "00012300000000000000000000000000000";
    let settings = load_env(&[("LABGATE__ADMIN__TOKEN", digits)]).unwrap();
    assert_eq!(settings.admin.token.unwrap().expose_secret(), digits);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    fs::write(&file, "[admin]\ntoken = \"s3cret-admin-token\n").unwrap();
    let text = load_from(HashMap::new(), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("is not valid TOML") && text.contains("line 2"),
        "{text}"
    );
    assert!(!text.contains("s3cret-admin-token"), "{text}");

    let url = "postgres://labgate:p%zzword@db/labgate";
    let text = message(load_env(&[("LABGATE__DATABASE__URL", url)]));
    assert!(
        text.contains("database.url") && !text.contains("p%zzword"),
        "{text}"
    );
}

#[test]
fn numbers_and_booleans_come_from_the_environment_as_text() {
    let settings = load_env(&[
        ("LABGATE__SERVER__WORKERS", "3"),
        ("LABGATE__OUTBOUND__CONNECT_TIMEOUT_SECONDS", "0"),
    ]);
    let text = message(settings);
    assert!(
        text.starts_with("outbound.connect_timeout_seconds"),
        "{text}"
    );
    let settings = load_env(&[("LABGATE__SERVER__WORKERS", "3")]).unwrap();
    assert_eq!(settings.server.workers, 3);
}

#[test]
fn insecure_public_url_is_allowed_only_when_asked_for() {
    let settings = load_env(&[
        ("LABGATE__SERVER__PUBLIC_URL", "http://labgate.corp"),
        ("LABGATE__SERVER__ALLOW_INSECURE_PUBLIC_URL", "true"),
    ])
    .unwrap();
    assert_eq!(settings.server.public_url.host_str(), Some("labgate.corp"));
}
