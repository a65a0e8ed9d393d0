//! `connections`: a person's GitLab grant per (instance, subject, scope set), tokens sealed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{connections, instances, services};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = connections)]
pub struct ConnectionRow {
    pub id: String,
    pub service_id: String,
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
    pub refresh_lease_owner: Option<String>,
    pub refresh_lease_until: Option<NaiveDateTime>,
    pub refresh_in_flight_since: Option<NaiveDateTime>,
    pub status_reason: Option<String>,
}

/// New tokens from a refresh, sealed for their row.
pub struct RefreshedTokens<'a> {
    pub access_token_sealed: &'a [u8],
    pub refresh_token_sealed: &'a [u8],
    pub expires_at: NaiveDateTime,
}

/// Filters of the admin listing; `None` matches everything.
#[derive(Debug, Default)]
pub struct ConnectionFilter {
    pub service_name: Option<String>,
    pub instance_name: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
}

/// The connection for exactly this (service, instance, subject, scope set), if any.
pub fn find_for_grant(
    conn: &mut DbConnection,
    service_id: &str,
    instance_id: &str,
    subject: &str,
    scopes: &str,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::service_id.eq(service_id))
        .filter(connections::instance_id.eq(instance_id))
        .filter(connections::subject.eq(subject))
        .filter(connections::scopes.eq(scopes))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .find(id)
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

/// Every connection one service's subject holds on an instance, whatever its status.
pub fn for_subject(
    conn: &mut DbConnection,
    service_id: &str,
    instance_id: &str,
    subject: &str,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::service_id.eq(service_id))
        .filter(connections::instance_id.eq(instance_id))
        .filter(connections::subject.eq(subject))
        .select(ConnectionRow::as_select())
        .load(conn)
}

pub fn for_instance(conn: &mut DbConnection, instance_id: &str) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::instance_id.eq(instance_id))
        .select(ConnectionRow::as_select())
        .load(conn)
}

/// Active connections whose token expires before `before`, or whose last refresh's outcome is
/// unknown, and that nobody is refreshing.
pub fn due_for_refresh(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::status.eq("active"))
        .filter(
            connections::expires_at
                .lt(before)
                .or(connections::refresh_in_flight_since.is_not_null()),
        )
        .filter(
            connections::refresh_lease_until
                .is_null()
                .or(connections::refresh_lease_until.lt(now)),
        )
        .order(connections::expires_at)
        .limit(limit)
        .select(ConnectionRow::as_select())
        .load(conn)
}

/// Takes the refresh lease if nobody holds it (or theirs ran out). Only the holder may refresh.
pub fn take_lease(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        connections::table.find(id).filter(
            connections::refresh_lease_until
                .is_null()
                .or(connections::refresh_lease_until.lt(now)),
        ),
    )
    .set((
        connections::refresh_lease_owner.eq(owner),
        connections::refresh_lease_until.eq(until),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records, before the request leaves, that a refresh with the current tokens is under way.
pub fn mark_in_flight(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        connections::table
            .find(id)
            .filter(connections::refresh_lease_owner.eq(owner)),
    )
    .set(connections::refresh_in_flight_since.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Stores a refresh's new pair and clears the marker and the lease. Unconditional: a pair
/// GitLab has issued is the only live one, and must never be dropped.
pub fn store_refresh(
    conn: &mut DbConnection,
    id: &str,
    tokens: RefreshedTokens<'_>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(connections::table.find(id))
        .set((
            connections::access_token_sealed.eq(tokens.access_token_sealed),
            connections::refresh_token_sealed.eq(tokens.refresh_token_sealed),
            connections::expires_at.eq(tokens.expires_at),
            connections::refreshed_at.eq(now),
            connections::updated_at.eq(now),
            connections::refresh_in_flight_since.eq(None::<NaiveDateTime>),
            connections::refresh_lease_owner.eq(None::<String>),
            connections::refresh_lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Gives the lease back; clears the in-flight marker only when the outcome is known.
pub fn release_lease(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    outcome_known: bool,
) -> QueryResult<()> {
    let target = connections::table
        .find(id)
        .filter(connections::refresh_lease_owner.eq(owner));
    let lease = (
        connections::refresh_lease_owner.eq(None::<String>),
        connections::refresh_lease_until.eq(None::<NaiveDateTime>),
    );
    if outcome_known {
        diesel::update(target)
            .set((
                lease,
                connections::refresh_in_flight_since.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
    } else {
        diesel::update(target).set(lease).execute(conn)
    }
    .map(drop)
}

/// Moves a connection to `status` with a reason; any lease and marker end with it.
pub fn set_status(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    reason: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(connections::table.find(id))
        .set((
            connections::status.eq(status),
            connections::status_reason.eq(reason),
            connections::updated_at.eq(now),
            connections::refresh_in_flight_since.eq(None::<NaiveDateTime>),
            connections::refresh_lease_owner.eq(None::<String>),
            connections::refresh_lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn for_service(conn: &mut DbConnection, service_id: &str) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::service_id.eq(service_id))
        .select(ConnectionRow::as_select())
        .load(conn)
}

pub fn delete_for_service(conn: &mut DbConnection, service_id: &str) -> QueryResult<usize> {
    diesel::delete(connections::table.filter(connections::service_id.eq(service_id))).execute(conn)
}

pub fn delete_for_instance(conn: &mut DbConnection, instance_id: &str) -> QueryResult<usize> {
    diesel::delete(connections::table.filter(connections::instance_id.eq(instance_id)))
        .execute(conn)
}

/// The status of every connection, for the metrics gauge.
pub fn statuses(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    connections::table.select(connections::status).load(conn)
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
            connections::status_reason.eq(None::<String>),
            connections::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Connections with the names of their instance and service, newest first.
pub fn list(
    conn: &mut DbConnection,
    filter: &ConnectionFilter,
) -> QueryResult<Vec<(ConnectionRow, String, String)>> {
    let mut query = connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .inner_join(services::table.on(services::id.eq(connections::service_id)))
        .select((ConnectionRow::as_select(), instances::name, services::name))
        .order(connections::created_at.desc())
        .into_boxed();
    if let Some(name) = &filter.service_name {
        query = query.filter(services::name.eq(name));
    }
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
