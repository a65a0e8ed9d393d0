//! Signing in to the admin pages. The admin token buys a session: the browser keeps a random
//! session token in a cookie, the database only its hash. A form's CSRF token is derived from
//! the session token, so it is bound to that session and never stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::audit::{ADMIN_TOKEN, AuditEvent};
use super::{Context, ServiceError};
use crate::crypto::{TokenHash, generate_token};
use crate::db::{self, admin_sessions::AdminSessionRow};

/// How long a session lasts from sign-in; there is no sliding renewal.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);

/// A live admin session, found by the token its cookie carries.
pub struct AdminSession {
    token_hash: String,
    csrf_token: String,
    pub expires_at: NaiveDateTime,
    /// Who acts in this session, as audit events name them: `admin:token`, or
    /// `admin:{username}` when it was opened by signing in with GitLab.
    pub actor: String,
}

impl AdminSession {
    fn new(token: &str, expires_at: NaiveDateTime, actor: String) -> Self {
        Self {
            token_hash: TokenHash::of(token).to_hex(),
            csrf_token: csrf_token_for(token),
            expires_at,
            actor,
        }
    }

    /// The token every form of this session carries.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Compares in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        presented.len() == self.csrf_token.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf_token.as_bytes()))
    }
}

/// Checks the admin token and opens a session; returns the session token for the cookie.
pub async fn sign_in(
    ctx: &Context,
    admin_token: &str,
) -> Result<(SecretString, AdminSession), ServiceError> {
    if !ctx.admin_token.matches(admin_token.trim()) {
        tracing::warn!("admin sign-in refused: not the admin token");
        let event = AuditEvent::new("admin_sign_in_refused", "unknown")
            .detail("the token given is not the admin token");
        ctx.audit.record(event).await;
        return Err(ServiceError::Unauthenticated(
            "this is not the admin token".to_owned(),
        ));
    }
    let opened = open(ctx, ADMIN_TOKEN.to_owned()).await?;
    tracing::info!("admin signed in");
    ctx.audit
        .record(AuditEvent::new("admin_signed_in", ADMIN_TOKEN))
        .await;
    Ok(opened)
}

/// Opens a session for `actor`, who has proven who they are; returns its token for the cookie.
pub(super) async fn open(
    ctx: &Context,
    actor: String,
) -> Result<(SecretString, AdminSession), ServiceError> {
    let token = generate_token("lgses_");
    let now = Utc::now().naive_utc();
    let session = AdminSession::new(token.expose_secret(), now + SESSION_LIFETIME, actor);
    let row = AdminSessionRow {
        token_hash: session.token_hash.clone(),
        created_at: now,
        expires_at: session.expires_at,
        actor: session.actor.clone(),
    };
    ctx.db_write(move |conn| {
        db::admin_sessions::delete_expired(conn, now)?;
        db::admin_sessions::insert(conn, &row)
    })
    .await?;
    Ok((token, session))
}

/// The live session a cookie's token names, if any.
pub async fn find(ctx: &Context, token: &str) -> Result<Option<AdminSession>, ServiceError> {
    let hash = TokenHash::of(token).to_hex();
    let now = Utc::now().naive_utc();
    let row = ctx
        .db_read(move |conn| db::admin_sessions::find_live(conn, &hash, now))
        .await?;
    Ok(row.map(|row| AdminSession::new(token, row.expires_at, row.actor)))
}

/// Ends the session: its cookie signs no one in afterwards.
pub async fn sign_out(ctx: &Context, session: &AdminSession) -> Result<(), ServiceError> {
    let hash = session.token_hash.clone();
    ctx.db_write(move |conn| db::admin_sessions::delete(conn, &hash))
        .await?;
    tracing::info!("admin signed out");
    Ok(())
}

fn csrf_token_for(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"labgate admin csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_differ_from_the_stored_hash() {
        let a = AdminSession::new("lgses_a", Utc::now().naive_utc(), ADMIN_TOKEN.into());
        let b = AdminSession::new("lgses_b", Utc::now().naive_utc(), ADMIN_TOKEN.into());
        assert!(a.csrf_matches(a.csrf_token()));
        assert!(!a.csrf_matches(b.csrf_token()));
        assert!(!a.csrf_matches(""));
        assert_ne!(a.csrf_token(), a.token_hash);
        assert!(!a.csrf_token().contains("lgses_a"));
    }
}
