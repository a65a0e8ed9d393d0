//! `services`: internal consumers of credentials.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::services;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = services)]
pub struct ServiceRow {
    pub id: String,
    pub name: String,
    pub client_id: String,
    pub secret_hash: String,
    pub instances: String,
    pub scopes: String,
    pub return_origins: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub projects: String,
    pub max_access: String,
    /// When the secret last changed: tokens and grants from before are refused.
    pub secret_rotated_at: NaiveDateTime,
    /// The workload identities it trusts, as `WorkloadIdentities::to_stored` writes them.
    pub identities: String,
}

pub fn insert(conn: &mut DbConnection, row: &ServiceRow) -> QueryResult<()> {
    diesel::insert_into(services::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ServiceRow>> {
    services::table
        .order(services::name)
        .select(ServiceRow::as_select())
        .load(conn)
}

/// Up to `limit` services by name, after `after` (a name) when given.
pub fn list_page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ServiceRow>> {
    let mut query = services::table
        .order(services::name)
        .select(ServiceRow::as_select())
        .limit(limit)
        .into_boxed();
    if let Some(name) = after {
        query = query.filter(services::name.gt(name.to_owned()));
    }
    query.load(conn)
}

pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<ServiceRow>> {
    services::table
        .filter(services::name.eq(name))
        .select(ServiceRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ServiceRow>> {
    services::table
        .find(id)
        .select(ServiceRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_client_id(
    conn: &mut DbConnection,
    client_id: &str,
) -> QueryResult<Option<ServiceRow>> {
    services::table
        .filter(services::client_id.eq(client_id))
        .select(ServiceRow::as_select())
        .first(conn)
        .optional()
}

/// Replaces the secret's hash; returns whether the service exists.
pub fn set_secret_hash(
    conn: &mut DbConnection,
    name: &str,
    hash: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(services::table.filter(services::name.eq(name)))
        .set((
            services::secret_hash.eq(hash),
            services::secret_rotated_at.eq(at),
            services::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Replaces the service's policy (instances, scopes, return origins, projects, maximum access,
/// identities).
pub fn update_policy(conn: &mut DbConnection, row: &ServiceRow) -> QueryResult<bool> {
    diesel::update(services::table.find(&row.id))
        .set((
            services::instances.eq(&row.instances),
            services::scopes.eq(&row.scopes),
            services::return_origins.eq(&row.return_origins),
            services::projects.eq(&row.projects),
            services::max_access.eq(&row.max_access),
            services::identities.eq(&row.identities),
            services::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn delete(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::delete(services::table.filter(services::name.eq(name)))
        .execute(conn)
        .map(|n| n == 1)
}
