//! What a handout gives: a token and what it is. A remembered token is handed out many times
//! unchanged, so its `Credentials` are built once and shared.

use std::sync::{Arc, OnceLock};

use chrono::NaiveDateTime;
use secrecy::SecretString;

use super::connection_tokens::{TokenKind, open_token};
use crate::crypto::Sealer;
use crate::db::{connections::ConnectionRow, instances::InstanceSummary};
use crate::domain::ScopeSet;

/// A token and what it is: which connection, which person, which instance.
pub struct Credentials {
    pub access_token: SecretString,
    pub expires_at: NaiveDateTime,
    pub scopes: ScopeSet,
    /// `scopes` as words. This text, the connection's id and the instance's name are shared
    /// with the audit event of every handout, not copied into it.
    pub scopes_text: Arc<str>,
    pub connection_id: Arc<str>,
    pub gitlab_user_id: String,
    pub gitlab_username: String,
    pub instance: Arc<str>,
    pub base_url: String,
    /// These credentials as the edge answers with them, kept by the first answer: a
    /// remembered token is handed out many times unchanged, and writing the answer anew each
    /// time cost as much as the handout's own checks. It holds the token, so it is wiped too.
    pub rendered: OnceLock<SecretString>,
}

impl Credentials {
    /// `row`'s token, opened, promised until `expires_at`, granting `scopes` on `instance`.
    pub fn open(
        sealer: &Sealer,
        row: &ConnectionRow,
        expires_at: NaiveDateTime,
        scopes: ScopeSet,
        instance: &InstanceSummary,
    ) -> Result<Self, anyhow::Error> {
        Ok(Self {
            access_token: open_token(sealer, row, TokenKind::Access)?,
            expires_at,
            scopes_text: scopes.to_string().into(),
            scopes,
            connection_id: row.id.as_str().into(),
            gitlab_user_id: row.gitlab_user_id.clone(),
            gitlab_username: row.gitlab_username.clone(),
            instance: instance.name.as_str().into(),
            base_url: instance.base_url.clone(),
            rendered: OnceLock::new(),
        })
    }
}
