//! What renewing a connection's token means at GitLab, by the connection's kind: an OAuth
//! grant is refreshed with its refresh token; an access token rotates itself. Both revoke the
//! old token at once, so both are handled alike around here (lease, mark, unknown outcomes).

use chrono::Utc;
use secrecy::SecretString;

use crate::db::{connections::ConnectionRow, instances::InstanceRow};
use crate::domain::{ConnectionKind, TokenLife};
use crate::oauth::{
    Described, RefreshReply, describe_access_token, next_expiry, rotate_access_token,
};
use crate::service::registration::Registration;

/// A connection's tokens and where to renew them.
pub(super) struct Renewable<'a> {
    pub(super) row: &'a ConnectionRow,
    pub(super) instance: &'a InstanceRow,
    pub(super) registration: &'a Registration,
    pub(super) http: &'a reqwest::Client,
    pub(super) access_token: &'a SecretString,
    /// Empty for an access token, which has none.
    pub(super) refresh_token: &'a SecretString,
}

impl Renewable<'_> {
    /// One renewal: a refresh-token grant, or a self-rotation asking for a new expiry as far
    /// ahead as the token's own lifetime.
    pub(super) async fn renew(&self) -> RefreshReply {
        match self.row.kind {
            ConnectionKind::OAuth => {
                self.registration
                    .app()
                    .refresh(self.http, self.refresh_token)
                    .await
            }
            ConnectionKind::AccessToken => {
                let life = TokenLife {
                    issued_at: self.row.token_issued_at,
                    expires_at: self.row.expires_at,
                };
                let expires_on = next_expiry(&life, Utc::now().date_naive());
                rotate_access_token(
                    self.http,
                    &self.instance.base_url,
                    self.access_token,
                    expires_on,
                )
                .await
            }
        }
    }

    /// Whether GitLab still accepts the access token held: after an unknown outcome, whether
    /// the renewal happened. `/oauth/token/info` for OAuth, `/personal_access_tokens/self` for
    /// an access token.
    pub(super) async fn still_accepted(&self) -> Result<bool, String> {
        match self.row.kind {
            ConnectionKind::OAuth => {
                self.registration
                    .app()
                    .access_token_alive(self.http, self.access_token)
                    .await
            }
            ConnectionKind::AccessToken => {
                describe_access_token(self.http, &self.instance.base_url, self.access_token)
                    .await
                    .map(|described| matches!(described, Described::Live(_)))
            }
        }
    }
}
