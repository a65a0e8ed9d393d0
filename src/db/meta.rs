//! `labgate_meta`: single facts about this installation, most written once; a master-key
//! rotation keeps its state here.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::labgate_meta::dsl::{labgate_meta, name, value};

pub const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";
pub const MASTER_KEY_ID: &str = "master_key_id";
pub const SERVICE_TOKEN_KEY: &str = "service_token_key";

/// Stores `new_value` unless the key has one already; returns the value that holds afterwards,
/// so two processes starting together agree on one.
pub fn get_or_insert(conn: &mut DbConnection, key: &str, new_value: &str) -> QueryResult<String> {
    match diesel::insert_into(labgate_meta)
        .values((name.eq(key), value.eq(new_value)))
        .execute(conn)
    {
        Ok(_) => Ok(new_value.to_owned()),
        Err(e) if super::is_unique_violation(&e) => {
            labgate_meta.filter(name.eq(key)).select(value).first(conn)
        }
        Err(e) => Err(e),
    }
}

pub const MASTER_KEY_ROTATION: &str = "master_key_rotation";
/// The key a finished rotation replaced: a process configured with it is refused by name.
pub const MASTER_KEY_RETIRED: &str = "master_key_retired";

pub fn get(conn: &mut DbConnection, key: &str) -> QueryResult<Option<String>> {
    labgate_meta
        .filter(name.eq(key))
        .select(value)
        .first(conn)
        .optional()
}

/// Sets `key` to `new_value` only if it holds `expected` (`None`: only if it has no value);
/// `false` when another process changed it first.
pub fn compare_and_set(
    conn: &mut DbConnection,
    key: &str,
    expected: Option<&str>,
    new_value: &str,
) -> QueryResult<bool> {
    match expected {
        None => super::inserted(
            diesel::insert_into(labgate_meta)
                .values((name.eq(key), value.eq(new_value)))
                .execute(conn)
                .map(drop),
        ),
        Some(old) => diesel::update(labgate_meta.filter(name.eq(key)).filter(value.eq(old)))
            .set(value.eq(new_value))
            .execute(conn)
            .map(|n| n == 1),
    }
}

/// Removes `key` only if it holds `expected`.
pub fn delete_if(conn: &mut DbConnection, key: &str, expected: &str) -> QueryResult<bool> {
    diesel::delete(labgate_meta.filter(name.eq(key)).filter(value.eq(expected)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Sets `key` whatever it held.
pub fn put(conn: &mut DbConnection, key: &str, new_value: &str) -> QueryResult<()> {
    let updated = diesel::update(labgate_meta.filter(name.eq(key)))
        .set(value.eq(new_value))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(labgate_meta)
            .values((name.eq(key), value.eq(new_value)))
            .execute(conn)?;
    }
    Ok(())
}
