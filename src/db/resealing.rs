//! Every sealed column read page by page and rewritten value by value, for a master-key
//! rotation. A value is replaced only if it still holds what was read (compare and set), so a
//! value another process wrote meanwhile is never overwritten.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::{
    admin_sign_ins, connect_sessions, connections, instances, service_webhooks, webhook_deliveries,
};
use crate::crypto::SealedColumn;

/// The sealed columns kept in their own tables (`labgate_meta`'s sealed value is done apart).
pub const TABLE_COLUMNS: [SealedColumn; 7] = [
    SealedColumn::InstanceClientSecret,
    SealedColumn::ConnectionAccessToken,
    SealedColumn::ConnectionRefreshToken,
    SealedColumn::ConnectSessionPkceVerifier,
    SealedColumn::AdminSignInPkceVerifier,
    SealedColumn::WebhookSecret,
    SealedColumn::DeliverySecret,
];

/// Up to `limit` rows of `column` with an id after `after`, in id order: (id, sealed value).
pub fn page(
    conn: &mut DbConnection,
    column: SealedColumn,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<(String, Vec<u8>)>> {
    use SealedColumn as C;
    match column {
        C::InstanceClientSecret => instances::table
            .filter(instances::id.gt(after))
            .order(instances::id)
            .limit(limit)
            .select((instances::id, instances::client_secret_sealed))
            .load(conn),
        C::ConnectionAccessToken => connections::table
            .filter(connections::id.gt(after))
            .order(connections::id)
            .limit(limit)
            .select((connections::id, connections::access_token_sealed))
            .load(conn),
        C::ConnectionRefreshToken => connections::table
            .filter(connections::id.gt(after))
            .order(connections::id)
            .limit(limit)
            .select((connections::id, connections::refresh_token_sealed))
            .load(conn),
        C::ConnectSessionPkceVerifier => connect_sessions::table
            .filter(connect_sessions::id.gt(after))
            .filter(connect_sessions::pkce_verifier_sealed.is_not_null())
            .order(connect_sessions::id)
            .limit(limit)
            .select((
                connect_sessions::id,
                connect_sessions::pkce_verifier_sealed.assume_not_null(),
            ))
            .load(conn),
        C::AdminSignInPkceVerifier => admin_sign_ins::table
            .filter(admin_sign_ins::id.gt(after))
            .order(admin_sign_ins::id)
            .limit(limit)
            .select((admin_sign_ins::id, admin_sign_ins::pkce_verifier_sealed))
            .load(conn),
        C::WebhookSecret => service_webhooks::table
            .filter(service_webhooks::id.gt(after))
            .order(service_webhooks::id)
            .limit(limit)
            .select((service_webhooks::id, service_webhooks::secret_sealed))
            .load(conn),
        C::DeliverySecret => webhook_deliveries::table
            .filter(webhook_deliveries::id.gt(after))
            .filter(webhook_deliveries::secret_sealed.is_not_null())
            .order(webhook_deliveries::id)
            .limit(limit)
            .select((
                webhook_deliveries::id,
                webhook_deliveries::secret_sealed.assume_not_null(),
            ))
            .load(conn),
        C::MetaValue => Ok(Vec::new()),
    }
}

/// Writes `new` into the row's column if it still holds `old`; `false` when it changed.
pub fn replace(
    conn: &mut DbConnection,
    column: SealedColumn,
    id: &str,
    old: &[u8],
    new: &[u8],
) -> QueryResult<bool> {
    use SealedColumn as C;
    let changed = match column {
        C::InstanceClientSecret => diesel::update(
            instances::table
                .filter(instances::id.eq(id))
                .filter(instances::client_secret_sealed.eq(old)),
        )
        .set(instances::client_secret_sealed.eq(new))
        .execute(conn)?,
        C::ConnectionAccessToken => diesel::update(
            connections::table
                .filter(connections::id.eq(id))
                .filter(connections::access_token_sealed.eq(old)),
        )
        .set(connections::access_token_sealed.eq(new))
        .execute(conn)?,
        C::ConnectionRefreshToken => diesel::update(
            connections::table
                .filter(connections::id.eq(id))
                .filter(connections::refresh_token_sealed.eq(old)),
        )
        .set(connections::refresh_token_sealed.eq(new))
        .execute(conn)?,
        C::ConnectSessionPkceVerifier => diesel::update(
            connect_sessions::table
                .filter(connect_sessions::id.eq(id))
                .filter(connect_sessions::pkce_verifier_sealed.eq(old)),
        )
        .set(connect_sessions::pkce_verifier_sealed.eq(new))
        .execute(conn)?,
        C::AdminSignInPkceVerifier => diesel::update(
            admin_sign_ins::table
                .filter(admin_sign_ins::id.eq(id))
                .filter(admin_sign_ins::pkce_verifier_sealed.eq(old)),
        )
        .set(admin_sign_ins::pkce_verifier_sealed.eq(new))
        .execute(conn)?,
        C::WebhookSecret => diesel::update(
            service_webhooks::table
                .filter(service_webhooks::id.eq(id))
                .filter(service_webhooks::secret_sealed.eq(old)),
        )
        .set(service_webhooks::secret_sealed.eq(new))
        .execute(conn)?,
        C::DeliverySecret => diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(id))
                .filter(webhook_deliveries::secret_sealed.eq(old)),
        )
        .set(webhook_deliveries::secret_sealed.eq(new))
        .execute(conn)?,
        C::MetaValue => 0,
    };
    Ok(changed == 1)
}
