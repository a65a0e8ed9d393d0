//! The client credentials grant: a short-lived service token for a client ID and secret.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::{Context, ServiceError};
use crate::crypto::{self, ServiceClaims, TokenHash};
use crate::db;

/// A service token, as the client credentials grant answers it.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
}

/// The client credentials grant: a service token for a valid client ID and secret.
pub async fn issue(
    ctx: &Context,
    client_id: &str,
    client_secret: &SecretString,
) -> Result<IssuedToken, ServiceError> {
    let owned = client_id.to_owned();
    let row = ctx
        .db_read(move |conn| db::services::find_by_client_id(conn, &owned))
        .await?;
    let authenticated = row.filter(|row| {
        TokenHash::from_hex(&row.secret_hash)
            .is_some_and(|hash| hash.matches(client_secret.expose_secret()))
    });
    let Some(row) = authenticated else {
        return Err(ServiceError::Unauthenticated(
            "unknown client or wrong secret".to_owned(),
        ));
    };
    let now = Utc::now().timestamp();
    let claims = ServiceClaims {
        iss: ctx.public_base().to_owned(),
        aud: crypto::AUDIENCE.to_owned(),
        sub: row.id,
        iat: now,
        exp: now + crypto::LIFETIME_SECONDS,
        jti: uuid::Uuid::new_v4().to_string(),
        identity: None,
        bound_subject: None,
    };
    Ok(IssuedToken {
        access_token: ctx.service_tokens.sign(&claims),
        expires_in: crypto::LIFETIME_SECONDS,
    })
}
