//! The rotation's state in `labgate_meta`: the key it seals under, who runs it and until when.
//! One row, changed only by compare and set, so two rotations never run at once.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use crate::crypto::KeyId;
use crate::db::{DbConnection, meta};

/// How long a rotation holds its lease without renewing it (it renews on every batch).
const LEASE_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RotationState {
    /// The new key's id, in hex.
    pub target: String,
    /// `host:pid` of the process running it.
    pub owner: String,
    pub until: u64,
    pub started: u64,
}

impl RotationState {
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let (target, owner, until, started) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(Self {
            target: target.to_owned(),
            owner: owner.to_owned(),
            until: until.parse().ok()?,
            started: started.parse().ok()?,
        })
    }

    pub(super) fn text(&self) -> String {
        format!(
            "{};{};{};{}",
            self.target, self.owner, self.until, self.started
        )
    }

    /// Whether its runner may still be at work: the lease has not run out and, when it runs on
    /// this machine, its process is alive (a rotation killed here is resumed at once).
    fn held(&self) -> bool {
        if self.until <= now() {
            return false;
        }
        match self.owner.rsplit_once(':') {
            Some((host, pid)) if host == hostname() => {
                std::path::Path::new("/proc").join(pid).exists()
            }
            _ => true,
        }
    }
}

/// The rotation under way or left unfinished, if any.
pub(super) fn current(conn: &mut DbConnection) -> anyhow::Result<Option<RotationState>> {
    let Some(text) = meta::get(conn, meta::MASTER_KEY_ROTATION)? else {
        return Ok(None);
    };
    RotationState::parse(&text)
        .map(Some)
        .context("the recorded master-key rotation state is malformed")
}

/// Takes the lease for a rotation to `target`, or resumes one left unfinished; refused while
/// another process runs one. `true` when it resumes.
pub(super) fn acquire(
    conn: &mut DbConnection,
    target: KeyId,
) -> anyhow::Result<(RotationState, bool)> {
    let target = target.to_string();
    loop {
        let stored = meta::get(conn, meta::MASTER_KEY_ROTATION)?;
        let previous = stored.as_deref().and_then(RotationState::parse);
        if let Some(running) = &previous {
            if running.target != target {
                bail!(
                    "an unfinished master-key rotation to key {} was started {}; run it again \
                     with that key as --new-key-file to finish it first",
                    running.target,
                    ago(running.started)
                );
            }
            if running.held() {
                return Err(super::Running(format!(
                    "a master-key rotation to key {} is running (process {}, started {}, lease \
                     until {}s from now): it was not started twice",
                    running.target,
                    running.owner,
                    ago(running.started),
                    running.until.saturating_sub(now())
                ))
                .into());
            }
        }
        let state = RotationState {
            target: target.clone(),
            owner: format!("{}:{}", hostname(), std::process::id()),
            until: now() + LEASE_SECONDS,
            started: previous.as_ref().map_or(now(), |p| p.started),
        };
        if meta::compare_and_set(
            conn,
            meta::MASTER_KEY_ROTATION,
            stored.as_deref(),
            &state.text(),
        )? {
            return Ok((state, previous.is_some()));
        }
    }
}

/// Extends the lease; fails when another process took it over.
pub(super) fn renew(conn: &mut DbConnection, state: &mut RotationState) -> anyhow::Result<()> {
    let renewed = RotationState {
        until: now() + LEASE_SECONDS,
        ..state.clone()
    };
    if !meta::compare_and_set(
        conn,
        meta::MASTER_KEY_ROTATION,
        Some(&state.text()),
        &renewed.text(),
    )? {
        bail!("another process took this master-key rotation over: stopping");
    }
    *state = renewed;
    Ok(())
}

/// Records the rotation finished: the database is under `new` from now on, `old` is retired.
pub(super) fn finish(
    conn: &mut DbConnection,
    state: &RotationState,
    old: KeyId,
    new: KeyId,
) -> anyhow::Result<()> {
    conn.write_transaction(|conn| {
        if !meta::delete_if(conn, meta::MASTER_KEY_ROTATION, &state.text())? {
            bail!("another process took this master-key rotation over: stopping");
        }
        let (old, new) = (old.to_string(), new.to_string());
        if !meta::compare_and_set(conn, meta::MASTER_KEY_ID, Some(&old), &new)? {
            bail!("the database's master key changed during the rotation");
        }
        meta::put(conn, meta::MASTER_KEY_RETIRED, &old)?;
        Ok(())
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ago(at: u64) -> String {
    format!("{}s ago", now().saturating_sub(at))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
