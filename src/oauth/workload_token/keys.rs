//! Each trusted issuer's signing keys, fetched from its JWKS through its own trust roots and
//! kept: a verification costs one signature check. An unknown `kid` (the issuer rotated its key)
//! fetches the keys again, at most once a minute per issuer and never when the keys in hand were
//! fetched after the token arrived, so a flood of made-up `kid`s costs the issuer one request.
//! A token whose signature verified is remembered with the keys that verified it: a CI job's
//! steps presenting one ID token again (each `git` call through the credential helper) pay for
//! the signature once, and a new fetch of the keys forgets them all, as it forgets a dropped key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use super::signature::{ASYMMETRIC, VerifyingKey};
use super::{TokenRefusal, UnverifiedToken, VerifyError};
use crate::oauth::body_within;

/// Keys older than this are fetched again at the next use (and kept if that fails).
const KEYS_MAX_AGE: Duration = Duration::from_secs(600);
/// The least time between two fetches caused by unknown `kid`s.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);
/// Verified tokens remembered per issuer.
const VERIFIED_CAPACITY: usize = 4_096;
/// A discovery document or JWKS larger than this is not one.
const DOCUMENT_LIMIT: usize = 256 * 1024;

/// Where an issuer's JWKS is found.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A registered instance: its discovery document was checked and stored at registration.
    Known {
        jwks_uri: String,
        /// `id_token_signing_alg_values_supported`.
        algorithms: Vec<String>,
    },
    /// Any other issuer: OIDC discovery at `{iss}/.well-known/openid-configuration`.
    Discovered,
}

/// An issuer a service trusts, and how to reach it.
pub struct TrustedIssuer {
    /// Exactly as the tokens' `iss` spells it.
    pub iss: String,
    pub source: KeySource,
    /// A client with the issuer's trust roots, https only, no redirects.
    pub client: reqwest::Client,
    /// Tells apart issuers with the same `iss` but other trust roots or sources.
    pub cache_key: String,
}

#[derive(Default)]
pub struct IssuerKeys {
    issuers: Mutex<HashMap<String, Arc<Issuer>>>,
}

#[derive(Default)]
struct Issuer {
    keys: RwLock<Option<Arc<KeySet>>>,
    /// One fetch at a time per issuer; those who waited use its result.
    fetching: tokio::sync::Mutex<()>,
}

struct KeySet {
    by_kid: HashMap<Option<String>, PublicKey>,
    /// The issuer's advertised algorithms; every asymmetric one when it advertises none.
    algorithms: Vec<Algorithm>,
    fetched_at: Instant,
    last_unknown_kid_fetch: Option<Instant>,
    /// Tokens (their exact text) whose signature these keys verified.
    verified: Cache<String, ()>,
}

impl KeySet {
    fn new(by_kid: HashMap<Option<String>, PublicKey>, algorithms: Vec<Algorithm>) -> Self {
        Self {
            by_kid,
            algorithms,
            fetched_at: Instant::now(),
            last_unknown_kid_fetch: None,
            verified: Cache::new(VERIFIED_CAPACITY),
        }
    }

    /// The same keys, kept after a failed fetch, counted as fetched now.
    fn kept(&self, unknown_kid_at: Option<Instant>) -> Self {
        Self {
            last_unknown_kid_fetch: unknown_kid_at.or(self.last_unknown_kid_fetch),
            ..Self::new(self.by_kid.clone(), self.algorithms.clone())
        }
    }
}

#[derive(Clone)]
struct PublicKey {
    key: Arc<VerifyingKey>,
    /// The algorithms this key may verify: by its type and curve, and its own `alg` if set.
    algorithms: Vec<Algorithm>,
}

