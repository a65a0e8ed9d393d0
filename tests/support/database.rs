//! A database of a test's (or the benchmark's) own: a fresh SQLite file in a temporary
//! directory, or a fresh PostgreSQL database that is dropped afterwards.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};
use labgate::config::DatabaseUrl;
use secrecy::{ExposeSecret, SecretString};
use tempfile::TempDir;

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite,
    /// A URL of a PostgreSQL server where a database may be created and dropped.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL at LABGATE_TEST_POSTGRES_URL, if that is set.
    pub(crate) fn postgres() -> Option<Self> {
        std::env::var("LABGATE_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(Self::Postgres)
    }

    #[allow(dead_code)] // used by benches/broker.rs
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A database of its own, with a directory for its files; dropped when it goes out of scope.
pub(crate) struct TestDatabase {
    pub url: DatabaseUrl,
    postgres: Option<(String, String)>,
    dir: TempDir,
}

impl TestDatabase {
    /// A fresh database; panics, for a test, when it cannot be made.
    pub(crate) fn create(backend: &Backend) -> Self {
        Self::try_create(backend).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub(crate) fn try_create(backend: &Backend) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (url, postgres) = match backend {
            Backend::Sqlite => (DatabaseUrl::Sqlite(dir.path().join("labgate.db")), None),
            Backend::Postgres(server_url) => {
                let name = format!("labgate_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(server_url)
                    .context("LABGATE_TEST_POSTGRES_URL is set but PostgreSQL does not answer")?;
                sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
                let mut url = url::Url::parse(server_url)?;
                url.set_path(&name);
                (
                    DatabaseUrl::Postgres(SecretString::from(url.to_string())),
                    Some((server_url.clone(), name)),
                )
            }
        };
        Ok(Self { url, postgres, dir })
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every byte the database holds, as a stolen disk (SQLite file and WAL) or a dump
    /// (`pg_dump`) would reveal it.
    pub(crate) fn raw_contents(&self) -> Vec<u8> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut bytes = fs::read(path).unwrap();
                for suffix in ["-wal", "-shm"] {
                    bytes.extend(
                        fs::read(format!("{}{suffix}", path.display())).unwrap_or_default(),
                    );
                }
                bytes
            }
            DatabaseUrl::Postgres(url) => {
                let dump = std::process::Command::new("pg_dump")
                    .args(["--data-only", "--inserts", "--dbname", url.expose_secret()])
                    .output()
                    .expect("pg_dump runs (PostgreSQL client tools are installed by .ci/run)");
                assert!(
                    dump.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                dump.stdout
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server_url, name)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(server_url)
        {
            let _ = sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}
