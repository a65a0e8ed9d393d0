use std::error::Error;

use diesel::Connection;
use diesel::ConnectionError;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::private_files::{create_private_dir, create_private_file};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises migrations between processes that start at once against one PostgreSQL database.
const MIGRATION_LOCK_ID: i64 = 0x006c_6162_6761_7465;

/// One connection type for both backends; repository code is written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<Manager>;

impl DbConnection {
    /// A transaction that reads, then writes. On SQLite it takes the write lock at its start
    /// (`BEGIN IMMEDIATE`): a deferred transaction that read first fails at once with
    /// SQLITE_BUSY, busy_timeout or not, when another connection commits between its read and
    /// its first write; an immediate one waits its turn instead.
    pub fn write_transaction<T, E>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        type Manager = <DbConnection as Connection>::TransactionManager;
        match self {
            Self::Sqlite(inner) => {
                AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            }
            Self::Postgres(_) => Manager::begin_transaction(self)?,
        }
        match work(self) {
            Ok(done) => {
                Manager::commit_transaction(self)?;
                Ok(done)
            }
            // As diesel's own `transaction`: the work's error, unless undoing it failed too.
            Err(e) => match Manager::rollback_transaction(self) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
                Err(rollback) => Err(rollback.into()),
            },
        }
    }
}

/// Opens the backend the URL names, rather than letting each backend try the string in turn.
pub struct Manager(DatabaseUrl);

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.0 {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                // busy_timeout first: it makes concurrent writers (switching to WAL is one)
                // wait instead of failing with "database is locked". WAL lets readers and the
                // writer proceed together.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => PgConnection::establish(url.expose_secret())
                .map(DbConnection::Postgres)
                .map_err(|e| {
                    r2d2::Error::ConnectionError(ConnectionError::BadConnection(redact_password(
                        &e.to_string(),
                        url,
                    )))
                }),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// A connection of the caller's own, outside the pool, opened as the pool opens its own: for a
/// writer that keeps one connection for its whole life.
pub(super) fn connect_outside_pool(url: &DatabaseUrl) -> Result<DbConnection, String> {
    Manager(url.clone()).connect().map_err(|e| e.to_string())
}

/// Is the database there? For readiness checks.
pub fn ping(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    conn.batch_execute("SELECT 1")
}

/// libpq's messages may quote the connection URL; r2d2 logs them and start-up prints them.
pub(super) fn redact_password(message: &str, url: &SecretString) -> String {
    let Some(password) = url::Url::parse(url.expose_secret())
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return message.to_owned();
    };
    let decoded = percent_encoding::percent_decode_str(&password)
        .decode_utf8_lossy()
        .into_owned();
    [password, decoded]
        .iter()
        .filter(|p| !p.is_empty())
        .fold(message.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// Builds the pool and opens one connection, so a wrong URL fails start-up, not a request.
pub fn connect(settings: &DatabaseSettings) -> Result<DbPool, String> {
    if let DatabaseUrl::Sqlite(path) = &settings.url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| {
                format!(
                    "cannot create the directory {} for SQLite: {e}",
                    dir.display()
                )
            })?;
        }
        create_private_file(path)
            .map_err(|e| format!("cannot create the SQLite file {}: {e}", path.display()))?;
    }
    Pool::builder()
        .max_size(settings.pool_size)
        // No `SELECT 1` before every use: it doubled the round trips of the handout path. A
        // connection that broke (a database restart) fails one query and is then discarded.
        .test_on_check_out(false)
        .min_idle(Some(1))
        .connection_timeout(settings.pool_timeout)
        .build(Manager(settings.url.clone()))
        .map_err(|e| format!("cannot open the database: {e}"))
}

type MigrationResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Applies the migrations this binary embeds for the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConnection) -> MigrationResult<usize> {
    match conn {
        DbConnection::Sqlite(conn) => Ok(conn.run_pending_migrations(SQLITE_MIGRATIONS)?.len()),
        DbConnection::Postgres(conn) => {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))?;
            let applied = conn
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|done| done.len());
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))?;
            Ok(applied?)
        }
    }
}

pub fn has_pending_migrations(conn: &mut DbConnection) -> MigrationResult<bool> {
    match conn {
        DbConnection::Sqlite(conn) => conn.has_pending_migration(SQLITE_MIGRATIONS),
        DbConnection::Postgres(conn) => conn.has_pending_migration(POSTGRES_MIGRATIONS),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use diesel::RunQueryDsl;
    use diesel::sql_query;

    use super::*;

    fn sqlite(path: &std::path::Path) -> DbConnection {
        let manager = Manager(DatabaseUrl::Sqlite(path.to_owned()));
        manager.connect().unwrap()
    }

    /// SQLite is built as `.cargo/config.toml` asks: without its lock on every call of a
    /// connection (multi-thread mode) and without memory statistics.
    #[test]
    fn sqlite_is_built_without_the_locks_labgate_does_not_need() {
        let dir = tempfile::tempdir().unwrap();
        let DbConnection::Sqlite(mut lite) = sqlite(&dir.path().join("built.db")) else {
            unreachable!("a SQLite URL opens SQLite")
        };
        let options: Vec<String> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "compile_options FROM pragma_compile_options",
        ))
        .load(&mut lite)
        .unwrap();
        for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} not in {options:?}"
            );
        }
    }

    /// A read-then-write transaction and another writer that commits between its read and its
    /// write: both succeed, the second after the first (deferred, the first failed at once).
    #[test]
    fn a_read_then_write_transaction_on_sqlite_survives_a_writer_slipping_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let mut first = sqlite(&path);
        sql_query("CREATE TABLE t (x INTEGER)")
            .execute(&mut first)
            .unwrap();
        let (read, go) = mpsc::channel();
        let other = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut second = sqlite(&path);
                go.recv().unwrap();
                sql_query("INSERT INTO t VALUES (2)").execute(&mut second)
            }
        });

        let written = first.write_transaction(|conn| {
            sql_query("SELECT x FROM t").execute(conn)?;
            read.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            sql_query("INSERT INTO t VALUES (1)").execute(conn)
        });

        assert_eq!(written, Ok(1));
        assert_eq!(
            other.join().unwrap(),
            Ok(1),
            "the other writer waited its turn"
        );
    }

    #[test]
    fn connection_errors_never_show_the_password() {
        let url =
            SecretString::from("postgres://labgate:p%40ss%2Fw0rd@db.internal/labgate".to_owned());
        let message = "could not connect to postgres://labgate:p%40ss%2Fw0rd@db.internal (password p@ss/w0rd)";
        let redacted = redact_password(message, &url);
        assert_eq!(
            redacted,
            "could not connect to postgres://labgate:***@db.internal (password ***)"
        );
    }
}
