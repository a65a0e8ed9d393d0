//! The command line: one file per subcommand.

mod migrate;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "labgate",
    version,
    about = "Self-hosted OAuth broker for GitLab installations"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker: apply migrations, then serve the admin API and OAuth endpoints.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => serve::run().await,
            Command::Migrate => migrate::run().await,
        }
    }
}
