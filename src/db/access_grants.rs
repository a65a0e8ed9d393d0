//! `access_grants`: short-lived tokens for the proxy, stored as hashes, bound to a service, an
//! instance, a subject, projects and an access level.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{access_grants, instances, services};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_grants)]
pub struct AccessGrantRow {
    pub id: String,
    pub token_hash: String,
    pub service_id: String,
    pub instance_id: String,
    pub subject: String,
    pub projects: String,
    pub access: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A grant with the names an answer or a log line needs.
#[derive(Debug, Clone, Queryable)]
pub struct NamedGrant {
    pub grant: AccessGrantRow,
    pub service_name: String,
    pub instance_name: String,
}

/// What `list` keeps: grants of one instance or subject, or every live one.
#[derive(Debug, Default)]
pub struct GrantFilter {
    pub instance: Option<String>,
    pub subject: Option<String>,
    /// One service's grants (by its id).
    pub service_id: Option<String>,
    /// Only those after this one in the list's order (newest first): its creation and id.
    pub after: Option<(NaiveDateTime, String)>,
    pub limit: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, row: &AccessGrantRow) -> QueryResult<()> {
    diesel::insert_into(access_grants::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The live grant whose token hashes to `hash`, with its service's and instance's names.
pub fn live_by_token_hash(
    conn: &mut DbConnection,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<NamedGrant>> {
    access_grants::table
        .inner_join(services::table)
        .inner_join(instances::table)
        .filter(access_grants::token_hash.eq(hash))
        .filter(access_grants::expires_at.gt(now))
        .select((AccessGrantRow::as_select(), services::name, instances::name))
        .first::<(AccessGrantRow, String, String)>(conn)
        .optional()
        .map(|found| found.map(named))
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<NamedGrant>> {
    access_grants::table
        .inner_join(services::table)
        .inner_join(instances::table)
        .filter(access_grants::id.eq(id))
        .select((AccessGrantRow::as_select(), services::name, instances::name))
        .first::<(AccessGrantRow, String, String)>(conn)
        .optional()
        .map(|found| found.map(named))
}

/// Live grants, newest first.
pub fn list(
    conn: &mut DbConnection,
    filter: &GrantFilter,
    now: NaiveDateTime,
) -> QueryResult<Vec<NamedGrant>> {
    let mut query = access_grants::table
        .inner_join(services::table)
        .inner_join(instances::table)
        .filter(access_grants::expires_at.gt(now))
        .select((AccessGrantRow::as_select(), services::name, instances::name))
        .order((access_grants::created_at.desc(), access_grants::id.desc()))
        .into_boxed();
    if let Some((created_at, id)) = &filter.after {
        query = query.filter(
            access_grants::created_at
                .lt(*created_at)
                .or(access_grants::created_at
                    .eq(*created_at)
                    .and(access_grants::id.lt(id.clone()))),
        );
    }
    if let Some(limit) = filter.limit {
        query = query.limit(limit);
    }
    if let Some(instance) = &filter.instance {
        query = query.filter(instances::name.eq(instance));
    }
    if let Some(subject) = &filter.subject {
        query = query.filter(access_grants::subject.eq(subject));
    }
    if let Some(service_id) = &filter.service_id {
        query = query.filter(access_grants::service_id.eq(service_id));
    }
    query
        .load::<(AccessGrantRow, String, String)>(conn)
        .map(|rows| rows.into_iter().map(named).collect())
}

/// Ends a grant; returns whether it existed.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(access_grants::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends the grants a service made for a subject on an instance: their connection is going.
pub fn delete_for_holder(
    conn: &mut DbConnection,
    service_id: &str,
    instance_id: &str,
    subject: &str,
) -> QueryResult<usize> {
    diesel::delete(
        access_grants::table
            .filter(access_grants::service_id.eq(service_id))
            .filter(access_grants::instance_id.eq(instance_id))
            .filter(access_grants::subject.eq(subject)),
    )
    .execute(conn)
}

/// Forgets grants that expired before `before`: they can never be used again.
pub fn delete_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(access_grants::table.filter(access_grants::expires_at.lt(before))).execute(conn)
}

fn named((grant, service_name, instance_name): (AccessGrantRow, String, String)) -> NamedGrant {
    NamedGrant {
        grant,
        service_name,
        instance_name,
    }
}
