//! Online master-key rotation: every sealed value re-sealed under a new key while labgate
//! serves. Processes configured with both keys open either meanwhile; the rotation holds a
//! lease (two never run at once), goes in batches of compare-and-set updates (a value another
//! process wrote meanwhile is never overwritten) and, interrupted, resumes where values are
//! still under the old key. Finished, the database records the new key and the old one retired.

pub mod api;
mod keys_at_startup;
mod lease;
mod sweep;

use std::time::Duration;

use anyhow::{Context as _, bail};

pub use keys_at_startup::sealer_for_database;

use super::audit::{AuditEvent, AuditLog};
use crate::crypto::{KeyId, MasterKey, Sealer};
use crate::db::{DbPool, meta};
use lease::RotationState;
use sweep::{Counts, Resealer};

/// Who rotates: the operator at the command line.
pub const ACTOR: &str = "admin:cli";
/// Passes over every value at most: a pass that still finds values under the old key (written
/// by a process sealing under it meanwhile) is followed by another.
const PASSES: usize = 5;

pub struct RotationOptions {
    pub batch_size: i64,
    pub pause: Duration,
}

/// What a finished rotation reports.
#[derive(Debug)]
pub struct Rotated {
    pub old: String,
    pub new: String,
    pub resealed: u64,
    pub resumed: bool,
}

/// Refused because another process runs a rotation (`409` on the API).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Running(String);

/// A rotation that holds its lease, ready to go.
pub struct Begun {
    new_id: KeyId,
    state: RotationState,
    resealer: Resealer,
    resumed: bool,
}

/// Re-seals every secret under `new`, recording it in `audit`. `configured` are the keys of
/// the settings (the key the database is under must be one of them).
pub async fn rotate(
    pool: DbPool,
    audit: &AuditLog,
    configured: &[MasterKey],
    new: &MasterKey,
    options: RotationOptions,
) -> anyhow::Result<Rotated> {
    let begun = begin(pool.clone(), configured, new, options).await?;
    run(pool, audit, begun).await
}

/// Checks the keys and takes the lease (an error downcasts to `Running` when another process
/// holds it).
pub async fn begin(
    pool: DbPool,
    configured: &[MasterKey],
    new: &MasterKey,
    options: RotationOptions,
) -> anyhow::Result<Begun> {
    let sealers: Vec<Sealer> = configured.iter().map(Sealer::new).collect();
    let new = Sealer::new(new);
    tokio::task::spawn_blocking(move || take_lease(&pool, sealers, new, options)).await?
}

/// Goes over every value until none is under the old key, then records the new key; audited.
pub async fn run(pool: DbPool, audit: &AuditLog, begun: Begun) -> anyhow::Result<Rotated> {
    let Begun {
        new_id,
        mut state,
        resealer,
        resumed,
    } = begun;
    let (old_id, new_id_text) = (resealer.old.key_id().to_string(), new_id.to_string());
    audit
        .record(
            AuditEvent::new("master_key_rotation_started", ACTOR).detail(format!(
                "from key {old_id} to key {new_id_text}{}",
                if resumed { ", resumed" } else { "" }
            )),
        )
        .await;
    audit.flush().await;
    let total = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().context("cannot get a database connection")?;
        let mut total = Counts::default();
        for _ in 0..PASSES {
            let counts = resealer.pass(&mut conn, &mut state)?;
            tracing::info!(
                resealed = counts.resealed,
                already_new = counts.already_new,
                "master-key rotation pass done"
            );
            total.resealed += counts.resealed;
            total.foreign = counts.foreign;
            if counts.resealed == 0 {
                lease::finish(&mut conn, &state, resealer.old.key_id(), new_id)?;
                return Ok(total);
            }
        }
        bail!("values under the old key keep appearing: is a process still sealing under it?")
    })
    .await??;
    if total.foreign > 0 {
        tracing::warn!(
            values = total.foreign,
            "values sealed under neither key were left as they are (they did not open before either)"
        );
    }
    audit
        .record(AuditEvent::new("master_key_rotated", ACTOR).detail(format!(
            "from key {old_id} to key {new_id_text}: {} values re-sealed, {} under neither key",
            total.resealed, total.foreign
        )))
        .await;
    audit.flush().await;
    Ok(Rotated {
        old: old_id,
        new: new_id_text,
        resealed: total.resealed,
        resumed,
    })
}

/// Checks the keys and takes the lease.
fn take_lease(
    pool: &DbPool,
    configured: Vec<Sealer>,
    new: Sealer,
    options: RotationOptions,
) -> anyhow::Result<Begun> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    let Some(current) = meta::get(&mut conn, meta::MASTER_KEY_ID)? else {
        bail!("this database has no master key yet: start labgate once before rotating");
    };
    if new.key_id().to_string() == current {
        bail!(
            "the new key {} is the key this database is sealed under already: nothing to rotate",
            new.key_id()
        );
    }
    let names: Vec<String> = configured.iter().map(|k| k.key_id().to_string()).collect();
    let Some(old) = configured
        .into_iter()
        .find(|k| k.key_id().to_string() == current)
    else {
        bail!(
            "this database is sealed under master key {current}, but the configured key(s) are {}: \
             configure it as security.master_key_file (or security.previous_master_key_file)",
            names.join(", ")
        );
    };
    let new_id = new.key_id();
    let (state, resumed) = lease::acquire(&mut conn, new_id)?;
    let resealer = Resealer {
        old,
        new,
        batch_size: options.batch_size.max(1),
        pause: options.pause,
    };
    Ok(Begun {
        new_id,
        state,
        resealer,
        resumed,
    })
}
