//! Who signed in at GitLab, for the admin pages: the code exchanged as in the connect flow, the
//! ID token verified the same way, and its `groups_direct` read beside `preferred_username`.

use openidconnect::{AdditionalClaims, OAuth2TokenResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::gitlab::{GitLabApp, GitLabError, VerifiedCode};

/// GitLab's ID-token claims beyond the standard ones that labgate reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct GitLabClaims {
    /// Full paths of the groups the user is a direct member of.
    #[serde(default)]
    groups_direct: Vec<String>,
}

impl AdditionalClaims for GitLabClaims {}

/// A GitLab user as their verified ID token names them.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub username: String,
    pub groups_direct: Vec<String>,
}

impl GitLabApp<'_> {
    /// Redeems the code as the connect flow does (`redeem_code`) and reads who signed in. The grant is only for this: its refresh
    /// token is revoked at once, best effort.
    pub async fn identify(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<Identity, GitLabError> {
        let VerifiedCode {
            response,
            user_id,
            username,
            extra,
        } = self
            .redeem_code::<GitLabClaims>(http, code, pkce_verifier, nonce)
            .await?;
        let identity = Identity {
            user_id,
            username,
            groups_direct: extra.groups_direct,
        };
        if let Some(refresh) = response.refresh_token() {
            let refresh = SecretString::from(refresh.secret().clone());
            if let Err(e) = self.revoke(http, &refresh).await {
                tracing::warn!(error.cause = %e, "revoking the admin sign-in's grant failed");
            }
        }
        Ok(identity)
    }
}
