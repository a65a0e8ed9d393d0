//! Recording what a failed refresh means for the connection: a dead grant, or a failure.

use chrono::Utc;

use super::RefreshError;
use super::coordination::Lease;
use crate::db::{self, connections::ConnectionRow};
use crate::domain::{ConnectionStatus, EventType};
use crate::service::Context;
use crate::service::audit::AuditEvent;
use crate::service::webhooks::outbox;

pub(super) async fn reauthorize(
    ctx: &Context,
    lease: &Lease<'_>,
    row: &ConnectionRow,
    instance: &str,
    code: &str,
    reason: &str,
) -> RefreshError {
    let (id, status, code_owned) = (
        row.id.clone(),
        ConnectionStatus::ReauthorizationRequired,
        code.to_owned(),
    );
    let (service_id, instance_name, subject) = (
        row.service_id.clone(),
        instance.to_owned(),
        row.subject.clone(),
    );
    let now = Utc::now().naive_utc();
    if let Err(e) = ctx
        .db_write(move |conn| {
            // The status and its event together, or neither.
            conn.write_transaction(|conn| {
                if db::connections::set_status(conn, &id, status, Some(&code_owned), now)? {
                    let change = outbox::Change {
                        kind: EventType::ConnectionReauthorizationRequired,
                        service_id: &service_id,
                        connection_id: &id,
                        instance: &instance_name,
                        subject: &subject,
                        status,
                        reason: Some(&code_owned),
                        expires_at: None,
                    };
                    outbox::record(conn, &change)?;
                }
                Ok::<_, diesel::result::Error>(())
            })
        })
        .await
    {
        lease.release(false).await;
        return RefreshError::Storage(e);
    }
    tracing::warn!(instance.name = %instance, connection.id = %row.id, reason, "connection needs re-authorization");
    let event = AuditEvent::new("connection_reauthorization_required", "labgate")
        .instance(instance)
        .subject(&row.subject)
        .connection(&row.id)
        .detail(format!("{code}: {reason}"));
    ctx.audit.record(event).await;
    RefreshError::Reauthorization(code.to_owned())
}

pub(super) async fn record_failure(
    ctx: &Context,
    row: &ConnectionRow,
    instance: &str,
    reason: &str,
) {
    let event = AuditEvent::new("refresh_failed", "labgate")
        .instance(instance)
        .subject(&row.subject)
        .connection(&row.id)
        .detail(reason);
    ctx.audit.record(event).await;
}
