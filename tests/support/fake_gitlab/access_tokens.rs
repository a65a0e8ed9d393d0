//! GitLab access tokens (personal, project and group access tokens: all `PersonalAccessToken`
//! records, a bot user's for the latter two), as GitLab keeps and checks them:
//! - an opaque string (`glpat-` and 20 url-safe characters here: nothing may rely on the prefix)
//!   with an integer id, a name, scopes, an owner, `created_at` and `expires_at`, a date: the
//!   token is dead from 00:00 UTC that day;
//! - on `/api/v4` it is read from `PRIVATE-TOKEN`, or from `Authorization: Bearer` when that is
//!   no OAuth token (GitLab's `AuthFinders#access_token`); scopes are judged as for OAuth tokens;
//! - for git over HTTPS it is the Basic password whatever the user name (`oauth2` included);
//! - a bot sees only its project, or the projects under its group: others are not found;
//! - a rotation (`access_token_api`) revokes the token and makes its successor, of the same
//!   family; a revoked token presented to rotate revokes every live token descended from it
//!   (GitLab's `RevokeTokenFamilyService`).

use std::collections::HashMap;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{FakeGitLab, user};

/// The first id a token gets; GitLab numbers tokens of every kind in one sequence.
const FIRST_ID: u64 = 9001;

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenOwner {
    /// alice (`USER_ID`, `USERNAME`), who sees every project.
    Person,
    /// The bot user of a project or group access token (e.g. `project_17_bot_3f2a`), member of
    /// `resource` only: a project's full path, or a group's (and every project under it).
    Bot {
        id: u64,
        username: String,
        resource: String,
    },
}

impl TokenOwner {
    pub(crate) fn bot(id: u64, username: &str, resource: &str) -> Self {
        Self::Bot {
            id,
            username: username.to_owned(),
            resource: resource.to_owned(),
        }
    }

    fn user_id(&self) -> u64 {
        match self {
            Self::Person => user::USER_ID,
            Self::Bot { id, .. } => *id,
        }
    }

    /// Whether the owner may see the project at `path` (its current full path).
    pub(super) fn sees(&self, path: &str) -> bool {
        match self {
            Self::Person => true,
            Self::Bot { resource, .. } => {
                let (path, resource) = (path.to_lowercase(), resource.to_lowercase());
                path == resource || path.starts_with(&format!("{resource}/"))
            }
        }
    }
}

/// A token to issue, as a person (or an owner of a project or group) makes one in GitLab.
#[derive(Clone, Debug)]
pub(crate) struct AccessTokenSpec {
    pub name: String,
    pub scopes: Vec<String>,
    /// Any date, past ones included (an expired token).
    pub expires_at: NaiveDate,
    /// When it was made: a token may be a year old with days left.
    pub created_at: DateTime<Utc>,
    pub owner: TokenOwner,
}

