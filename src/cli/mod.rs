//! The command line: one file per subcommand.

mod client;
mod credentials;
mod git_credential;
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
    /// Print a GitLab token for a user (reads LABGATE_URL, LABGATE_CLIENT_ID, LABGATE_CLIENT_SECRET).
    Credentials(credentials::CredentialsArgs),
    /// git's credential helper: git config credential.helper '!labgate git-credential'.
    GitCredential {
        #[arg(value_enum)]
        operation: git_credential::Operation,
    },
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => serve::run().await,
            Command::Migrate => migrate::run().await,
            Command::Credentials(args) => Ok(credentials::run(args).await?),
            Command::GitCredential { operation } => Ok(git_credential::run(operation).await?),
        }
    }
}
