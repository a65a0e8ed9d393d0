//! GitLab's authorization-code flow through the openidconnect crate, over the instance's own
//! HTTP client: the authorize URL (PKCE S256, state, nonce, explicit scopes), the code exchange
//! with ID-token verification, and revocation (RFC 7009).

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType, CoreUserInfoClaims,
};
use openidconnect::{
    AdditionalClaims, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, EmptyAdditionalProviderMetadata, EndUserNickname, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, ExtraTokenFields, IdTokenFields, IssuerUrl, JsonWebKeySetUrl,
    LocalizedClaim, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, ResponseTypes, RevocationUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse, TokenUrl, UserInfoUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::Discovery;
use crate::domain::{ScopeSet, TokenLife};

/// GitLab answers 2-hour tokens, and some versions omit `expires_in` (GITLAB.md).
const DEFAULT_LIFETIME: TimeDelta = TimeDelta::hours(2);

/// GitLab's token response carries `created_at` (unix seconds) beside the standard fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct GitLabTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) created_at: Option<i64>,
}

impl ExtraTokenFields for GitLabTokenFields {}

pub(super) type GitLabTokenResponse<AC = EmptyAdditionalClaims> = StandardTokenResponse<
    IdTokenFields<
        AC,
        GitLabTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type GitLabClient<AC = EmptyAdditionalClaims> = Client<
    AC,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    GitLabTokenResponse<AC>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The OAuth application an administrator registered in one GitLab instance.
pub struct GitLabApp<'a> {
    pub discovery: &'a Discovery,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub redirect_url: &'a str,
}

/// A redeemed authorization code whose ID token was verified, and who it names.
pub(super) struct VerifiedCode<AC: AdditionalClaims> {
    pub(super) response: GitLabTokenResponse<AC>,
    pub(super) user_id: String,
    pub(super) username: String,
    /// The ID token's claims beyond the standard ones.
    pub(super) extra: AC,
}

/// Where to send the browser, and what the callback must match.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: SecretString,
    pub nonce: String,
    pub pkce_verifier: SecretString,
}

/// A fresh grant: tokens, their expiry, the scopes GitLab granted, and who granted them.
pub struct Grant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub life: TokenLife,
    /// As GitLab spelled them; the requested ones when GitLab did not say.
    pub scopes: Vec<String>,
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    /// The code (or refresh token) is expired, used, revoked, or not this client's.
    #[error("GitLab refused the grant (invalid_grant)")]
    InvalidGrant,
    #[error("GitLab refused the request ({0})")]
    Refused(String),
    #[error("GitLab could not be reached or did not answer usably: {0}")]
    Unavailable(String),
    #[error("GitLab's ID token was refused: {0}")]
    IdToken(String),
    #[error("the instance's OAuth settings are unusable: {0}")]
    Configuration(String),
}

