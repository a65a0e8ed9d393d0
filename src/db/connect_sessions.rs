//! `connect_sessions`: single-use connect links and the OAuth state they turn into.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::connect_sessions;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = connect_sessions)]
pub struct ConnectSessionRow {
    pub id: String,
    pub service_id: String,
    pub instance_id: String,
    pub subject: String,
    pub scopes: String,
    pub return_to: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub state_hash: Option<String>,
    pub nonce: Option<String>,
    pub pkce_verifier_sealed: Option<Vec<u8>>,
    pub browser_binding_hash: Option<String>,
    pub finished_at: Option<NaiveDateTime>,
    pub outcome: Option<String>,
    pub connection_id: Option<String>,
}

/// The outcome of a link the person cancelled before going to GitLab.
pub const CANCELLED: &str = "cancelled";

/// The outcome of a session that became a connection.
pub const CONNECTED: &str = "connected";

/// What following a link stores: the state's hash, the nonce, the sealed PKCE verifier, and
/// the hash of the browser's binding cookie.
pub struct Authorization<'a> {
    pub state_hash: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier_sealed: &'a [u8],
    pub browser_binding_hash: &'a str,
}

pub fn insert(conn: &mut DbConnection, row: &ConnectSessionRow) -> QueryResult<()> {
    diesel::insert_into(connect_sessions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ConnectSessionRow>> {
    connect_sessions::table
        .find(id)
        .select(ConnectSessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_state(
    conn: &mut DbConnection,
    state_hash: &str,
) -> QueryResult<Option<ConnectSessionRow>> {
    connect_sessions::table
        .filter(connect_sessions::state_hash.eq(state_hash))
        .select(ConnectSessionRow::as_select())
        .first(conn)
        .optional()
}

/// Marks an unstarted, unexpired link as followed. `false`: it was used or expired already;
/// the compare-and-set makes a link good for one browser even when two follow it at once.
pub fn start(
    conn: &mut DbConnection,
    id: &str,
    auth: Authorization<'_>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        connect_sessions::table
            .find(id)
            .filter(connect_sessions::started_at.is_null())
            .filter(connect_sessions::expires_at.gt(now)),
    )
    .set((
        connect_sessions::started_at.eq(now),
        connect_sessions::state_hash.eq(auth.state_hash),
        connect_sessions::nonce.eq(auth.nonce),
        connect_sessions::pkce_verifier_sealed.eq(auth.pkce_verifier_sealed),
        connect_sessions::browser_binding_hash.eq(auth.browser_binding_hash),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Spends the state: only the first caller with it gets `true`, whatever happens next.
pub fn spend_state(
    conn: &mut DbConnection,
    state_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        connect_sessions::table
            .filter(connect_sessions::state_hash.eq(state_hash))
            .filter(connect_sessions::finished_at.is_null()),
    )
    .set(connect_sessions::finished_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// The session a browser's binding cookie belongs to, by the cookie's hash.
pub fn find_by_binding(
    conn: &mut DbConnection,
    binding_hash: &str,
) -> QueryResult<Option<ConnectSessionRow>> {
    connect_sessions::table
        .filter(connect_sessions::browser_binding_hash.eq(binding_hash))
        .select(ConnectSessionRow::as_select())
        .first(conn)
        .optional()
}

/// Spends an unstarted, unexpired link the person declined on labgate's own page. `false`:
/// it was used or expired already.
pub fn cancel(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        connect_sessions::table
            .find(id)
            .filter(connect_sessions::started_at.is_null())
            .filter(connect_sessions::expires_at.gt(now)),
    )
    .set((
        connect_sessions::started_at.eq(now),
        connect_sessions::finished_at.eq(now),
        connect_sessions::outcome.eq(CANCELLED),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn record_outcome(
    conn: &mut DbConnection,
    id: &str,
    outcome: &str,
    connection_id: Option<&str>,
) -> QueryResult<()> {
    diesel::update(connect_sessions::table.find(id))
        .set((
            connect_sessions::outcome.eq(outcome),
            connect_sessions::connection_id.eq(connection_id),
        ))
        .execute(conn)
        .map(drop)
}
