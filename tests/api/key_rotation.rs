//! Online master-key rotation: `labgate rotate-key` re-seals every secret under a new key while
//! a `labgate serve` process, configured with both keys, keeps handing tokens out; killed, it
//! resumes; twice at once, the second is refused; afterwards the old key is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::{QueryDsl, RunQueryDsl, SelectableHelper, TextExpressionMethods};
use labgate::config::{DatabaseUrl, Settings};
use labgate::crypto::{KeyId, MasterKey, SealedColumn, Sealer};
use labgate::db::connections::ConnectionRow;
use labgate::db::schema::{audit_events, connections::dsl as c};
use labgate::db::{DbPool, meta, resealing};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::ConnectWorld;
use crate::support::PUBLIC_URL;
use crate::support::database::Backend;

on_both_backends!(
    rotates_every_secret_while_labgate_serves,
    a_killed_rotation_resumes_and_a_second_one_is_refused,
    bad_new_keys_are_refused_by_name_and_never_quoted,
    the_api_starts_a_rotation_and_answers_409_while_one_runs,
);

async fn rotates_every_secret_while_labgate_serves(backend: Backend) {
    let setup = Setup::new(backend, 20).await;
    let serving = setup.serve(&setup.new_key, Some(&setup.old_key)).await;
    setup.expect_fetch(&serving, "seed-0007").await;

    // With exactly the serving process's settings: the new key configured, the old one beside it.
    let new_key = setup.new_key.display().to_string();
    let args = ["rotate-key", "--new-key-file", &new_key];
    let mut command = setup.command(&args, &setup.new_key, Some(&setup.old_key));
    let rotated = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(stdout.contains(&setup.new_id.to_string()), "{stdout}");

    // Every sealed value, read raw, carries the new key's id; none is the old one.
    let (under_old, under_new) = setup.values_by_key();
    assert_eq!(under_old, 0);
    // 21 connections × 2 tokens, the instance's client secret, the service token key.
    assert!(under_new >= 44, "{under_new}");
    setup.expect_all_open_under_new();
    setup.expect_fetch(&serving, "seed-0007").await;
    setup.expect_fetch(&serving, "seed-0019").await;
    let kinds: Vec<String> = audit_events::table
        .select(audit_events::kind)
        .filter(audit_events::kind.like("master_key_%"))
        .load(&mut setup.pool.get().unwrap())
        .unwrap();
    assert!(
        kinds.contains(&"master_key_rotation_started".to_owned())
            && kinds.contains(&"master_key_rotated".to_owned()),
        "{kinds:?}"
    );
    drop(serving);

    // The old key alone is refused, naming both keys; the new key alone serves.
    let refused = setup.serve_refused(&setup.old_key).await;
    for id in [setup.old_id, setup.new_id] {
        assert!(refused.contains(&id.to_string()), "{refused}");
    }
    assert!(refused.contains("retired"), "{refused}");
    let serving = setup.serve(&setup.new_key, None).await;
    setup.expect_fetch(&serving, "seed-0003").await;

    // Rotating again to the same key: nothing to do, said so.
    let again = setup.rotate(&[]).await;
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already") || stderr.contains("configured key"),
        "{stderr}"
    );
}