impl GitLabApp<'_> {
    fn client(&self, keys: CoreJsonWebKeySet) -> Result<GitLabClient, GitLabError> {
        self.client_reading(keys)
    }

    /// The client, reading the ID token's claims beyond the standard ones as `AC`.
    pub(super) fn client_reading<AC: AdditionalClaims>(
        &self,
        keys: CoreJsonWebKeySet,
    ) -> Result<GitLabClient<AC>, GitLabError> {
        let d = self.discovery;
        let url_error = |e: url::ParseError| GitLabError::Configuration(e.to_string());
        // GitLab signs ID tokens with RS256 only; accepting nothing else leaves no room for
        // algorithm confusion.
        let metadata = CoreProviderMetadata::new(
            IssuerUrl::new(d.issuer.clone()).map_err(url_error)?,
            AuthUrl::new(d.authorization_endpoint.clone()).map_err(url_error)?,
            JsonWebKeySetUrl::new(d.jwks_uri.clone()).map_err(url_error)?,
            vec![ResponseTypes::new(vec![CoreResponseType::Code])],
            vec![CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            EmptyAdditionalProviderMetadata {},
        )
        .set_token_endpoint(Some(
            TokenUrl::new(d.token_endpoint.clone()).map_err(url_error)?,
        ))
        .set_userinfo_endpoint(
            d.userinfo_endpoint
                .clone()
                .map(UserInfoUrl::new)
                .transpose()
                .map_err(url_error)?,
        )
        .set_jwks(keys);
        Ok(GitLabClient::<AC>::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.to_owned()),
            Some(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect_url.to_owned()).map_err(url_error)?))
    }

    /// The authorize URL with PKCE S256, a 256-bit state, a nonce and the explicit scope list
    /// (GitLab defaults to `api` when none is sent).
    pub fn authorization_request(
        &self,
        scopes: &ScopeSet,
    ) -> Result<AuthorizationRequest, GitLabError> {
        self.authorization_request_marked(scopes, "")
    }

    /// `authorization_request` with a state that starts with `state_prefix`, so that the
    /// callback can tell which flow it belongs to.
    pub fn authorization_request_marked(
        &self,
        scopes: &ScopeSet,
        state_prefix: &str,
    ) -> Result<AuthorizationRequest, GitLabError> {
        let client = self.client(CoreJsonWebKeySet::new(Vec::new()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let prefix = state_prefix.to_owned();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || {
                let random = CsrfToken::new_random_len(32);
                CsrfToken::new(format!("{prefix}{}", random.secret()))
            },
            Nonce::new_random,
        );
        // openidconnect sends `openid` itself.
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(AuthorizationRequest {
            url,
            state: SecretString::from(state.into_secret()),
            nonce: nonce.secret().clone(),
            pkce_verifier: SecretString::from(verifier.into_secret()),
        })
    }

    /// Exchanges the code with the PKCE verifier and verifies the ID token against the
    /// instance's JWKS: signature, issuer (sub-path included), audience, expiry, nonce.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
        requested: &ScopeSet,
    ) -> Result<Grant, GitLabError> {
        let sent_at = Utc::now();
        let VerifiedCode {
            response,
            user_id,
            username,
            ..
        } = self
            .redeem_code::<EmptyAdditionalClaims>(http, code, pkce_verifier, nonce)
            .await?;
        let refresh_token = response
            .refresh_token()
            .ok_or_else(|| GitLabError::Refused("GitLab issued no refresh token".into()))?;
        Ok(Grant {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: SecretString::from(refresh_token.secret().clone()),
            life: token_life(
                sent_at,
                response.expires_in(),
                response.extra_fields().extra_fields().created_at,
            ),
            scopes: response.scopes().map_or_else(
                || requested.iter().map(str::to_owned).collect(),
                |granted| granted.iter().map(|s| s.to_string()).collect(),
            ),
            user_id,
            username,
        })
    }

    /// Exchanges the code (PKCE), verifies the ID token (signature from the JWKS, issuer,
    /// audience, expiry, nonce) and learns who signed in: `preferred_username`, else
    /// `nickname`, else userinfo (both claims are optional in OpenID Connect). `AC` reads the
    /// ID token's claims beyond the standard ones.
    pub(super) async fn redeem_code<AC: AdditionalClaims + Clone>(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<VerifiedCode<AC>, GitLabError> {
        let jwks_url = JsonWebKeySetUrl::new(self.discovery.jwks_uri.clone())
            .map_err(|e| GitLabError::Configuration(e.to_string()))?;
        let keys = CoreJsonWebKeySet::fetch_async(&jwks_url, http)
            .await
            .map_err(|e| {
                GitLabError::Unavailable(format!("fetching GitLab's signing keys failed: {e}"))
            })?;
        let client = self.client_reading::<AC>(keys)?;
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
            GitLabError::IdToken("GitLab sent no ID token although openid was granted".into())
        })?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
            .map_err(|e| GitLabError::IdToken(e.to_string()))?;
        let named = claims.preferred_username().map(|u| u.as_str().to_owned());
        let username = match named.or_else(|| nickname(claims.nickname())) {
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
                            "neither the ID token nor userinfo names the user (preferred_username)"
                                .into(),
                        )
                    })?
            }
        };
        Ok(VerifiedCode {
            user_id: claims.subject().as_str().to_owned(),
            username,
            extra: claims.additional_claims().clone(),
            response,
        })
    }

    /// Asks GitLab whether it knows this client ID and secret, without any person: a token
    /// request with a code GitLab never issued. `invalid_grant` means the client authenticated
    /// and only the code was refused; `invalid_client` comes back as `Refused`.
    pub async fn check_client(&self, http: &reqwest::Client) -> Result<(), GitLabError> {
        let client = self.client(CoreJsonWebKeySet::new(Vec::new()))?;
        let made_up = CsrfToken::new_random_len(32).into_secret();
        let answer = client
            .exchange_code(AuthorizationCode::new(format!(
                "labgate-client-check-{made_up}"
            )))
            .map_err(|e| GitLabError::Configuration(e.to_string()))?
            .request_async(http)
            .await;
        match answer.map_err(token_error) {
            Err(GitLabError::InvalidGrant) => Ok(()),
            Ok(_) => Err(GitLabError::Refused(
                "GitLab accepted a code it never issued".into(),
            )),
            Err(other) => Err(other),
        }
    }

    /// Revokes a refresh token, which ends its access token too (RFC 7009).
    pub async fn revoke(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> Result<(), GitLabError> {
        let endpoint = self.discovery.revocation_endpoint.clone().ok_or_else(|| {
            GitLabError::Configuration("GitLab's discovery lists no revocation_endpoint".into())
        })?;
        let endpoint =
            RevocationUrl::new(endpoint).map_err(|e| GitLabError::Configuration(e.to_string()))?;
        let client = self
            .client(CoreJsonWebKeySet::new(Vec::new()))?
            .set_revocation_url(endpoint);
        let token =
            CoreRevocableToken::from(RefreshToken::new(refresh_token.expose_secret().to_owned()));
        client
            .revoke_token(token)
            .map_err(|e| GitLabError::Configuration(e.to_string()))?
            .request_async(http)
            .await
            .map_err(token_error)
    }
}

