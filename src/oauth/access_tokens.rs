//! GitLab's access tokens (personal, project and group) asked about themselves: what a token is
//! (`/personal_access_tokens/self`), whose it is (`/user`), rotating it (`…/self/rotate`, which
//! revokes the old token at once) and revoking it. A rotation is classified like an OAuth
//! refresh: an answer that may have been lost is `Unknown`, never a plain failure.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::projects::body_within;
use super::refresh::{RefreshOutcome, RefreshReply, request_id, retry_after};
use crate::domain::TokenLife;

/// GitLab's description of a token is a few hundred bytes.
const ANSWER_LIMIT: usize = 64 * 1024;
/// GitLab refuses expiry dates more than a year ahead (its default maximum lifetime).
const LONGEST_LIFETIME_DAYS: i64 = 365;

/// What GitLab says about an access token.
#[derive(Debug, Clone)]
pub struct AccessTokenInfo {
    /// GitLab's id of the token (it changes with each rotation).
    pub id: String,
    /// The id of the user (a person, or a project's or group's bot) the token acts as.
    pub user_id: String,
    pub scopes: Vec<String>,
    /// From its creation to 00:00 UTC on its expiry date, when GitLab stops accepting it.
    pub life: TokenLife,
}

impl AccessTokenInfo {
    /// Whether the token may rotate itself (`api` or `self_rotate`).
    pub fn can_rotate(&self) -> bool {
        self.scopes.iter().any(|s| s == "api" || s == "self_rotate")
    }
}

/// The person (or bot user) a token acts as.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub user_id: String,
    pub username: String,
}

/// GitLab's answer about a token.
pub enum Described {
    Live(AccessTokenInfo),
    /// Unknown, revoked or expired (401).
    Rejected,
    /// A token GitLab knows, but not an access token: an OAuth token (400).
    NotAnAccessToken,
}

#[derive(Deserialize)]
struct SelfAnswer {
    id: serde_json::Value,
    user_id: serde_json::Value,
    #[serde(default)]
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<NaiveDate>,
    /// Present only in a rotation's answer: the new token.
    token: Option<String>,
}

impl SelfAnswer {
    fn info(&self) -> AccessTokenInfo {
        AccessTokenInfo {
            id: id_text(&self.id),
            user_id: id_text(&self.user_id),
            scopes: self.scopes.clone(),
            life: TokenLife {
                issued_at: self.created_at.naive_utc(),
                expires_at: self.expires_at.map_or(NaiveDateTime::MAX, at_midnight),
            },
        }
    }
}

#[derive(Deserialize)]
struct UserAnswer {
    id: serde_json::Value,
    username: String,
}

/// An id GitLab sends as a number (or, from a proxy, as text).
fn id_text(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(id) => id.clone(),
        other => other.to_string(),
    }
}

fn at_midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

fn api_url(base_url: &str, path: &str) -> String {
    format!("{}/api/v4/{path}", base_url.trim_end_matches('/'))
}

/// Sends `request` with the token. The error is a sentence for the caller; the cause (which
/// names GitLab's internal address) goes to the log only.
async fn ask(
    request: reqwest::RequestBuilder,
    token: &SecretString,
) -> Result<reqwest::Response, String> {
    request
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error.cause = %e, "a request to GitLab with an access token failed");
            "GitLab could not be reached; try again".to_owned()
        })
}

