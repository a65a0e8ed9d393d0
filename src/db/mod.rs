//! Storage: the pool, embedded migrations for both backends, and blocking repository
//! functions that return `diesel::QueryResult`. Nothing here knows about HTTP.

pub mod access_grants;
pub mod access_token_expiry;
pub mod admin_sessions;
pub mod admin_sign_ins;
pub mod audit;
pub mod audit_stream;
pub mod changes;
pub mod connect_sessions;
pub mod connections;
pub mod instances;
pub mod meta;
mod pool;
pub mod refresh_attempts;
pub mod resealing;
pub mod schema;
pub mod services;
pub mod webhook_deliveries;
pub mod webhooks;

pub use pool::{DbConnection, DbPool, connect, has_pending_migrations, ping, run_migrations};

/// `false` when an insert failed only because the row exists already (a taken name).
pub fn inserted(result: diesel::QueryResult<()>) -> diesel::QueryResult<bool> {
    match result {
        Err(e) if is_unique_violation(&e) => Ok(false),
        other => other.map(|()| true),
    }
}

/// Whether an insert failed only because the row exists already.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
