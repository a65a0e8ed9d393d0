//! Service tokens: short-lived JWTs that labgate issues to services and verifies itself.
//! One algorithm (EdDSA over Ed25519), one key, its `kid` in every header; anything else is
//! refused before a signature is even checked. A token that passed once is remembered, so a
//! service calling many times with one token pays for the signature check once.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use quick_cache::sync::Cache;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every service token names labgate as its audience.
pub const AUDIENCE: &str = "labgate";
/// Fifteen minutes: long enough for a CI job's step, short enough that a leak ages out.
pub const LIFETIME_SECONDS: i64 = 15 * 60;
const LEEWAY_SECONDS: u64 = 5;
/// Tokens remembered as verified: a few per service, each for at most its lifetime.
const VERIFIED_CAPACITY: usize = 10_000;

pub struct ServiceTokenKeys {
    /// Signs with ring: several times faster than jsonwebtoken's pure-Rust Ed25519, and every
    /// client-credentials grant and token exchange signs once.
    signing: Ed25519KeyPair,
    decoding: DecodingKey,
    kid: String,
    /// Tokens that passed every check, by their exact text; only their expiry can change.
    verified: Cache<String, Arc<ServiceClaims>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceClaims {
    pub iss: String,
    pub aud: String,
    /// The service's id (not its name, which a new service could reuse).
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Minted through a workload identity: which one (its fingerprint), so that removing the
    /// identity from the service retires the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Minted through an identity that binds a subject: the only subject it may act for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_subject: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not signed with labgate's algorithm and key")]
    WrongKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid here: {0}")]
    Invalid(String),
}

impl ServiceTokenKeys {
    /// A new Ed25519 key pair as PKCS#8 DER: what is sealed and stored.
    pub fn generate_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("the system's random number generator works")
            .as_ref()
            .to_vec()
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| format!("not an Ed25519 key: {e}"))?;
        let public = pair.public_key().as_ref();
        Ok(Self {
            decoding: DecodingKey::from_ed_der(public),
            kid: hex::encode(&Sha256::digest(public)[..8]),
            verified: Cache::new(VERIFIED_CAPACITY),
            signing: pair,
        })
    }

    /// A compact JWS (RFC 7515 §7.1): `header.claims.signature`, each base64url.
    pub fn sign(&self, claims: &ServiceClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let part = |value: &[u8]| URL_SAFE_NO_PAD.encode(value);
        let mut token = format!(
            "{}.{}",
            part(&serde_json::to_vec(&header).expect("a header serialises")),
            part(&serde_json::to_vec(claims).expect("claims serialise"))
        );
        let signature = self.signing.sign(token.as_bytes());
        token.push('.');
        token.push_str(&part(signature.as_ref()));
        token
    }

    pub fn verify(&self, token: &str, issuer: &str) -> Result<Arc<ServiceClaims>, TokenRejected> {
        self.verify_at(token, issuer, chrono::Utc::now().timestamp())
    }

    /// `verify` as of `now` (seconds since the epoch) for a token remembered as verified.
    fn verify_at(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<Arc<ServiceClaims>, TokenRejected> {
        if let Some(claims) = self.verified.get(token)
            && claims.iss == issuer
        {
            return if claims.exp.saturating_add(LEEWAY_SECONDS as i64) < now {
                self.verified.remove(token);
                Err(TokenRejected::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = Arc::new(self.verify_signature_and_claims(token, issuer)?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_signature_and_claims(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<ServiceClaims, TokenRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        if header.alg != Algorithm::EdDSA || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenRejected::WrongKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        jsonwebtoken::decode::<ServiceClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejected::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenRejected::WrongKey,
                other => TokenRejected::Invalid(format!("{other:?}")),
            })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn claims(exp_offset: i64) -> ServiceClaims {
        let now = chrono::Utc::now().timestamp();
        ServiceClaims {
            iss: "https://labgate.test".into(),
            aud: AUDIENCE.into(),
            sub: "svc-1".into(),
            iat: now,
            exp: now + exp_offset,
            jti: "j".into(),
            identity: None,
            bound_subject: None,
        }
    }

    fn keys() -> ServiceTokenKeys {
        ServiceTokenKeys::from_pkcs8(&ServiceTokenKeys::generate_pkcs8()).unwrap()
    }

    #[test]
    fn verifies_its_own_tokens_for_its_own_issuer() {
        let keys = keys();
        let token = keys.sign(&claims(60));
        assert_eq!(
            keys.verify(&token, "https://labgate.test").unwrap().sub,
            "svc-1"
        );
        assert!(matches!(
            keys.verify(&token, "https://other.test"),
            Err(TokenRejected::Invalid(_))
        ));
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = keys();
        let token = keys.sign(&claims(60));
        assert!(keys.verify(&token, "https://labgate.test").is_ok());
        let later = chrono::Utc::now().timestamp() + 60 + LEEWAY_SECONDS as i64 + 1;
        assert!(matches!(
            keys.verify_at(&token, "https://labgate.test", later),
            Err(TokenRejected::Expired)
        ));
        // Forgotten once expired: the full check now refuses it too.
        assert!(keys.verified.get(&token).is_none());
    }

    #[test]
    fn refuses_other_keys_none_expired_and_garbage() {
        let keys = keys();
        let foreign_pkcs8 = ServiceTokenKeys::generate_pkcs8();
        let foreign = ServiceTokenKeys::from_pkcs8(&foreign_pkcs8).unwrap();
        let mut forged = foreign.sign(&claims(60));
        assert!(matches!(
            keys.verify(&forged, "https://labgate.test"),
            Err(TokenRejected::WrongKey)
        ));

        // Same kid, another key: the signature check must catch it.
        forged = {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(keys.kid.clone());
            jsonwebtoken::encode(
                &header,
                &claims(60),
                &jsonwebtoken::EncodingKey::from_ed_der(&foreign_pkcs8),
            )
            .unwrap()
        };
        assert!(matches!(
            keys.verify(&forged, "https://labgate.test"),
            Err(TokenRejected::WrongKey)
        ));

        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(60)).unwrap());
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(matches!(
            keys.verify(&none, "https://labgate.test"),
            Err(TokenRejected::Malformed | TokenRejected::WrongKey)
        ));

        assert!(matches!(
            keys.verify(&keys.sign(&claims(-60)), "https://labgate.test"),
            Err(TokenRejected::Expired)
        ));
        assert!(matches!(
            keys.verify("not.a.jwt", "https://labgate.test"),
            Err(TokenRejected::Malformed)
        ));
    }
}