impl IssuerKeys {
    /// Whether `token` carries a valid signature by one of `issuer`'s keys, and its `iss` is
    /// `issuer`'s. `arrived` is when the request came in.
    pub async fn verify<'t>(
        &self,
        issuer: &TrustedIssuer,
        token: &'t UnverifiedToken,
        arrived: Instant,
    ) -> Result<&'t Map<String, Value>, VerifyError> {
        if token.claimed_issuer() != Some(issuer.iss.as_str()) {
            return Err(TokenRefusal::new(
                "issuer",
                "issuer",
                "the token's iss is not this identity's issuer",
            )
            .into());
        }
        let entry = self.entry(&issuer.cache_key);
        let (key, keys) = match entry.find(token) {
            Some(Found::Key(key, keys)) => (key, keys),
            // First use, or the keys are old: fetch before judging.
            Some(Found::Stale) | None => {
                entry.fetch(issuer).await?;
                entry
                    .find(token)
                    .and_then(Found::key)
                    .ok_or_else(|| unknown_kid(token))?
            }
            Some(Found::Unknown) => {
                let may_refetch = |keys: &KeySet| {
                    keys.fetched_at < arrived
                        && keys
                            .last_unknown_kid_fetch
                            .is_none_or(|at| at.elapsed() >= UNKNOWN_KID_REFETCH)
                };
                entry.fetch_for_unknown_kid(issuer, may_refetch).await?;
                entry
                    .find(token)
                    .and_then(Found::key)
                    .ok_or_else(|| unknown_kid(token))?
            }
        };
        if !keys.algorithms.contains(&token.algorithm) || !key.algorithms.contains(&token.algorithm)
        {
            return Err(TokenRefusal::new(
                "algorithm",
                "algorithm",
                format!(
                    "{:?} is not an algorithm the issuer advertises for this key",
                    token.algorithm
                ),
            )
            .into());
        }
        if keys.verified.get(&token.text).is_none() {
            if !key
                .key
                .verifies(token.algorithm, token.signed().as_bytes(), &token.signature)
            {
                return Err(TokenRefusal::new(
                    "signature",
                    "signature",
                    "the signature does not verify with the issuer's key",
                )
                .into());
            }
            keys.verified.insert(token.text.clone(), ());
        }
        Ok(token.verified_claims())
    }

    fn entry(&self, cache_key: &str) -> Arc<Issuer> {
        let mut issuers = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        issuers.entry(cache_key.to_owned()).or_default().clone()
    }
}

fn unknown_kid(token: &UnverifiedToken) -> VerifyError {
    let why = match &token.kid {
        Some(_) => {
            "the token's kid is not among the issuer's keys (fetched again at most once a minute)"
        }
        None => "the token names no kid and the issuer has more than one key",
    };
    TokenRefusal::new("key", "unknown_key", why).into()
}

enum Found {
    /// The key, and the set it belongs to.
    Key(PublicKey, Arc<KeySet>),
    Unknown,
    Stale,
}

impl Found {
    fn key(self) -> Option<(PublicKey, Arc<KeySet>)> {
        match self {
            Self::Key(key, keys) => Some((key, keys)),
            Self::Unknown | Self::Stale => None,
        }
    }
}