async fn a_killed_rotation_resumes_and_a_second_one_is_refused(backend: Backend) {
    let setup = Setup::new(backend, 1200).await;
    let serving = setup.serve(&setup.new_key, Some(&setup.old_key)).await;
    let slow = ["--batch-size", "20", "--batch-pause-ms", "40"];
    let mut first = setup.rotate_command(&slow).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.values_by_key().1 < 40 {
        assert!(Instant::now() < deadline, "the rotation never progressed");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the rotation ended early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second rotation while the first runs: refused, naming the running one.
    let second = setup.rotate(&[]).await;
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("is running") && stderr.contains(&setup.new_id.to_string()),
        "{stderr}"
    );

    first.kill().await.unwrap();
    first.wait().await.unwrap();
    let (under_old, under_new) = setup.values_by_key();
    assert!(under_old > 0 && under_new > 0, "{under_old} / {under_new}");
    // Mid-rotation, a process with the old key alone could not open re-sealed values: refused.
    let refused = setup.serve_refused(&setup.old_key).await;
    assert!(refused.contains("under way"), "{refused}");
    assert!(refused.contains(&setup.new_id.to_string()), "{refused}");
    // The serving process opens values under either key meanwhile.
    let rows = setup.seeded_rows();
    let resealed = rows
        .iter()
        .find(|r| Sealer::sealed_under(&r.access_token_sealed) == Some(setup.new_id))
        .unwrap();
    let waiting = rows
        .iter()
        .find(|r| Sealer::sealed_under(&r.access_token_sealed) == Some(setup.old_id))
        .unwrap();
    setup.expect_fetch(&serving, &resealed.subject).await;
    setup.expect_fetch(&serving, &waiting.subject).await;

    let resumed = setup.rotate(&[]).await;
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(stdout.contains("resumed"), "{stdout}");
    assert_eq!(setup.values_by_key().0, 0);
    // Nothing lost: every seeded token opens under the new key to what was sealed.
    setup.expect_all_open_under_new();
    setup.expect_fetch(&serving, &waiting.subject).await;
}

async fn bad_new_keys_are_refused_by_name_and_never_quoted(backend: Backend) {
    let setup = Setup::new(backend, 2).await;
    let dir = setup.new_key.parent().unwrap();
    let not_a_key = dir.join("not-a.key");
    std::fs::write(&not_a_key, "hunter2-is-no-key!").unwrap();
    let short = dir.join("short.key");
    std::fs::write(&short, "c2hvcnQ=").unwrap();
    let missing = dir.join("missing.key");
    let cases = [
        (missing.clone(), "cannot read it"),
        (not_a_key.clone(), "is not a master key"),
        (short.clone(), "got 5"),
        (
            setup.old_key.clone(),
            "is the key this database is sealed under already",
        ),
    ];
    for (file, expected) in cases {
        let mut command = setup.command(
            &["rotate-key", "--new-key-file", &file.display().to_string()],
            &setup.old_key,
            None,
        );
        let output = command.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{file:?}");
        assert!(stderr.contains(expected), "{file:?}: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()) || file == setup.old_key,
            "{stderr}"
        );
        for secret in ["hunter2", "c2hvcnQ"] {
            assert!(!stderr.contains(secret), "{stderr}");
        }
    }
    // Nothing was touched.
    assert_eq!(setup.values_by_key().1, 0);
}

