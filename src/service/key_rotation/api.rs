//! The rotation started by a serving process (`POST /api/v1/keys/rotate`): to the key it seals
//! under, from the one beside it, in the background; its outcome is in the audit log.

use std::time::Duration;

use super::{RotationOptions, Running};
use crate::service::{Context, ServiceError};

/// What a started rotation answers: the key ids, never a key.
#[derive(Debug)]
pub struct Started {
    pub from: String,
    pub to: String,
    pub resumed: bool,
}

pub async fn start(ctx: &Context) -> Result<Started, ServiceError> {
    let keys = ctx.master_keys.clone();
    if keys.len() < 2 {
        return Err(ServiceError::Conflict(
            "this process has one master key: configure the new key as security.master_key_file \
             and the current one as security.previous_master_key_file on every process first"
                .to_owned(),
        ));
    }
    let options = RotationOptions {
        batch_size: 200,
        pause: Duration::ZERO,
    };
    let begun = super::begin(ctx.pool.clone(), &keys, &keys[0], options)
        .await
        .map_err(|e| match e.downcast::<Running>() {
            Ok(running) => ServiceError::Conflict(running.to_string()),
            Err(e) if e.downcast_ref::<diesel::result::Error>().is_some() => e.into(),
            Err(e) => ServiceError::Conflict(format!("{e:#}")),
        })?;
    let started = Started {
        from: begun.resealer.old.key_id().to_string(),
        to: begun.new_id.to_string(),
        resumed: begun.resumed,
    };
    let (pool, audit) = (ctx.pool.clone(), ctx.audit.clone());
    tokio::spawn(async move {
        if let Err(e) = super::run(pool, &audit, begun).await {
            tracing::error!(error = format!("{e:#}"), "the master-key rotation stopped");
        }
    });
    Ok(started)
}
