//! Which configured keys a starting process may serve with: the key the database is under; during
//! a rotation, the new key with the old one beside it; after one, never the retired key.

use anyhow::bail;

use super::lease;
use crate::crypto::{MasterKey, Sealer};
use crate::db::{DbConnection, meta};

/// The sealer a process serves with: it seals under `primary` and opens under `previous` too.
pub fn sealer_for_database(
    conn: &mut DbConnection,
    primary: &MasterKey,
    previous: Option<&MasterKey>,
) -> anyhow::Result<Sealer> {
    let key = primary.id().to_string();
    let other = previous.map(|k| k.id().to_string());
    let recorded = meta::get_or_insert(conn, meta::MASTER_KEY_ID, &key)?;
    let target = lease::current(conn)?.map(|r| r.target);
    let retired = meta::get(conn, meta::MASTER_KEY_RETIRED)?;
    if retired.as_deref() == Some(&key) && key != recorded {
        bail!(
            "master key {key} was retired by a rotation to master key {recorded}: configure the \
             new key {recorded} (security.master_key_file)"
        );
    }
    if key == recorded {
        if let Some(target) = target.filter(|t| other.as_ref() != Some(t)) {
            bail!(
                "a master-key rotation from key {recorded} to key {target} is under way: configure \
                 the new key {target} as security.master_key_file and {recorded} as \
                 security.previous_master_key_file"
            );
        }
    } else if other.as_deref() == Some(&recorded) {
        if let Some(target) = target.filter(|t| *t != key) {
            bail!(
                "a master-key rotation from key {recorded} to key {target} is under way, but the \
                 configured new key is {key}"
            );
        }
    } else {
        bail!(
            "this database holds secrets sealed under master key {recorded}, but the configured key is \
             {key}: configure the original key (security.master_key or security.master_key_file)"
        );
    }
    Ok(match previous {
        Some(previous) => Sealer::with_other(primary, previous),
        None => Sealer::new(primary),
    })
}
