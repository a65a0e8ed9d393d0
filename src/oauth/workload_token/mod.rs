//! Workload tokens (GitLab CI/CD ID tokens, Kubernetes service-account tokens, any OIDC
//! issuer's JWTs): is this token signed by the issuer it names? Header hygiene, the issuer's
//! advertised asymmetric algorithms, its keys by `kid`, and the signature. What the claims say
//! (audience, times, bound claims) is `domain::WorkloadIdentity::judge`'s question.

mod keys;
mod signature;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

pub use keys::{IssuerKeys, KeySource, TrustedIssuer};

/// Why a subject token was refused: `check` starts the error description (`signature`,
/// `algorithm`, ...), `reason` labels the refusal in metrics, `why` explains without repeating
/// the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefusal {
    pub check: &'static str,
    pub reason: &'static str,
    pub why: String,
}

impl TokenRefusal {
    fn new(check: &'static str, reason: &'static str, why: impl Into<String>) -> Self {
        Self {
            check,
            reason,
            why: why.into(),
        }
    }
}

#[derive(Debug)]
pub enum VerifyError {
    Refused(TokenRefusal),
    /// The issuer's keys could not be fetched: nothing is known about the token.
    Unavailable(String),
}

impl From<TokenRefusal> for VerifyError {
    fn from(refusal: TokenRefusal) -> Self {
        Self::Refused(refusal)
    }
}

/// Header members that point at, or carry, keys of the token's own choosing: a verifier that
/// followed them would let the token vouch for itself. `crit` names extensions labgate does not
/// understand, which RFC 7515 §4.1.11 says to refuse.
const REFUSED_HEADER_MEMBERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// A token taken apart but not yet trusted: its header checked for hygiene and an asymmetric
/// algorithm, its claims readable only to find the issuer whose keys will verify it.
pub struct UnverifiedToken {
    /// As presented: `header.claims.signature`.
    text: String,
    signature: Vec<u8>,
    algorithm: Algorithm,
    kid: Option<String>,
    claims: Map<String, Value>,
}

impl UnverifiedToken {
    pub fn parse(token: &str) -> Result<Self, TokenRefusal> {
        let malformed = || {
            TokenRefusal::new(
                "subject_token",
                "malformed",
                "is not a JWT (three base64url parts, a JSON header and claims)",
            )
        };
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        let json_object = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        };
        let (Some(header), Some(claims)) = (json_object(header), json_object(claims)) else {
            return Err(malformed());
        };
        if let Some(member) = REFUSED_HEADER_MEMBERS
            .iter()
            .find(|member| header.contains_key(**member))
        {
            return Err(TokenRefusal::new(
                "header",
                "header",
                format!(
                    "the token's header carries {member:?}: keys come from the issuer's JWKS only"
                ),
            ));
        }
        let algorithm = asymmetric_algorithm(header.get("alg"))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenRefusal::new("header", "header", "kid is not a string")),
        };
        Ok(Self {
            text: token.to_owned(),
            signature,
            algorithm,
            kid,
            claims,
        })
    }

    /// `header.claims`: what the signature is over.
    fn signed(&self) -> &str {
        self.text
            .rsplit_once('.')
            .map_or(self.text.as_str(), |(signed, _)| signed)
    }

    /// The `iss` the token claims, before anything is verified.
    pub fn claimed_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The claims, once `IssuerKeys::verify` has checked the signature.
    fn verified_claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// Only public-key algorithms: `none` proves nothing, and an HMAC "key" would be the issuer's
/// public key, which anyone has.
fn asymmetric_algorithm(alg: Option<&Value>) -> Result<Algorithm, TokenRefusal> {
    let refuse = |why: String| TokenRefusal::new("algorithm", "algorithm", why);
    let name = alg
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("the token's header names no algorithm".into()))?;
    let algorithm: Algorithm = name.parse().map_err(|_| {
        refuse(format!(
            "{name:?} is not accepted: only RS*, PS*, ES* and EdDSA"
        ))
    })?;
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(refuse(format!(
            "{name} is a shared-secret algorithm: only the issuer's public-key algorithms are accepted"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests;
