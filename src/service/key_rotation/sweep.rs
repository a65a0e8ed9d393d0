//! One pass over every sealed value: what is still under the old key is opened and sealed
//! again under the new one, a batch per transaction, each value replaced only if unchanged.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;

use super::lease::{self, RotationState};
use crate::crypto::{SealedColumn, SealedField, Sealer};
use crate::db::{DbConnection, meta, resealing};

/// The two keys of a rotation and how fast to go.
pub(super) struct Resealer {
    pub(super) old: Sealer,
    pub(super) new: Sealer,
    pub(super) batch_size: i64,
    pub(super) pause: Duration,
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) resealed: u64,
    /// Values already under the new key (sealed by a process that has it, or resumed).
    pub(super) already_new: u64,
    /// Values under neither key: they did not open before the rotation either.
    pub(super) foreign: u64,
}

impl Resealer {
    pub(super) fn pass(
        &self,
        conn: &mut DbConnection,
        state: &mut RotationState,
    ) -> anyhow::Result<Counts> {
        let mut counts = Counts::default();
        for column in resealing::TABLE_COLUMNS {
            let mut after = String::new();
            loop {
                let (seen, last) = conn.write_transaction(|conn| {
                    lease::renew(conn, state)?;
                    let rows = resealing::page(conn, column, &after, self.batch_size)?;
                    for (id, sealed) in &rows {
                        if let Some(fresh) = self.reseal(column.of(id), sealed, &mut counts)? {
                            resealing::replace(conn, column, id, sealed, &fresh)?;
                        }
                    }
                    anyhow::Ok((rows.len(), rows.last().map(|(id, _)| id.clone())))
                })?;
                match last {
                    Some(last) if seen as i64 == self.batch_size => after = last,
                    _ => break,
                }
                std::thread::sleep(self.pause);
            }
        }
        self.meta_value(conn, state, &mut counts)?;
        Ok(counts)
    }

    /// The service token key, sealed in `labgate_meta` as base64 text.
    fn meta_value(
        &self,
        conn: &mut DbConnection,
        state: &mut RotationState,
        counts: &mut Counts,
    ) -> anyhow::Result<()> {
        conn.write_transaction(|conn| {
            lease::renew(conn, state)?;
            let Some(stored) = meta::get(conn, meta::SERVICE_TOKEN_KEY)? else {
                return Ok(());
            };
            let sealed = STANDARD
                .decode(&stored)
                .context("the stored service token key is not base64")?;
            let field = SealedColumn::MetaValue.of(meta::SERVICE_TOKEN_KEY);
            if let Some(fresh) = self.reseal(field, &sealed, counts)? {
                let fresh = STANDARD.encode(fresh);
                meta::compare_and_set(conn, meta::SERVICE_TOKEN_KEY, Some(&stored), &fresh)?;
            }
            Ok(())
        })
    }

    /// The value sealed under the new key, when it is under the old one.
    fn reseal(
        &self,
        field: SealedField<'_>,
        sealed: &[u8],
        counts: &mut Counts,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let under = Sealer::sealed_under(sealed);
        if under == Some(self.new.key_id()) {
            counts.already_new += 1;
            return Ok(None);
        }
        if under != Some(self.old.key_id()) {
            counts.foreign += 1;
            return Ok(None);
        }
        let plain = self.old.open(field, sealed).with_context(|| {
            let (column, row) = (field.column, field.row_id);
            format!("the {column:?} value of row {row} does not open under the old key")
        })?;
        counts.resealed += 1;
        Ok(Some(self.new.seal(field, plain.expose_secret())))
    }
}
