//! Starting, restarting and configuring labgate: persistence, key material, HTTPS, readiness,
//! and the `labgate` binary itself.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use diesel::RunQueryDsl;
use labgate::config::TlsFiles;
use labgate::startup::Application;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{GitLabWorld, TestApp};
use crate::support::certs::{TestCa, Validity};
use crate::support::database::{Backend, TestDatabase};

on_both_backends!(
    instances_survive_a_restart_under_the_generated_key,
    a_different_master_key_is_refused_at_start,
    readiness_needs_the_database_and_the_migrations,
    labgate_migrate_applies_the_schema,
);

async fn instances_survive_a_restart_under_the_generated_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let registered: Value = app
        .register(&world.registration("corp"))
        .await
        .json()
        .await
        .unwrap();
    let key_path = app.settings.security.generated_master_key_path.clone();
    let key_before = std::fs::read(&key_path).unwrap();

    let (db, settings) = app.stop().await;
    let app = TestApp::start(db, settings).await;

    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        key_before,
        "the key file is reused, not replaced"
    );
    let shown = app.get_json("/api/v1/instances/corp").await;
    for field in [
        "redirect_url",
        "base_url",
        "client_id",
        "scopes",
        "ca_pem",
        "created_at",
        "endpoints",
    ] {
        assert_eq!(shown[field], registered[field], "{field} after a restart");
    }
}

async fn a_different_master_key_is_refused_at_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (db, mut settings) = app.stop().await;
    settings.security.master_key = Some(SecretString::from(base64_key(7)));

    let error = Application::build(settings)
        .await
        .err()
        .expect("labgate refuses to start");
    let message = format!("{error:#}");
    assert!(message.contains("sealed under master key"), "{message}");
    assert!(message.contains("configure the original key"), "{message}");
    drop(db);
}

async fn readiness_needs_the_database_and_the_migrations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readyz = || app.client.get(format!("{}/readyz", app.address)).send();
    let ready = readyz().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");

    // As if an older binary had migrated this database: the newest migration is missing.
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    diesel::sql_query(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
    )
    .execute(&mut pool.get().unwrap())
    .unwrap();
    let problem = crate::helpers::expect_problem(readyz().await.unwrap(), 503, "not_ready").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("migrations are pending"),
        "{problem}"
    );
}

async fn labgate_migrate_applies_the_schema(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let output = labgate_command(db.dir(), &[("LABGATE__DATABASE__URL", &database_url(&db))])
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let pool = labgate::db::connect(&TestApp::settings_for(&db).database).unwrap();
    let mut conn = pool.get().unwrap();
    assert!(
        !labgate::db::has_pending_migrations(&mut conn).unwrap(),
        "every migration is applied"
    );
}

#[actix_web::test]
async fn serves_https_from_the_configured_certificate() {
    let db = TestDatabase::create(&Backend::Sqlite);
    let ca = TestCa::new("Labgate Test CA");
    let cert = ca.issue(&["localhost"], Validity::Current);
    let (cert_path, key_path) = (
        db.dir().join("labgate.pem"),
        db.dir().join("labgate-key.pem"),
    );
    std::fs::write(&cert_path, &cert.chain_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut settings = TestApp::settings_for(&db);
    settings.server.tls = Some(TlsFiles {
        cert: cert_path,
        key: key_path,
    });
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    actix_web::rt::spawn(app.run());

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let plain = reqwest::get(format!("http://localhost:{port}/healthz")).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain http is not served"
    );
}

#[test]
fn serve_with_no_configuration_prints_a_working_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let listen = [("LABGATE__SERVER__LISTEN", "127.0.0.1:0")];

    // A first start that cannot serve spends no token: the next start still shows one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap().to_string();
    let failed = labgate_command(dir.path(), &[("LABGATE__SERVER__LISTEN", &taken_address)])
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!failed.status.success(), "{printed}");
    assert!(printed.contains("server.listen"), "{printed}");
    assert!(!printed.contains("lgadm_"), "{printed}");
    drop(taken);

    let first = RunningLabgate::start(dir.path(), &listen);
    let token = first
        .admin_token
        .clone()
        .expect("an admin token is printed on first start");
    assert!(token.starts_with("lgadm_"), "{token}");
    assert_eq!(first.get_instances(&token), 200);
    assert_eq!(first.get_instances("lgadm_wrong"), 401);
    drop(first);

    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| {
        std::fs::metadata(dir.path().join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("data"), 0o700, "the data folder is labgate's alone");
    assert_eq!(
        mode("data/labgate.db"),
        0o600,
        "the database is labgate's alone"
    );
    assert_eq!(mode("data/master.key"), 0o600, "the key is labgate's alone");

    let second = RunningLabgate::start(dir.path(), &listen);
    assert_eq!(second.admin_token, None, "the token is printed only once");
    assert_eq!(
        second.get_instances(&token),
        200,
        "the first token still works"
    );
}

