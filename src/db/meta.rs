//! `labgate_meta`: single facts about this installation, written once.

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