/// `GET /personal_access_tokens/self`.
pub async fn describe_access_token(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Result<Described, String> {
    let response = ask(
        http.get(api_url(base_url, "personal_access_tokens/self")),
        token,
    )
    .await?;
    match response.status().as_u16() {
        200 => body_within(response, ANSWER_LIMIT)
            .await
            .and_then(|body| serde_json::from_slice::<SelfAnswer>(&body).ok())
            .map(|answer| Described::Live(answer.info()))
            .ok_or_else(|| "GitLab's answer about the access token is not understood".into()),
        401 => Ok(Described::Rejected),
        400 => Ok(Described::NotAnAccessToken),
        status => Err(format!(
            "GitLab answered HTTP {status} about the access token"
        )),
    }
}

/// What `GET /user` says of the token's user.
pub enum OwnerAnswer {
    Named(TokenOwner),
    /// The token may not read it (none of `read_user`, `read_api`, `api`: a git-only token).
    NotReadable,
    /// Unknown, revoked or expired (401).
    Rejected,
}

/// `GET /user`: whom the token acts as.
pub async fn access_token_owner(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Result<OwnerAnswer, String> {
    let response = ask(http.get(api_url(base_url, "user")), token).await?;
    match response.status().as_u16() {
        200 => body_within(response, ANSWER_LIMIT)
            .await
            .and_then(|body| serde_json::from_slice::<UserAnswer>(&body).ok())
            .map(|user| {
                OwnerAnswer::Named(TokenOwner {
                    user_id: id_text(&user.id),
                    username: user.username,
                })
            })
            .ok_or_else(|| "GitLab's answer about the token's user is not understood".into()),
        401 => Ok(OwnerAnswer::Rejected),
        403 => Ok(OwnerAnswer::NotReadable),
        status => Err(format!(
            "GitLab answered HTTP {status} about the token's user"
        )),
    }
}

/// The expiry date a rotation asks for: as long from today as the token's own lifetime, at
/// least a day and at most a year.
pub fn next_expiry(life: &TokenLife, today: NaiveDate) -> NaiveDate {
    let days = (life.expires_at.date() - life.issued_at.date())
        .num_days()
        .clamp(1, LONGEST_LIFETIME_DAYS);
    today + chrono::Days::new(days as u64)
}

/// `POST /personal_access_tokens/self/rotate`: GitLab revokes `token` at once and answers its
/// successor, so the caller must treat `Unknown` as "the old token may be dead" and never simply
/// try again. `Refreshed` carries the new token as its access token and an empty refresh token.
pub async fn rotate_access_token(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
    expires_on: NaiveDate,
) -> RefreshReply {
    let sent = http
        .post(api_url(base_url, "personal_access_tokens/self/rotate"))
        .bearer_auth(token.expose_secret())
        .form(&[("expires_at", expires_on.format("%Y-%m-%d").to_string())])
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_connect() => {
            return reply(RefreshOutcome::NotSent(e.to_string()), None);
        }
        Err(e) => return reply(RefreshOutcome::Unknown(e.to_string()), None),
    };
    let (status, id, wait) = (
        response.status().as_u16(),
        request_id(response.headers()),
        retry_after(response.headers()),
    );
    let Some(body) = body_within(response, ANSWER_LIMIT).await else {
        return reply(RefreshOutcome::Unknown("the answer broke off".into()), id);
    };
    let outcome = match status {
        200 => match serde_json::from_slice::<SelfAnswer>(&body) {
            Ok(answer) => match &answer.token {
                Some(new) => {
                    let info = answer.info();
                    RefreshOutcome::Refreshed {
                        access_token: SecretString::from(new.clone()),
                        refresh_token: SecretString::from(String::new()),
                        life: info.life,
                        token_id: Some(info.id),
                    }
                }
                None => RefreshOutcome::Unknown("the answer holds no token".into()),
            },
            Err(_) => RefreshOutcome::Unknown("the answer is not a rotated token".into()),
        },
        // Revoked, expired or already rotated: the token is dead, as a used refresh token is.
        401 => RefreshOutcome::InvalidGrant,
        403 => RefreshOutcome::Refused(CANNOT_ROTATE.into()),
        400 => RefreshOutcome::Refused(format!(
            "GitLab refused the expiry date {expires_on} (HTTP 400)"
        )),
        429 => RefreshOutcome::Throttled { retry_after: wait },
        _ => RefreshOutcome::Unknown(format!("HTTP {status}")),
    };
    reply(outcome, id)
}

/// A rotation GitLab refused for the token's scopes (403).
pub const CANNOT_ROTATE: &str = "insufficient_scope";

fn reply(outcome: RefreshOutcome, request_id: Option<String>) -> RefreshReply {
    RefreshReply {
        outcome,
        request_id,
    }
}

/// `DELETE /personal_access_tokens/self`. A token GitLab already refuses counts as revoked.
pub async fn revoke_access_token(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Result<(), String> {
    let response = ask(
        http.delete(api_url(base_url, "personal_access_tokens/self")),
        token,
    )
    .await?;
    match response.status().as_u16() {
        200..=299 | 401 => Ok(()),
        status => Err(format!("GitLab answered HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(created: &str, expires: &str) -> TokenLife {
        TokenLife {
            issued_at: at_midnight(created.parse().unwrap()),
            expires_at: at_midnight(expires.parse().unwrap()),
        }
    }

    #[test]
    fn a_rotation_asks_for_the_same_length_from_today_within_a_day_and_a_year() {
        let today: NaiveDate = "2026-12-04".parse().unwrap();
        let next = |created, expires| next_expiry(&life(created, expires), today).to_string();
        assert_eq!(next("2026-01-01", "2026-12-31"), "2027-12-03");
        assert_eq!(next("2026-11-27", "2026-12-07"), "2026-12-14");
        assert_eq!(next("2026-12-04", "2026-12-04"), "2026-12-05");
        assert_eq!(next("2024-01-01", "2026-12-31"), "2027-12-04");
    }

    #[test]
    fn gitlab_stops_accepting_a_token_at_midnight_starting_its_expiry_date() {
        let answer: SelfAnswer = serde_json::from_str(
            r#"{"id":17,"name":"bot","revoked":false,"created_at":"2026-11-01T08:30:00.000Z",
                "scopes":["api"],"user_id":4,"active":true,"expires_at":"2026-12-31"}"#,
        )
        .unwrap();
        let info = answer.info();
        assert_eq!(info.id, "17");
        assert_eq!(info.user_id, "4");
        assert_eq!(info.life.expires_at.to_string(), "2026-12-31 00:00:00");
        assert_eq!(info.life.issued_at.to_string(), "2026-11-01 08:30:00");
        assert!(info.can_rotate());
    }
}
