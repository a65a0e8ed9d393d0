//! `admin_sign_ins`: admin sign-ins with GitLab between the redirect to GitLab and the
//! callback. A row is found by its state's hash and deleted as it is read: used once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::admin_sign_ins;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_sign_ins)]
pub struct AdminSignInRow {
    pub id: String,
    pub state_hash: String,
    pub instance_id: String,
    pub nonce: String,
    pub pkce_verifier_sealed: Vec<u8>,
    pub browser_binding_hash: String,
    pub next_path: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Stores a new sign-in, and forgets those that expired by `now`.
pub fn insert(
    conn: &mut DbConnection,
    row: &AdminSignInRow,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(admin_sign_ins::table.filter(admin_sign_ins::expires_at.le(now)))
        .execute(conn)?;
    diesel::insert_into(admin_sign_ins::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The sign-in with this state's hash, deleted in the same transaction: of two callbacks
/// bringing one state, only one gets it. Expired or not: the caller tells which.
pub fn spend(conn: &mut DbConnection, state_hash: &str) -> QueryResult<Option<AdminSignInRow>> {
    conn.transaction(|conn| {
        let found = admin_sign_ins::table
            .filter(admin_sign_ins::state_hash.eq(state_hash))
            .select(AdminSignInRow::as_select())
            .first(conn)
            .optional()?;
        let Some(row) = found else {
            return Ok(None);
        };
        let deleted = diesel::delete(admin_sign_ins::table.find(&row.id)).execute(conn)?;
        Ok((deleted == 1).then_some(row))
    })
}
