//! What the benchmark programs read from the environment and the command line.

use anyhow::Context as _;

use crate::support::database::Backend;

/// SQLite, and PostgreSQL when LABGATE_TEST_POSTGRES_URL is set (saying so when it is not).
#[allow(dead_code)] // benches/proxy.rs measures no database
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    match Backend::postgres() {
        Some(postgres) => backends.push(postgres),
        None => println!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL is not measured\n"),
    }
    backends
}

/// A whole number from the environment variable `name`, or `default` when it is unset.
pub fn number<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a whole number")),
        Err(_) => Ok(default),
    }
}

/// The part of a benchmark named on the command line, if any.
pub struct Parts(Option<String>);

impl Parts {
    /// cargo passes `--bench`; anything else names the part to run.
    pub fn from_args() -> Self {
        Self(std::env::args().skip(1).find(|a| !a.starts_with('-')))
    }

    /// Whether `part` runs: it was named, or nothing was.
    pub fn runs(&self, part: &str) -> bool {
        self.0.as_deref().is_none_or(|only| only == part)
    }
}