#[test]
fn misspelt_settings_are_warned_about_naming_the_key_they_resemble() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    std::fs::write(
        &file,
        "[servr]\nlisten = \"127.0.0.1:9\"\n[refresher]\nintervall_seconds = 5\n",
    )
    .unwrap();
    let output = labgate_command(
        dir.path(),
        &[
            ("LABGATE__SERVER__LISTN", "127.0.0.1:9"),
            ("LABGATE__LOG__FORMAT", "text"),
            ("LABGATE_CONFIG", file.to_str().unwrap()),
        ],
    )
    .arg("migrate")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a warning does not stop labgate: {stderr}"
    );
    for expected in [
        "LABGATE__SERVER__LISTN is not a setting labgate reads; did you mean server.listen?",
        "the key servr in a configuration file is not a setting labgate reads; did you mean server?",
        "refresher.intervall_seconds in a configuration file is not a setting labgate reads; did \
         you mean refresher.interval_seconds?",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(
        !stderr.contains("LOG__FORMAT"),
        "a known key is not warned about: {stderr}"
    );
}

#[test]
fn settings_that_cannot_work_stop_start_up_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "LABGATE__SECURITY__MASTER_KEY",
            "c2hvcnQ=",
            "security.master_key (LABGATE__SECURITY__MASTER_KEY): must be 32 bytes",
        ),
        (
            "LABGATE__SECURITY__MASTER_KEY_FILE",
            "/nonexistent/master.key",
            "/nonexistent/master.key",
        ),
        (
            "LABGATE__SERVER__PUBLIC_URL",
            "http://labgate.corp",
            "plain http on a host other than loopback",
        ),
        (
            "LABGATE__DATABASE__URL",
            "mysql://db/labgate",
            "must start with sqlite:// or postgres://",
        ),
        (
            "LABGATE__SERVER__TLS_CERT",
            "/nonexistent/cert.pem",
            "server.tls_key",
        ),
        (
            "LABGATE__ADMIN__TOKEN",
            "short",
            "admin.token (LABGATE__ADMIN__TOKEN): must be at least 32 characters",
        ),
    ];
    for (key, value, expected) in cases {
        let output = labgate_command(
            dir.path(),
            &[(key, value), ("LABGATE__SERVER__LISTEN", "127.0.0.1:0")],
        )
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{key}={value} should stop start-up"
        );
        assert!(stderr.contains(expected), "{key}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn base64_key(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn database_url(db: &TestDatabase) -> String {
    use secrecy::ExposeSecret;
    match &db.url {
        labgate::config::DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        labgate::config::DatabaseUrl::Postgres(url) => url.expose_secret().to_owned(),
    }
}

/// The `labgate` binary in `dir`, with no LABGATE variables but the given ones.
fn labgate_command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    command.current_dir(dir);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    command
}

/// `labgate serve` as a child process; killed when dropped.
struct RunningLabgate {
    child: Child,
    port: u16,
    admin_token: Option<String>,
}

impl RunningLabgate {
    fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let child = labgate_command(dir, vars)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned from here on, so a failed start still kills the process.
        let mut running = Self {
            child,
            port: 0,
            admin_token: None,
        };
        let (lines, received) = mpsc::channel();
        for stream in [
            Box::new(running.child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(running.child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        // The token comes on stdout, the port on stderr: read on until both streams are quiet.
        let mut wait = Duration::from_secs(20);
        while let Ok(line) = received.recv_timeout(wait) {
            if let Some(token) = line.trim().strip_prefix("lgadm_") {
                running.admin_token = Some(format!("lgadm_{token}"));
            }
            if let Some(port) = line.split("port=").nth(1) {
                running.port = port.split_whitespace().next().unwrap().parse().unwrap();
                wait = Duration::from_millis(300);
            }
        }
        assert_ne!(running.port, 0, "labgate starts within 20 s");
        running
    }

    fn get_instances(&self, token: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}/api/v1/instances", self.port);
        let status = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    reqwest::Client::new()
                        .get(&url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .join()
            .unwrap()
        });
        status.as_u16()
    }
}

impl Drop for RunningLabgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
