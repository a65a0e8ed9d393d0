//! The command line: one file per subcommand.

mod client;
mod config_check;
mod credentials;
mod git_credential;
mod healthcheck;
mod migrate;
mod rotate_key;
mod serve;
mod version;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

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
    /// Re-seal every secret under a new master key while labgate serves (same settings as serve).
    RotateKey(rotate_key::RotateKeyArgs),
    /// Print a GitLab token for a user (reads LABGATE_URL, LABGATE_CLIENT_ID, and LABGATE_CLIENT_SECRET or LABGATE_ID_TOKEN).
    Credentials(credentials::CredentialsArgs),
    /// git's credential helper: git config credential.helper '!labgate git-credential'.
    GitCredential {
        #[arg(value_enum)]
        operation: git_credential::Operation,
    },
    /// Exit 0 when the labgate configured here answers /healthz (for a container's HEALTHCHECK).
    Healthcheck,
    /// Print the version, target and build profile.
    Version,
    /// Check the settings: print them as in effect, secrets masked, or say which one is wrong.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a shell completion script: labgate completions bash > /etc/bash_completion.d/labgate.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Load the settings as `serve` would and print them, secrets masked.
    Check,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => serve::run().await,
            Command::Migrate => migrate::run().await,
            Command::RotateKey(args) => rotate_key::run(args).await,
            Command::Credentials(args) => Ok(credentials::run(args).await?),
            Command::GitCredential { operation } => Ok(git_credential::run(operation).await?),
            Command::Healthcheck => healthcheck::run().await,
            Command::Version => {
                print!("{}", version::describe());
                Ok(())
            }
            Command::Config {
                action: ConfigAction::Check,
            } => config_check::run(),
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "labgate",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
        }
    }
}
