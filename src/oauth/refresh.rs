//! Refreshing a grant at GitLab, classified for a caller that must never lose it: GitLab revokes
//! the old pair when the refresh commits (no grace), so an answer that may have been lost is
//! `Unknown`, never a plain failure. And asking whether an access token still works.

use chrono::Utc;
use openidconnect::core::CoreErrorResponseType;
use openidconnect::{OAuth2TokenResponse, StandardErrorResponse};
use secrecy::{ExposeSecret, SecretString};

use super::gitlab::{GitLabApp, GitLabTokenResponse, form_encode, token_life};
use crate::domain::TokenLife;

/// A refresh's outcome, with GitLab's `X-Request-Id` when it answered one (for its logs).
pub struct RefreshReply {
    pub outcome: RefreshOutcome,
    pub request_id: Option<String>,
}

/// How a refresh ended, as far as labgate can know.
pub enum RefreshOutcome {
    Refreshed {
        access_token: SecretString,
        refresh_token: SecretString,
        life: TokenLife,
        /// GitLab's id of a rotated access token; OAuth tokens have none.
        token_id: Option<String>,
    },
    /// The refresh token is dead: used, revoked, or its application deleted.
    InvalidGrant,
    /// 429: GitLab refused to look at the request; nothing rotated.
    Throttled {
        retry_after: Option<std::time::Duration>,
    },
    /// GitLab answered a definite OAuth error other than invalid_grant; nothing rotated.
    Refused(String),
    /// The request never reached GitLab (no connection); nothing rotated.
    NotSent(String),
    /// GitLab may or may not have rotated the pair: a timeout, a broken or unreadable answer, a 5xx.
    Unknown(String),
}

impl GitLabApp<'_> {
    /// One refresh-token grant. GitLab revokes the old pair when it commits, so the caller must
    /// treat `Unknown` as "the old pair may be dead" and never simply try again.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> RefreshReply {
        let mut request_id = None;
        let outcome = self
            .refresh_outcome(http, refresh_token, &mut request_id)
            .await;
        RefreshReply {
            outcome,
            request_id,
        }
    }

    async fn refresh_outcome(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
        request_id: &mut Option<String>,
    ) -> RefreshOutcome {
        let sent_at = Utc::now();
        let sent = http
            .post(&self.discovery.token_endpoint)
            .basic_auth(
                form_encode(self.client_id),
                Some(form_encode(self.client_secret.expose_secret())),
            )
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("redirect_uri", self.redirect_url),
            ])
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_connect() => return RefreshOutcome::NotSent(e.to_string()),
            Err(e) => return RefreshOutcome::Unknown(e.to_string()),
        };
        let status = response.status();
        *request_id = self::request_id(response.headers());
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return RefreshOutcome::Unknown(format!("the answer broke off ({e})")),
        };
        match status.as_u16() {
            200 => match serde_json::from_slice::<GitLabTokenResponse>(&body) {
                Ok(tokens) => match tokens.refresh_token() {
                    Some(refresh) => RefreshOutcome::Refreshed {
                        access_token: SecretString::from(tokens.access_token().secret().clone()),
                        refresh_token: SecretString::from(refresh.secret().clone()),
                        life: token_life(
                            sent_at,
                            tokens.expires_in(),
                            tokens.extra_fields().extra_fields().created_at,
                        ),
                        token_id: None,
                    },
                    None => RefreshOutcome::Unknown("the answer holds no refresh token".into()),
                },
                Err(_) => RefreshOutcome::Unknown("the answer is not a token response".into()),
            },
            429 => RefreshOutcome::Throttled { retry_after },
            400 | 401 | 403 => match serde_json::from_slice::<
                StandardErrorResponse<CoreErrorResponseType>,
            >(&body)
            {
                Ok(error) if error.error().as_ref() == "invalid_grant" => {
                    RefreshOutcome::InvalidGrant
                }
                Ok(error) => RefreshOutcome::Refused(error.error().to_string()),
                Err(_) => RefreshOutcome::Unknown(format!("HTTP {status} without an OAuth error")),
            },
            _ => RefreshOutcome::Unknown(format!("HTTP {status}")),
        }
    }

    /// Whether GitLab still honours an access token (`GET /oauth/token/info`): the way to learn,
    /// after an unknown outcome, whether a refresh rotated the pair.
    pub async fn access_token_alive(
        &self,
        http: &reqwest::Client,
        access_token: &SecretString,
    ) -> Result<bool, String> {
        let url = format!("{}/oauth/token/info", self.discovery.issuer);
        let response = http
            .get(url)
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => Ok(true),
            401 => Ok(false),
            other => Err(format!("token info answered HTTP {other}")),
        }
    }
}

/// GitLab's `X-Request-Id`, to find a request in GitLab's logs.
pub(super) fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_owned)
}

/// A `Retry-After` in seconds.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(std::time::Duration::from_secs)
}
