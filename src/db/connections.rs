//! `connections`: a person's GitLab grant per (instance, subject, scope set), tokens sealed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{connections, instances, services};
use crate::domain::{ConnectionKind, ConnectionStatus};

diesel::allow_columns_to_appear_in_same_group_by_clause!(instances::name, connections::status);

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
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub status: ConnectionStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub refreshed_at: Option<NaiveDateTime>,
    pub refresh_lease_owner: Option<String>,
    pub refresh_lease_until: Option<NaiveDateTime>,
    pub refresh_in_flight_since: Option<NaiveDateTime>,
    pub status_reason: Option<String>,
    /// When the current access token was issued (labgate's clock, as the request left).
    pub token_issued_at: NaiveDateTime,
    /// When the background refresher renews it (`ConnectionKind::renewal_due_at`).
    pub refresh_due_at: NaiveDateTime,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub kind: ConnectionKind,
    /// GitLab's id of the access token held now (access-token connections).
    pub access_token_id: Option<String>,
    /// The access token held cannot rotate itself: it is announced before it expires instead.
    pub rotation_impossible: bool,
    /// When `connection.expiring` was written for the token held now.
    pub expiry_announced_at: Option<NaiveDateTime>,
}

/// New tokens from a refresh, sealed for their row.
pub struct RefreshedTokens<'a> {
    pub access_token_sealed: &'a [u8],
    pub refresh_token_sealed: &'a [u8],
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub refresh_due_at: NaiveDateTime,
    /// GitLab's id of a rotated access token (`None` for OAuth).
    pub access_token_id: Option<&'a str>,
}

/// Filters of the admin listing; `None` matches everything.
#[derive(Debug, Default)]
pub struct ConnectionFilter {
    pub service_name: Option<String>,
    pub instance_name: Option<String>,
    pub subject: Option<String>,
    pub status: Option<ConnectionStatus>,
    /// Only those after this one in the list's order (newest first): its creation and id.
    pub after: Option<(NaiveDateTime, String)>,
    pub limit: Option<i64>,
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

/// Connections not revoked that hold the access token GitLab knows by `token_id`.
pub fn holding_access_token(
    conn: &mut DbConnection,
    instance_id: &str,
    token_id: &str,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::instance_id.eq(instance_id))
        .filter(connections::access_token_id.eq(token_id))
        .filter(connections::status.ne(ConnectionStatus::Revoked.as_str()))
        .select(ConnectionRow::as_select())
        .load(conn)
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

/// Active connections whose refresh is due by `now`, or whose last refresh's outcome is
/// unknown, and that nobody is refreshing; never access tokens that cannot rotate themselves.
pub fn due_for_refresh(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::status.eq(ConnectionStatus::Active.as_str()))
        .filter(connections::rotation_impossible.eq(false))
        .filter(
            connections::refresh_due_at
                .le(now)
                .or(connections::refresh_in_flight_since.is_not_null()),
        )
        .filter(
            connections::refresh_lease_until
                .is_null()
                .or(connections::refresh_lease_until.lt(now)),
        )
        .order(connections::refresh_due_at)
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

/// Stores a refresh's new pair and clears the marker and the lease, if `lease_owner` still holds
/// the lease: once another process has taken it over, that process decides the row. `false`:
/// not stored (deleted, or the lease is someone else's).
pub fn store_refresh(
    conn: &mut DbConnection,
    id: &str,
    lease_owner: &str,
    tokens: RefreshedTokens<'_>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let leased = connections::table
        .find(id)
        .filter(connections::refresh_lease_owner.eq(lease_owner));
    diesel::update(leased)
        .set((
            connections::access_token_sealed.eq(tokens.access_token_sealed),
            connections::refresh_token_sealed.eq(tokens.refresh_token_sealed),
            connections::token_issued_at.eq(tokens.issued_at),
            connections::expires_at.eq(tokens.expires_at),
            connections::refresh_due_at.eq(tokens.refresh_due_at),
            connections::access_token_id.eq(tokens.access_token_id),
            // A new token: its own expiry is announced, if it must be.
            connections::expiry_announced_at.eq(None::<NaiveDateTime>),
            connections::refreshed_at.eq(now),
            connections::updated_at.eq(now),
            connections::refresh_in_flight_since.eq(None::<NaiveDateTime>),
            connections::refresh_lease_owner.eq(None::<String>),
            connections::refresh_lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Records that the access token held cannot rotate itself, and gives the lease back: nothing
/// rotated. The refresher leaves the row alone from then on (it is announced before expiry).
pub fn flag_rotation_impossible(conn: &mut DbConnection, id: &str, owner: &str) -> QueryResult<()> {
    diesel::update(
        connections::table
            .find(id)
            .filter(connections::refresh_lease_owner.eq(owner)),
    )
    .set((
        connections::rotation_impossible.eq(true),
        connections::refresh_due_at.eq(connections::expires_at),
        connections::refresh_in_flight_since.eq(None::<NaiveDateTime>),
        connections::refresh_lease_owner.eq(None::<String>),
        connections::refresh_lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(drop)
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
    status: ConnectionStatus,
    reason: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(connections::table.find(id))
        .set((
            connections::status.eq(status.as_str()),
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

/// How many connections each instance holds in each status (one row per instance and status
/// that has any), optionally for one instance only.
pub fn count_by_instance_and_status(
    conn: &mut DbConnection,
    instance_name: Option<&str>,
) -> QueryResult<Vec<(String, String, i64)>> {
    let counted = connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .group_by((instances::name, connections::status))
        .select((
            instances::name,
            connections::status,
            diesel::dsl::count_star(),
        ));
    match instance_name {
        Some(name) => counted.filter(instances::name.eq(name)).load(conn),
        None => counted.load(conn),
    }
}

pub fn insert(conn: &mut DbConnection, row: &ConnectionRow) -> QueryResult<()> {
    diesel::insert_into(connections::table)
        .values(row.clone())
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
            connections::token_issued_at.eq(row.token_issued_at),
            connections::expires_at.eq(row.expires_at),
            connections::refresh_due_at.eq(row.refresh_due_at),
            connections::kind.eq(row.kind.as_str()),
            connections::access_token_id.eq(&row.access_token_id),
            connections::rotation_impossible.eq(row.rotation_impossible),
            connections::expiry_announced_at.eq(row.expiry_announced_at),
            connections::status.eq(row.status.as_str()),
            connections::status_reason.eq(None::<String>),
            connections::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// One connection with the names of its instance and service.
pub fn find_listed(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(ConnectionRow, String, String)>> {
    connections::table
        .inner_join(instances::table.on(instances::id.eq(connections::instance_id)))
        .inner_join(services::table.on(services::id.eq(connections::service_id)))
        .filter(connections::id.eq(id))
        .select((ConnectionRow::as_select(), instances::name, services::name))
        .first(conn)
        .optional()
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
        .order((connections::created_at.desc(), connections::id.desc()))
        .into_boxed();
    if let Some((created_at, id)) = &filter.after {
        query = query.filter(
            connections::created_at
                .lt(*created_at)
                .or(connections::created_at
                    .eq(*created_at)
                    .and(connections::id.lt(id.clone()))),
        );
    }
    if let Some(limit) = filter.limit {
        query = query.limit(limit);
    }
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
        query = query.filter(connections::status.eq(status.as_str()));
    }
    query.load(conn)
}