async fn the_api_starts_a_rotation_and_answers_409_while_one_runs(backend: Backend) {
    let setup = Setup::new(backend, 600).await;
    // A process with one key cannot rotate: it would not open what it re-sealed elsewhere.
    let alone = setup.cw.app.call(Method::POST, "/api/v1/keys/rotate").await;
    assert_eq!(alone.status(), 409);
    let serving = setup.serve(&setup.new_key, Some(&setup.old_key)).await;
    let rotate = || async {
        let url = format!("{}/api/v1/keys/rotate", serving.address);
        let answer = setup
            .cw
            .app
            .client
            .post(url)
            .bearer_auth(&setup.cw.app.admin_token)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json::<Value>().await.unwrap())
    };
    let slow = ["--batch-size", "20", "--batch-pause-ms", "40"];
    let mut cli = setup.rotate_command(&slow).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.values_by_key().1 < 40 {
        assert!(Instant::now() < deadline, "the rotation never progressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, refused) = rotate().await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("is running"),
        "{refused}"
    );
    cli.kill().await.unwrap();
    cli.wait().await.unwrap();

    let (status, started) = rotate().await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(
        started,
        json!({"from": setup.old_id.to_string(), "to": setup.new_id.to_string(), "resumed": true})
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded = meta::get(&mut setup.pool.get().unwrap(), meta::MASTER_KEY_ID).unwrap();
        if recorded == Some(setup.new_id.to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rotation never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(setup.values_by_key().0, 0);
    setup.expect_all_open_under_new();
    setup.expect_fetch(&serving, "seed-0500").await;
}

/// A connected person, `seeded` more connections sealed under the key labgate generated, and a
/// second key in a file beside it.
struct Setup {
    cw: ConnectWorld,
    pool: DbPool,
    old_key: PathBuf,
    new_key: PathBuf,
    old_id: KeyId,
    new_id: KeyId,
}

impl Setup {
    async fn new(backend: Backend, seeded: usize) -> Self {
        let cw = ConnectWorld::start(backend).await;
        cw.connect("alice", json!({})).await;
        let settings = &cw.app.settings;
        let old_key = settings.security.generated_master_key_path.clone();
        let new_key = old_key.with_file_name("new.key");
        let (old, new) = (
            MasterKey::read(&old_key).unwrap(),
            MasterKey::load_or_create(&new_key).unwrap(),
        );
        let pool = labgate::db::connect(&settings.database).unwrap();
        let mut conn = pool.get().unwrap();
        let template: ConnectionRow = c::connections
            .select(ConnectionRow::as_select())
            .first(&mut conn)
            .unwrap();
        let sealer = Sealer::new(&old);
        let rows: Vec<ConnectionRow> = (0..seeded)
            .map(|i| {
                let id = format!("seed-conn-{i:05}");
                let access = SealedColumn::ConnectionAccessToken.of(&id);
                let refresh = SealedColumn::ConnectionRefreshToken.of(&id);
                ConnectionRow {
                    subject: format!("seed-{i:04}"),
                    access_token_sealed: sealer.seal(access, plain("access", &id).as_bytes()),
                    refresh_token_sealed: sealer.seal(refresh, plain("refresh", &id).as_bytes()),
                    created_at: Utc::now().naive_utc(),
                    id,
                    ..template.clone()
                }
            })
            .collect();
        conn.write_transaction(|conn| {
            for row in rows {
                diesel::insert_into(c::connections)
                    .values(row)
                    .execute(conn)?;
            }
            diesel::QueryResult::Ok(())
        })
        .unwrap();
        drop(conn);
        Self {
            old_id: old.id(),
            new_id: new.id(),
            cw,
            pool,
            old_key,
            new_key,
        }
    }

    fn settings(&self) -> &Settings {
        &self.cw.app.settings
    }

    /// `serve`'s settings, as environment: the same database and admin token.
    fn env(&self, key: &Path, previous: Option<&Path>) -> Vec<(String, String)> {
        let url = match &self.settings().database.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.expose_secret().to_owned(),
        };
        let token = self.settings().admin.token.as_ref().unwrap();
        let mut env = vec![
            ("LABGATE__SERVER__PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("LABGATE__SERVER__WORKERS", "1".to_owned()),
            ("LABGATE__DATABASE__URL", url),
            (
                "LABGATE__SECURITY__MASTER_KEY_FILE",
                key.display().to_string(),
            ),
            ("LABGATE__ADMIN__TOKEN", token.expose_secret().to_owned()),
            ("LABGATE__REFRESHER__ENABLED", "false".to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ];
        if let Some(previous) = previous {
            env.push((
                "LABGATE__SECURITY__PREVIOUS_MASTER_KEY_FILE",
                previous.display().to_string(),
            ));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn command(&self, args: &[&str], key: &Path, previous: Option<&Path>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
        command.args(args).kill_on_drop(true);
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE__")) {
            command.env_remove(name);
        }
        command.envs(self.env(key, previous));
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }

    /// `labgate rotate-key` to the new key, with the settings labgate was started with.
    fn rotate_command(&self, extra: &[&str]) -> Command {
        let new_key = self.new_key.display().to_string();
        let mut args = vec!["rotate-key", "--new-key-file", &new_key];
        args.extend_from_slice(extra);
        self.command(&args, &self.old_key, None)
    }

    async fn rotate(&self, extra: &[&str]) -> Output {
        self.rotate_command(extra).output().await.unwrap()
    }

    /// A `labgate serve` process on a port of its own, once it answers.
    async fn serve(&self, key: &Path, previous: Option<&Path>) -> Serving {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = self.command(&["serve"], key, previous);
        command.env("LABGATE__SERVER__LISTEN", format!("127.0.0.1:{port}"));
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let address = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = reqwest::get(format!("{address}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200);
            if up {
                return Serving {
                    address,
                    _child: child,
                };
            }
            assert!(child.try_wait().unwrap().is_none(), "labgate serve exited");
            assert!(Instant::now() < deadline, "labgate serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What `labgate serve` says when it refuses to start with `key`.
    async fn serve_refused(&self, key: &Path) -> String {
        let mut command = self.command(&["serve"], key, None);
        command.env("LABGATE__SERVER__LISTEN", "127.0.0.1:0");
        let output = tokio::time::timeout(Duration::from_secs(20), command.output())
            .await
            .expect("labgate serve started with the old key")
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// A seeded connection's token handed out by `serving`: the plaintext it was sealed with.
    async fn expect_fetch(&self, serving: &Serving, subject: &str) {
        let body = json!({"instance": "corp", "subject": subject});
        let answer = self
            .cw
            .fetch_from(&serving.address, &self.cw.service_token, body)
            .await;
        let status = answer.status();
        let handed: Value = answer.json().await.unwrap();
        assert_eq!(status, 200, "{subject}: {handed}");
        let row = self
            .seeded_rows()
            .into_iter()
            .find(|r| r.subject == subject)
            .unwrap();
        assert_eq!(
            handed["access_token"],
            plain("access", &row.id),
            "{subject}"
        );
    }

    fn seeded_rows(&self) -> Vec<ConnectionRow> {
        c::connections
            .filter(c::id.like("seed-conn-%"))
            .select(ConnectionRow::as_select())
            .load(&mut self.pool.get().unwrap())
            .unwrap()
    }

    /// How many sealed values are under the old key, and how many under the new one.
    fn values_by_key(&self) -> (usize, usize) {
        let mut conn = self.pool.get().unwrap();
        let mut values: Vec<Vec<u8>> = Vec::new();
        for column in resealing::TABLE_COLUMNS {
            let rows = resealing::page(&mut conn, column, "", 1_000_000).unwrap();
            values.extend(rows.into_iter().map(|(_, v)| v));
        }
        let meta = meta::get(&mut conn, meta::SERVICE_TOKEN_KEY)
            .unwrap()
            .unwrap();
        use base64::Engine;
        values.push(
            base64::engine::general_purpose::STANDARD
                .decode(meta)
                .unwrap(),
        );
        let count = |id| {
            values
                .iter()
                .filter(|v| Sealer::sealed_under(v) == Some(id))
                .count()
        };
        (count(self.old_id), count(self.new_id))
    }

    /// Every seeded token opens under the new key alone, to the plaintext it was seeded with.
    fn expect_all_open_under_new(&self) {
        let sealer = Sealer::new(&MasterKey::read(&self.new_key).unwrap());
        let rows = self.seeded_rows();
        assert!(!rows.is_empty());
        for row in rows {
            let access = sealer
                .open(
                    SealedColumn::ConnectionAccessToken.of(&row.id),
                    &row.access_token_sealed,
                )
                .unwrap();
            let refresh = sealer
                .open(
                    SealedColumn::ConnectionRefreshToken.of(&row.id),
                    &row.refresh_token_sealed,
                )
                .unwrap();
            assert_eq!(access.expose_secret(), plain("access", &row.id).as_bytes());
            assert_eq!(
                refresh.expose_secret(),
                plain("refresh", &row.id).as_bytes()
            );
        }
    }
}

/// A `labgate serve` process, killed when dropped.
struct Serving {
    address: String,
    _child: Child,
}

fn plain(kind: &str, id: &str) -> String {
    format!("{kind}-token-of-{id}")
}
