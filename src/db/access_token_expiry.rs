//! Access-token connections seen by their expiry: the days each has left, and those that cannot
//! rotate themselves and must be announced before they expire.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::connections::ConnectionRow;
use super::schema::{connections, instances};
use crate::domain::{ConnectionKind, ConnectionStatus};

/// Active access-token connections: instance name, connection id and expiry.
pub fn expiries(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, NaiveDateTime)>> {
    connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .filter(connections::kind.eq(ConnectionKind::AccessToken.as_str()))
        .filter(connections::status.eq(ConnectionStatus::Active.as_str()))
        .select((instances::name, connections::id, connections::expires_at))
        .load(conn)
}

/// Active access tokens that cannot rotate themselves, expiring before `before`, whose expiry
/// nobody announced yet; with their instance's name.
pub fn unannounced(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> QueryResult<Vec<(ConnectionRow, String)>> {
    connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .filter(connections::kind.eq(ConnectionKind::AccessToken.as_str()))
        .filter(connections::status.eq(ConnectionStatus::Active.as_str()))
        .filter(connections::rotation_impossible.eq(true))
        .filter(connections::expires_at.lt(before))
        .filter(connections::expiry_announced_at.is_null())
        .select((ConnectionRow::as_select(), instances::name))
        .load(conn)
}

/// Records the announcement, unless another process made it first (`false`).
pub fn mark_announced(
    conn: &mut DbConnection,
    id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        connections::table
            .find(id)
            .filter(connections::expiry_announced_at.is_null())
            // The token announced: not one that replaced it meanwhile.
            .filter(connections::expires_at.eq(expires_at)),
    )
    .set(connections::expiry_announced_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}