impl Issuer {
    fn find(&self, token: &UnverifiedToken) -> Option<Found> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        if keys.fetched_at.elapsed() > KEYS_MAX_AGE {
            return Some(Found::Stale);
        }
        let key = keys.by_kid.get(&token.kid).or_else(|| {
            // A token without `kid` is fine when the issuer has one key.
            (token.kid.is_none() && keys.by_kid.len() == 1)
                .then(|| keys.by_kid.values().next())
                .flatten()
        });
        match key.cloned() {
            Some(key) => Some(Found::Key(key, keys)),
            None => Some(Found::Unknown),
        }
    }

    /// Fetches the keys if, once this caller's turn comes, there are none or they are old.
    /// Old keys are kept when the fetch fails; having none is `Unavailable`.
    async fn fetch(&self, issuer: &TrustedIssuer) -> Result<(), VerifyError> {
        let _turn = self.fetching.lock().await;
        let needed = self
            .current()
            .is_none_or(|keys| keys.fetched_at.elapsed() > KEYS_MAX_AGE);
        if needed {
            self.store(fetch_keys(issuer).await, None)?;
        }
        Ok(())
    }

    async fn fetch_for_unknown_kid(
        &self,
        issuer: &TrustedIssuer,
        may_refetch: impl Fn(&KeySet) -> bool,
    ) -> Result<(), VerifyError> {
        let _turn = self.fetching.lock().await;
        if self.current().is_none_or(|keys| may_refetch(&keys)) {
            self.store(fetch_keys(issuer).await, Some(Instant::now()))?;
        }
        Ok(())
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn store(
        &self,
        fetched: Result<KeySet, String>,
        unknown_kid_at: Option<Instant>,
    ) -> Result<(), VerifyError> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let stored = match (fetched, keys.as_ref()) {
            (Ok(mut fresh), before) => {
                fresh.last_unknown_kid_fetch =
                    unknown_kid_at.or_else(|| before.and_then(|k| k.last_unknown_kid_fetch));
                fresh
            }
            (Err(why), Some(before)) => {
                tracing::warn!(error = %why, "an issuer's keys could not be fetched again; the ones in hand are kept");
                // Counted as a fetch: a failing issuer is not asked again at every request.
                before.kept(unknown_kid_at)
            }
            (Err(why), None) => return Err(VerifyError::Unavailable(why)),
        };
        *keys = Some(Arc::new(stored));
        Ok(())
    }
}

async fn fetch_keys(issuer: &TrustedIssuer) -> Result<KeySet, String> {
    let (jwks_uri, advertised) = match &issuer.source {
        KeySource::Known {
            jwks_uri,
            algorithms,
        } => (jwks_uri.clone(), algorithms.clone()),
        KeySource::Discovered => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.iss.trim_end_matches('/')
            );
            let discovery: IssuerDiscovery = get_json(&issuer.client, &url).await?;
            if discovery.issuer != issuer.iss {
                return Err(format!(
                    "the discovery document names the issuer {:?}, not {:?}",
                    discovery.issuer, issuer.iss
                ));
            }
            (
                discovery.jwks_uri,
                discovery.id_token_signing_alg_values_supported,
            )
        }
    };
    let jwks: Value = get_json(&issuer.client, &jwks_uri).await?;
    let by_kid = public_keys(&jwks);
    if by_kid.is_empty() {
        return Err("the issuer's JWKS holds no usable public signing key".into());
    }
    let algorithms = advertised
        .iter()
        .filter_map(|name| name.parse::<Algorithm>().ok())
        .filter(|alg| !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .collect::<Vec<_>>();
    let algorithms = if algorithms.is_empty() {
        ASYMMETRIC.to_vec()
    } else {
        algorithms
    };
    Ok(KeySet::new(by_kid, algorithms))
}

/// What a token issuer's discovery document must say; unlike GitLab's, a workload issuer's
/// (Kubernetes') has no authorization or token endpoint.
#[derive(serde::Deserialize)]
struct IssuerDiscovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

/// The JWKS's public signing keys by `kid`; symmetric keys, encryption keys and keys this
/// library cannot use are left out rather than failing the whole set.
fn public_keys(jwks: &Value) -> HashMap<Option<String>, PublicKey> {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return HashMap::new();
    };
    keys.iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value.clone()).ok())
        .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
        .filter_map(|jwk| {
            let (key, by_type) = VerifyingKey::from_jwk(&jwk)?;
            // A key that names its algorithm verifies only that one.
            let algorithms = by_type
                .iter()
                .copied()
                .filter(|alg| {
                    jwk.common
                        .key_algorithm
                        .is_none_or(|own| format!("{alg:?}") == format!("{own:?}"))
                })
                .collect();
            Some((
                jwk.common.key_id.clone(),
                PublicKey {
                    key: Arc::new(key),
                    algorithms,
                },
            ))
        })
        .collect()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::oauth::error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let body = body_within(response, DOCUMENT_LIMIT)
        .await
        .ok_or_else(|| format!("{url}: the answer is over {DOCUMENT_LIMIT} bytes or broke off"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not the expected JSON ({e})"))
}
