//! Workload identities a service trusts instead of (or beside) its client secret: whose tokens
//! (an issuer), for which audience, carrying which claims, and which claim names the person the
//! token acts for. Judging a verified token's claims against an identity is pure, and lives here.

use serde_json::{Map, Value, json};

use super::{CaBundle, InstanceName, Subject};

/// Who signs the tokens: a registered instance (GitLab CI/CD ID tokens, keys from the instance's
/// own JWKS through its own trust roots) or any https OIDC issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityIssuer {
    Instance(InstanceName),
    /// Exactly as the tokens' `iss` spells it.
    Url(String),
}

impl IdentityIssuer {
    /// As the administrator wrote it: the instance's name, or the URL.
    pub fn written(&self) -> &str {
        match self {
            Self::Instance(name) => name.as_str(),
            Self::Url(url) => url,
        }
    }
}

/// What a token's claim must be: exactly a value, or any value starting with a prefix
/// (written with a trailing `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimMatch {
    Exact(String),
    Prefix(String),
}

impl ClaimMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => value == expected,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
        }
    }

    /// As the administrator writes it: the value, or the prefix and `*`.
    pub fn written(&self) -> String {
        match self {
            Self::Exact(value) => value.clone(),
            Self::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

/// One identity a service trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub issuer: IdentityIssuer,
    /// The trust roots of a URL issuer; the platform's when absent.
    pub ca: Option<CaBundle>,
    pub audience: String,
    /// By claim name; never empty.
    pub claims: Vec<(String, ClaimMatch)>,
    /// The claim whose value is the only subject the minted token may act for.
    pub subject_claim: Option<String>,
}

/// A verified token's claims, accepted by an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedClaims {
    /// The subject the minted token is bound to, when the identity binds one.
    pub subject: Option<Subject>,
    /// Each bound claim's value in the token, for the audit log.
    pub bound: Vec<(String, String)>,
}

/// Why an identity refused a token's claims: `check` names what failed (`audience`, `expiry`,
/// `claim project_path`, `subject_claim user_login`), `reason` is its kind for metrics, `why`
/// says what was wrong without repeating the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRefusal {
    pub check: String,
    pub reason: &'static str,
    pub why: String,
}

impl ClaimRefusal {
    fn new(check: impl Into<String>, reason: &'static str, why: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            reason,
            why: why.into(),
        }
    }
}

/// Clocks disagree a little: `nbf` and `iat` may be this far in the future.
const CLOCK_LEEWAY_SECONDS: i64 = 60;

impl WorkloadIdentity {
    /// The API's (and the stored) form.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "issuer": self.issuer.written(),
            "audience": self.audience,
            "claims": self.claims.iter()
                .map(|(name, expected)| (name.clone(), Value::String(expected.written())))
                .collect::<Map<_, _>>(),
        });
        if let Some(claim) = &self.subject_claim {
            out["subject_claim"] = json!(claim);
        }
        if let Some(ca) = &self.ca {
            out["ca_pem"] = json!(ca.pem());
        }
        out
    }

    /// Whether a verified token's claims satisfy this identity at `now` (seconds since the
    /// epoch): its audience, its times, every bound claim, then the subject claim if one is named.
    /// The issuer and signature are the verifier's to check, before.
    pub fn judge(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<AcceptedClaims, ClaimRefusal> {
        self.judge_audience(claims.get("aud"))?;
        judge_times(claims, now)?;
        let mut bound = Vec::with_capacity(self.claims.len());
        for (name, expected) in &self.claims {
            let refuse = |why: String| ClaimRefusal::new(format!("claim {name}"), "claim", why);
            let value = single_value(claims.get(name)).map_err(refuse)?;
            if !expected.matches(&value) {
                return Err(refuse(match expected {
                    ClaimMatch::Exact(_) => "does not equal the value this identity binds".into(),
                    ClaimMatch::Prefix(_) => {
                        "does not start with the prefix this identity binds".into()
                    }
                }));
            }
            bound.push((name.clone(), value));
        }
        let subject = match &self.subject_claim {
            None => None,
            Some(name) => {
                let refuse = |why: String| {
                    ClaimRefusal::new(format!("subject_claim {name}"), "subject", why)
                };
                let value = single_value(claims.get(name)).map_err(refuse)?;
                Some(
                    Subject::parse(&value)
                        .map_err(|e| refuse(format!("is not a usable subject: it {e}")))?,
                )
            }
        };
        Ok(AcceptedClaims { subject, bound })
    }
}

impl WorkloadIdentity {
    /// `aud` is one string or an array of them (RFC 7519 §4.1.3); one must be this identity's.
    fn judge_audience(&self, aud: Option<&Value>) -> Result<(), ClaimRefusal> {
        let listed = match aud {
            Some(Value::String(one)) => one == &self.audience,
            Some(Value::Array(many)) => many.iter().any(|v| v.as_str() == Some(&self.audience)),
            _ => false,
        };
        if listed {
            Ok(())
        } else {
            Err(ClaimRefusal::new(
                "audience",
                "audience",
                "the token is not minted for this identity's audience",
            ))
        }
    }
}

/// `exp` must be ahead (the token labgate mints ends with it, so no leeway helps); `nbf` and
/// `iat` may lie up to a minute ahead, for clocks that disagree.
fn judge_times(claims: &Map<String, Value>, now: i64) -> Result<(), ClaimRefusal> {
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    match time("exp") {
        None => {
            return Err(ClaimRefusal::new(
                "expiry",
                "expired",
                "the token has no numeric exp",
            ));
        }
        Some(exp) if exp <= now => {
            return Err(ClaimRefusal::new(
                "expiry",
                "expired",
                format!("the token expired {} s ago", now - exp),
            ));
        }
        Some(_) => {}
    }
    if let Some(nbf) = time("nbf")
        && nbf > now + CLOCK_LEEWAY_SECONDS
    {
        return Err(ClaimRefusal::new(
            "not_before",
            "not_yet_valid",
            format!("the token is not valid for another {} s", nbf - now),
        ));
    }
    match time("iat") {
        None if claims.contains_key("iat") => Err(ClaimRefusal::new(
            "issued_at",
            "issued_in_future",
            "iat is not a number",
        )),
        Some(iat) if iat > now + CLOCK_LEEWAY_SECONDS => Err(ClaimRefusal::new(
            "issued_at",
            "issued_in_future",
            format!("the token claims to be issued {} s from now", iat - now),
        )),
        _ => Ok(()),
    }
}

/// A claim's value as text: strings as they are, booleans and numbers as JSON writes them
/// (`ref_protected` is the string "true" in GitLab's tokens, `true` in others').
fn single_value(value: Option<&Value>) -> Result<String, String> {
    match value {
        None | Some(Value::Null) => Err("is missing from the token".into()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Bool(flag)) => Ok(flag.to_string()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(_) => Err("is not a single value in the token".into()),
    }
}

/// The identities a service trusts, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadIdentities(Vec<WorkloadIdentity>);

impl WorkloadIdentities {
    pub fn to_stored(&self) -> String {
        self.to_json().to_string()
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(WorkloadIdentity::to_json).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &WorkloadIdentity> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The instances named as issuers.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceName> {
        self.0.iter().filter_map(|identity| match &identity.issuer {
            IdentityIssuer::Instance(name) => Some(name),
            IdentityIssuer::Url(_) => None,
        })
    }
}

mod parse;
#[cfg(test)]
mod tests;