impl AccessTokenSpec {
    /// alice's token named `labgate`, made now.
    pub(crate) fn new(scopes: &[&str], expires_at: NaiveDate) -> Self {
        Self {
            name: "labgate".to_owned(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at,
            created_at: Utc::now(),
            owner: TokenOwner::Person,
        }
    }

    /// alice's token made now that expires `days` days from today (UTC).
    pub(crate) fn days(scopes: &[&str], days: i64) -> Self {
        Self::new(scopes, today() + chrono::TimeDelta::days(days))
    }

    pub(crate) fn created_at(mut self, created_at: DateTime<Utc>) -> Self {
        self.created_at = created_at;
        self
    }

    pub(crate) fn owner(mut self, owner: TokenOwner) -> Self {
        self.owner = owner;
        self
    }
}

/// What GitLab knows of one token, for tests to assert on.
#[allow(dead_code)] // whichever fields a test needs
#[derive(Clone, Debug)]
pub(crate) struct AccessTokenInfo {
    pub id: u64,
    pub name: String,
    pub scopes: Vec<String>,
    pub user_id: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: NaiveDate,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// Revoked by a rotation that made its successor.
    pub rotated: bool,
    /// The id of the family's first token.
    pub family: u64,
}

/// One request to `/api/v4/personal_access_tokens/...`, as decided.
#[derive(Clone, Debug)]
pub(crate) struct AccessTokenRequest {
    pub method: String,
    /// The path under the instance, e.g. `/api/v4/personal_access_tokens/self/rotate`.
    pub path: String,
    /// The id of the access token presented, when GitLab knows it (live or not).
    pub token_id: Option<u64>,
    /// The id of the token a rotation made: set exactly when a rotation committed.
    pub new_token_id: Option<u64>,
    /// The status decided. A rotation's is decided when it commits; a client gone during
    /// `rotation_delay`, or a broken answer (status 200), never receives it.
    pub status: u16,
}

/// What happened to access tokens, for tests to assert on.
#[derive(Clone, Debug, Default)]
pub(crate) struct AccessTokenSeen {
    /// Every request to the access-token endpoints, in order of decision.
    pub requests: Vec<AccessTokenRequest>,
    /// Rotations committed, in all.
    pub rotations: usize,
    /// Rotations committed, per family (the id of its first token).
    pub rotations_by_family: HashMap<u64, usize>,
    /// Revoked tokens that had been rotated, presented to rotate again: each revoked its family.
    pub family_revocations: usize,
    /// Rotations received and not yet decided (GitLab still working on them).
    pub rotations_in_progress: usize,
}

#[derive(Clone)]
pub(super) struct AccessTokenRecord {
    pub token: String,
    pub id: u64,
    pub name: String,
    pub scopes: Vec<String>,
    pub owner: TokenOwner,
    pub created_at: DateTime<Utc>,
    pub expires_at: NaiveDate,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub rotated: bool,
    pub previous: Option<u64>,
    pub family: u64,
}

impl AccessTokenRecord {
    pub(super) fn expired(&self) -> bool {
        today() >= self.expires_at
    }

    fn is_live(&self) -> bool {
        !self.revoked && !self.expired()
    }

    /// The token as `GET /personal_access_tokens/self` presents it (without the token itself).
    pub(super) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "revoked": self.revoked,
            "created_at": timestamp(self.created_at),
            "description": null,
            "scopes": self.scopes,
            "user_id": self.owner.user_id(),
            "last_used_at": self.last_used_at.map(timestamp),
            "active": self.is_live(),
            "expires_at": self.expires_at.format("%Y-%m-%d").to_string(),
        })
    }
}

/// Every access token issued, found by its string or its id.
#[derive(Default)]
pub(super) struct AccessTokens {
    records: Vec<AccessTokenRecord>,
    by_token: HashMap<String, usize>,
    pub seen: AccessTokenSeen,
}

/// Why GitLab refuses an access token it was given.
pub(super) enum Refusal {
    Unknown,
    Expired,
    Revoked,
}

impl AccessTokens {
    pub(super) fn issue(&mut self, spec: AccessTokenSpec, previous: Option<u64>) -> usize {
        let id = FIRST_ID + self.records.len() as u64;
        let family = previous
            .and_then(|p| self.by_id(p))
            .map_or(id, |i| self.records[i].family);
        let record = AccessTokenRecord {
            token: random_token(),
            id,
            name: spec.name,
            scopes: spec.scopes,
            owner: spec.owner,
            created_at: spec.created_at,
            expires_at: spec.expires_at,
            last_used_at: None,
            revoked: false,
            rotated: false,
            previous,
            family,
        };
        let index = self.records.len();
        self.by_token.insert(record.token.clone(), index);
        self.records.push(record);
        index
    }

    pub(super) fn find(&self, token: &str) -> Option<usize> {
        self.by_token.get(token).copied()
    }

    fn by_id(&self, id: u64) -> Option<usize> {
        id.checked_sub(FIRST_ID)
            .map(|i| i as usize)
            .filter(|&i| i < self.records.len())
    }

    pub(super) fn get(&self, index: usize) -> &AccessTokenRecord {
        &self.records[index]
    }

    pub(super) fn get_mut(&mut self, index: usize) -> &mut AccessTokenRecord {
        &mut self.records[index]
    }

