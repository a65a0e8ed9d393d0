//! Announcing access tokens that cannot rotate themselves: 7 days before one expires, its
//! service's webhooks receive `connection.expiring`, once per token, written with the mark that
//! says it was announced (any one process does it).

use chrono::{TimeDelta, Utc};

use super::webhooks::outbox;
use super::{Context, ServiceError};
use crate::db;
use crate::domain::{ConnectionStatus, EventType};

/// How long before expiry a token that cannot rotate itself is announced.
pub const ANNOUNCE_BEFORE: TimeDelta = TimeDelta::days(7);

/// Announces every such token expiring within `ANNOUNCE_BEFORE`; returns how many.
pub async fn announce_expiring(ctx: &Context) -> Result<usize, ServiceError> {
    let now = Utc::now().naive_utc();
    let due = ctx
        .db_read(move |conn| db::access_token_expiry::unannounced(conn, now + ANNOUNCE_BEFORE))
        .await?;
    let mut announced = 0;
    for (row, instance) in due {
        let made = ctx
            .db_write(move |conn| {
                conn.write_transaction(|conn| {
                    if !db::access_token_expiry::mark_announced(conn, &row.id, row.expires_at, now)?
                    {
                        return Ok(false);
                    }
                    let change = outbox::Change {
                        kind: EventType::ConnectionExpiring,
                        service_id: &row.service_id,
                        connection_id: &row.id,
                        instance: &instance,
                        subject: &row.subject,
                        status: ConnectionStatus::Active,
                        reason: Some("rotation_impossible"),
                        expires_at: Some(row.expires_at),
                    };
                    outbox::record(conn, &change)?;
                    Ok(true)
                })
            })
            .await?;
        announced += usize::from(made);
    }
    Ok(announced)
}
