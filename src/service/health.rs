//! Readiness: can this process serve requests that need storage?

use diesel::result::Error as DieselError;

use super::{Context, ServiceError};
use crate::db;

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
