//! Who signed in at GitLab, for the admin pages: the code exchanged as in the connect flow, the
//! ID token verified the same way, and its `groups_direct` read beside `preferred_username`.

use openidconnect::core::{CoreJsonWebKeySet, CoreUserInfoClaims};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, JsonWebKeySetUrl, Nonce, OAuth2TokenResponse,
    PkceCodeVerifier, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::gitlab::{GitLabApp, GitLabError, nickname, token_error};

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
    /// Exchanges the code (PKCE), verifies the ID token (signature from the JWKS, issuer,
    /// audience, expiry, nonce) and reads who signed in. The grant is only for this: its refresh
    /// token is revoked at once, best effort.
    pub async fn identify(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<Identity, GitLabError> {
        let jwks_url = JsonWebKeySetUrl::new(self.discovery.jwks_uri.clone())
            .map_err(|e| GitLabError::Configuration(e.to_string()))?;
        let keys = CoreJsonWebKeySet::fetch_async(&jwks_url, http)
            .await
            .map_err(|e| {
                GitLabError::Unavailable(format!("fetching GitLab's signing keys failed: {e}"))
            })?;
        let client = self.client_reading::<GitLabClaims>(keys)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| GitLabError::Configuration(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(http)
            .await
            .map_err(token_error)?;
        let id_token = response.id_token().ok_or_else(|| {
            GitLabError::IdToken("GitLab sent no ID token although openid was asked for".into())
        })?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
            .map_err(|e| GitLabError::IdToken(e.to_string()))?;
        let named = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .or_else(|| nickname(claims.nickname()));
        let username = match named {
            Some(username) => username,
            None => {
                let userinfo: CoreUserInfoClaims = client
                    .user_info(
                        response.access_token().clone(),
                        Some(claims.subject().clone()),
                    )
                    .map_err(|e| GitLabError::Configuration(e.to_string()))?
                    .request_async(http)
                    .await
                    .map_err(|e| {
                        GitLabError::Unavailable(format!("asking GitLab's userinfo failed: {e}"))
                    })?;
                userinfo
                    .preferred_username()
                    .map(|u| u.as_str().to_owned())
                    .or_else(|| nickname(userinfo.nickname()))
                    .ok_or_else(|| {
                        GitLabError::IdToken(
                            "neither the ID token nor userinfo names the user".into(),
                        )
                    })?
            }
        };
        let identity = Identity {
            user_id: claims.subject().as_str().to_owned(),
            username,
            groups_direct: claims.additional_claims().groups_direct.clone(),
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
