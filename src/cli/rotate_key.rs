//! `labgate rotate-key --new-key-file F`: re-seals every secret under a new master key while
//! labgate serves, with the settings `serve` uses. Interrupted, it is run again and resumes.

use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::{KeyError, MasterKey};
use crate::service::audit::AuditLog;
use crate::service::key_rotation::{self, RotationOptions};

#[derive(clap::Args)]
pub(super) struct RotateKeyArgs {
    /// The new master key: a file holding 32 random bytes in base64 (`openssl rand -base64 32`).
    #[arg(long)]
    new_key_file: PathBuf,
    /// Values re-sealed per transaction.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch_size: i64,
    /// A pause between batches, in milliseconds (to spare a busy database).
    #[arg(long, default_value_t = 0)]
    batch_pause_ms: u64,
}

pub(super) async fn run(args: RotateKeyArgs) -> anyhow::Result<()> {
    let settings = crate::config::load()?;
    let file = args.new_key_file.display().to_string();
    let new = MasterKey::read(&args.new_key_file).map_err(|e| match e {
        KeyError::File { source, .. } => {
            anyhow::anyhow!("--new-key-file {file}: cannot read it: {source}")
        }
        // Never the decoding error's detail: it quotes what the file holds.
        KeyError::NotBase64(_) => {
            anyhow::anyhow!("--new-key-file {file}: is not a master key (base64 of 32 bytes)")
        }
        KeyError::WrongLength(n) => anyhow::anyhow!(
            "--new-key-file {file}: is not a master key: 32 bytes once base64-decoded, got {n}"
        ),
    })?;
    let audit = AuditLog::start(settings.database.url.clone());
    let (pool, configured) = tokio::task::spawn_blocking(move || {
        let pool = crate::startup::open_database(&settings)?;
        let (key, previous) = crate::startup::configured_keys(&settings)?;
        anyhow::Ok((
            pool,
            [Some(key), previous]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        ))
    })
    .await??;
    let options = RotationOptions {
        batch_size: args.batch_size,
        pause: Duration::from_millis(args.batch_pause_ms),
    };
    let rotated = key_rotation::rotate(pool, &audit, &configured, &new, options).await?;
    println!(
        "{} master key {} to {}: {} values re-sealed. Configure the new key on every process \
         (security.master_key_file); the old key is refused from now on.",
        if rotated.resumed {
            "resumed and finished the rotation from"
        } else {
            "rotated from"
        },
        rotated.old,
        rotated.new,
        rotated.resealed
    );
    Ok(())
}