/// A token's life, counted from when the request left (`sent_at`): GitLab created the token
/// after that, so the expiry labgate records is never later than GitLab's. The lifetime is
/// `expires_in`, or two hours where GitLab omitted it; GitLab's `created_at` then counts only
/// if it is earlier (its clock is not labgate's).
pub(super) fn token_life(
    sent_at: DateTime<Utc>,
    expires_in: Option<std::time::Duration>,
    created_at: Option<i64>,
) -> TokenLife {
    let (issued_at, lifetime) = match expires_in {
        Some(lifetime) => (
            sent_at,
            TimeDelta::from_std(lifetime).unwrap_or(DEFAULT_LIFETIME),
        ),
        None => {
            let created = created_at.and_then(|at| DateTime::from_timestamp(at, 0));
            (
                created.map_or(sent_at, |c| c.min(sent_at)),
                DEFAULT_LIFETIME,
            )
        }
    };
    TokenLife {
        issued_at: issued_at.naive_utc(),
        expires_at: (issued_at + lifetime).naive_utc(),
    }
}

/// Classifies a failed token-endpoint call. A response body is never quoted: it may hold tokens.
pub(super) fn token_error<RE, T>(
    error: RequestTokenError<RE, StandardErrorResponse<T>>,
) -> GitLabError
where
    RE: std::error::Error + 'static,
    T: openidconnect::ErrorResponseType + std::fmt::Display + AsRef<str>,
{
    match error {
        RequestTokenError::ServerResponse(response)
            if response.error().as_ref() == "invalid_grant" =>
        {
            GitLabError::InvalidGrant
        }
        RequestTokenError::ServerResponse(response) => {
            GitLabError::Refused(response.error().to_string())
        }
        RequestTokenError::Request(e) => GitLabError::Unavailable(e.to_string()),
        RequestTokenError::Parse(..) => {
            GitLabError::Unavailable("the answer is not an OAuth token response".into())
        }
        RequestTokenError::Other(message) => GitLabError::Unavailable(message),
    }
}

/// Client credentials in HTTP Basic are form-encoded first (RFC 6749 §2.3.1).
pub(super) fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub(super) fn nickname(claim: Option<&LocalizedClaim<EndUserNickname>>) -> Option<String> {
    claim
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned())
}
