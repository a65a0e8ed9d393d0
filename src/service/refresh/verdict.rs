//! Recording what a failed refresh means for the connection: a dead grant, or a failure.

use chrono::Utc;

use super::RefreshError;
use super::coordination::Lease;
use crate::db::{self, connections::ConnectionRow};
use crate::domain::ConnectionStatus;
use crate::service::Context;
use crate::service::audit::AuditEvent;

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
    let now = Utc::now().naive_utc();
    if let Err(e) = ctx
        .db_write(move |conn| {
            db::connections::set_status(conn, &id, status, Some(&code_owned), now)
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
