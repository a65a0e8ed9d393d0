//! `connections`: a person's GitLab grant per (instance, subject, scope set), tokens sealed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{connections, instances};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = connections)]
pub struct ConnectionRow {
    pub id: String,
    pub instance_id: String,
    pub subject: String,
    pub scopes: String,
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    pub access_token_sealed: Vec<u8>,
    pub refresh_token_sealed: Vec<u8>,
    pub expires_at: NaiveDateTime,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub refreshed_at: Option<NaiveDateTime>,
}

/// Filters of the admin listing; `None` matches everything.
#[derive(Debug, Default)]
pub struct ConnectionFilter {
    pub instance_name: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
}

pub fn find_for_grant(
    conn: &mut DbConnection,
    instance_id: &str,
    subject: &str,
    scopes: &str,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::instance_id.eq(instance_id))
        .filter(connections::subject.eq(subject))
        .filter(connections::scopes.eq(scopes))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &ConnectionRow) -> QueryResult<()> {
    diesel::insert_into(connections::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Puts a new grant in an existing row (connecting again): new tokens, identity, status.
pub fn replace_grant(conn: &mut DbConnection, row: &ConnectionRow) -> QueryResult<bool> {
    diesel::update(connections::table.find(&row.id))
        .set((
            connections::gitlab_user_id.eq(&row.gitlab_user_id),
            connections::gitlab_username.eq(&row.gitlab_username),
            connections::access_token_sealed.eq(&row.access_token_sealed),
            connections::refresh_token_sealed.eq(&row.refresh_token_sealed),
            connections::expires_at.eq(row.expires_at),
            connections::status.eq(&row.status),
            connections::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Connections with the name of their instance, newest first.
pub fn list(
    conn: &mut DbConnection,
    filter: &ConnectionFilter,
) -> QueryResult<Vec<(ConnectionRow, String)>> {
    let mut query = connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .select((ConnectionRow::as_select(), instances::name))
        .order(connections::created_at.desc())
        .into_boxed();
    if let Some(name) = &filter.instance_name {
        query = query.filter(instances::name.eq(name));
    }
    if let Some(subject) = &filter.subject {
        query = query.filter(connections::subject.eq(subject));
    }
    if let Some(status) = &filter.status {
        query = query.filter(connections::status.eq(status));
    }
    query.load(conn)
}