    /// The token, if GitLab accepts it now (GitLab checks expiry before revocation); a use
    /// marks it used.
    pub(super) fn authenticate(&mut self, token: &str) -> Result<usize, Refusal> {
        let index = self.find(token).ok_or(Refusal::Unknown)?;
        let record = &mut self.records[index];
        if record.expired() {
            return Err(Refusal::Expired);
        }
        if record.revoked {
            return Err(Refusal::Revoked);
        }
        record.last_used_at = Some(Utc::now());
        Ok(index)
    }

    /// Revokes every live token descended from the one at `index` (what GitLab does when a
    /// revoked token is presented to rotate); counts a family revocation when it had been rotated.
    pub(super) fn revoke_descendants(&mut self, index: usize) {
        let mut ancestors = vec![self.records[index].id];
        for record in &mut self.records {
            if record.previous.is_some_and(|p| ancestors.contains(&p)) {
                ancestors.push(record.id);
                record.revoked = true;
            }
        }
        if self.records[index].rotated {
            self.seen.family_revocations += 1;
        }
    }

    fn info(&self, index: usize) -> AccessTokenInfo {
        let r = &self.records[index];
        AccessTokenInfo {
            id: r.id,
            name: r.name.clone(),
            scopes: r.scopes.clone(),
            user_id: r.owner.user_id(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked: r.revoked,
            rotated: r.rotated,
            family: r.family,
        }
    }
}

/// The `Authorization: Bearer` value, as Doorkeeper reads it.
pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

pub(super) fn private_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("private-token")?.to_str().ok()?;
    Some(value.to_owned()).filter(|t| !t.is_empty())
}

/// Today, in UTC: the date expiries are compared with.
pub(super) fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Rails' JSON times: milliseconds and `Z`.
pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn random_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rngs::OsRng;
    let tail: String = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("glpat-{tail}")
}

impl FakeGitLab {
    /// A token made in GitLab's settings, as the person (or the project's or group's owner)
    /// would copy it: the token string.
    pub(crate) fn issue_access_token(&self, spec: AccessTokenSpec) -> String {
        let mut state = self.state.lock().unwrap();
        let index = state.access_tokens.issue(spec, None);
        state.access_tokens.get(index).token.clone()
    }

    /// Revokes a token as its owner would in GitLab's settings (not a rotation).
    pub(crate) fn revoke_access_token(&self, token: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(index) = state.access_tokens.find(token) {
            state.access_tokens.get_mut(index).revoked = true;
        }
    }

    /// Moves a token's expiry date, as time passing would (a date of today or before kills it).
    pub(crate) fn set_access_token_expiry(&self, token: &str, expires_at: NaiveDate) {
        let mut state = self.state.lock().unwrap();
        if let Some(index) = state.access_tokens.find(token) {
            state.access_tokens.get_mut(index).expires_at = expires_at;
        }
    }

    /// Whether GitLab accepts the token now: known, not revoked, not expired.
    pub(crate) fn access_token_alive(&self, token: &str) -> bool {
        let state = self.state.lock().unwrap();
        let tokens = &state.access_tokens;
        tokens.find(token).is_some_and(|i| tokens.get(i).is_live())
    }

    pub(crate) fn access_token_info(&self, token: &str) -> Option<AccessTokenInfo> {
        let state = self.state.lock().unwrap();
        let tokens = &state.access_tokens;
        tokens.find(token).map(|i| tokens.info(i))
    }

    /// The live tokens of `token`'s family (itself included if live), oldest first.
    pub(crate) fn live_access_tokens_of_family(&self, token: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let tokens = &state.access_tokens;
        let Some(family) = tokens.find(token).map(|i| tokens.get(i).family) else {
            return Vec::new();
        };
        let records = tokens.records.iter();
        records
            .filter(|r| r.family == family && r.is_live())
            .map(|r| r.token.clone())
            .collect()
    }

    /// Rotations committed, in all.
    pub(crate) fn access_token_rotations(&self) -> usize {
        self.state.lock().unwrap().access_tokens.seen.rotations
    }

    /// Rotated tokens presented to rotate again, each of which revoked its family.
    pub(crate) fn family_revocations(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .access_tokens
            .seen
            .family_revocations
    }

    /// Everything recorded about access tokens: requests, rotations per family, in progress.
    pub(crate) fn access_token_seen(&self) -> AccessTokenSeen {
        self.state.lock().unwrap().access_tokens.seen.clone()
    }
}
