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

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<InstanceRow>> {
    instances::table
        .order(instances::name)
        .select(InstanceRow::as_select())
        .load(conn)
}

/// Replaces every column of the row with the same id; returns whether it still existed.
pub fn update(conn: &mut DbConnection, row: &InstanceRow) -> QueryResult<bool> {
    diesel::update(instances::table.find(&row.id))
        .set(row)
        .execute(conn)
        .map(|n| n == 1)
}

pub fn record_check(
    conn: &mut DbConnection,
    id: &str,
    ok: bool,
    report: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(instances::table.find(id))
        .set((
            instances::last_check_ok.eq(ok),
            instances::last_check_report.eq(report),
            instances::last_checked_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn delete(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::delete(instances::table.filter(instances::name.eq(name)))
        .execute(conn)
        .map(|n| n == 1)
}
