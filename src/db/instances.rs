//! `instances`: registered GitLab instances, one row each.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::instances;

/// A stored instance. The secret is sealed; this type never leaves the service layer.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = instances, treat_none_as_null = true)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub client_id: String,
    pub client_secret_sealed: Vec<u8>,
    pub ca_pem: Option<String>,
    pub scopes: String,
    pub discovery: String,
    pub last_check_ok: bool,
    pub last_check_report: String,
    pub last_checked_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The access-token lifetime GitLab last granted here; learned, never edited.
    #[diesel(skip_update)]
    pub token_lifetime_seconds: Option<i64>,
    /// Since when GitLab answers `invalid_client` for this application; `None` while it works.
    pub client_rejected_at: Option<NaiveDateTime>,
}

/// What a handout needs of an instance.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = instances)]
pub struct InstanceSummary {
    pub id: String,
    pub name: String,
    pub base_url: String,
    /// Its trust roots, for the proxy's calls to it.
    pub ca_pem: Option<String>,
}

/// Records the access-token lifetime GitLab just granted; writes only when it changed.
pub fn record_token_lifetime(conn: &mut DbConnection, id: &str, seconds: i64) -> QueryResult<()> {
    diesel::update(
        instances::table.find(id).filter(
            instances::token_lifetime_seconds
                .is_null()
                .or(instances::token_lifetime_seconds.ne(seconds)),
        ),
    )
    .set(instances::token_lifetime_seconds.eq(seconds))
    .execute(conn)
    .map(drop)
}

/// Records that GitLab rejected the application's credentials, unless already recorded.
pub fn record_client_rejected(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        instances::table
            .find(id)
            .filter(instances::client_rejected_at.is_null()),
    )
    .set(instances::client_rejected_at.eq(at))
    .execute(conn)
    .map(drop)
}

/// Each instance's name, and whether GitLab rejects its application's credentials.
pub fn client_standing(conn: &mut DbConnection) -> QueryResult<Vec<(String, bool)>> {
    instances::table
        .select((instances::name, instances::client_rejected_at.is_not_null()))
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &InstanceRow) -> QueryResult<()> {
    diesel::insert_into(instances::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<InstanceRow>> {
    instances::table
        .filter(instances::name.eq(name))
        .select(InstanceRow::as_select())
        .first(conn)
        .optional()
}

pub fn summary_by_name(
    conn: &mut DbConnection,
    name: &str,
) -> QueryResult<Option<InstanceSummary>> {
    instances::table
        .filter(instances::name.eq(name))
        .select(InstanceSummary::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<InstanceRow>> {
    instances::table
        .find(id)
        .select(InstanceRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<InstanceRow>> {
    instances::table
        .order(instances::name)
        .select(InstanceRow::as_select())
        .load(conn)
}

/// Replaces every column of the row, if nobody changed it since `seen_at` (its `updated_at`
/// when read): a change computed from a stale read must not overwrite a newer one.
pub fn update_if_unchanged(
    conn: &mut DbConnection,
    row: &InstanceRow,
    seen_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        instances::table
            .find(&row.id)
            .filter(instances::updated_at.eq(seen_at)),
    )
    .set(row)
    .execute(conn)
    .map(|n| n == 1)
}

/// Records a check's outcome, and the discovery document when the check passed (which also
/// proves the client's credentials good). Touches no other column, so it cannot undo a
/// concurrent change.
pub fn record_check(
    conn: &mut DbConnection,
    id: &str,
    report: &str,
    at: NaiveDateTime,
    discovery: Option<&str>,
) -> QueryResult<bool> {
    let target = instances::table.find(id);
    let recorded = match discovery {
        Some(discovery) => diesel::update(target)
            .set((
                instances::last_check_ok.eq(true),
                instances::last_check_report.eq(report),
                instances::last_checked_at.eq(at),
                instances::discovery.eq(discovery),
                // The check reached the client step and GitLab accepted the credentials.
                instances::client_rejected_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                instances::last_check_ok.eq(false),
                instances::last_check_report.eq(report),
                instances::last_checked_at.eq(at),
            ))
            .execute(conn)?,
    };
    Ok(recorded == 1)
}

pub fn delete(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::delete(instances::table.filter(instances::name.eq(name)))
        .execute(conn)
        .map(|n| n == 1)
}
