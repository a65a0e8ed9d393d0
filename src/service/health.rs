//! Readiness: can this process serve requests that need storage?

use diesel::result::Error as DieselError;

use super::{Context, ServiceError, connections};
use crate::db;
use crate::domain::ConnectionStatus;

/// `Ok` when the database answers and no migration is pending; otherwise why not.
pub async fn readiness(ctx: &Context) -> Result<(), String> {
    let pending = ctx
        .db_read(|conn| {
            db::ping(conn)?;
            db::has_pending_migrations(conn).map_err(DieselError::QueryBuilderError)
        })
        .await;
    match pending {
        Ok(false) => Ok(()),
        Ok(true) => Err("database migrations are pending: run `labgate migrate`".to_owned()),
        Err(ServiceError::Unavailable(_)) => Err("the database does not answer".to_owned()),
        Err(e) => {
            tracing::warn!(error.cause = %e, "readiness check failed");
            Err("the database check failed".to_owned())
        }
    }
}

/// Refreshes the connections-by-status gauge from the database.
pub async fn count_connections(ctx: &Context) -> Result<(), ServiceError> {
    let counted = connections::count(ctx, None).await?;
    let counts: Vec<(&str, i64)> = ConnectionStatus::ALL
        .into_iter()
        .map(|status| {
            let total = counted
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.count)
                .sum();
            (status.as_str(), total)
        })
        .collect();
    ctx.metrics.set_connections(&counts);
    Ok(())
}
