//! Service tokens: short-lived JWTs that labgate issues to services and verifies itself.
//! Nobody else verifies them, so they carry a MAC rather than a public-key signature: one
//! algorithm (HS256), one secret key shared by every process through the database, its `kid`
//! in every header; anything else is refused before the MAC is even checked. (An Ed25519
//! signature cost as much as a whole handout and made minting the token exchange's main cost.)
//! A token that passed once is remembered, so a service calling many times with one token
//! pays for the check once.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use quick_cache::sync::Cache;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every service token names labgate as its audience.
pub const AUDIENCE: &str = "labgate";
/// Fifteen minutes: long enough for a CI job's step, short enough that a leak ages out.
pub const LIFETIME_SECONDS: i64 = 15 * 60;
const LEEWAY_SECONDS: u64 = 5;
/// Tokens remembered as verified: a few per service, each for at most its lifetime.
const VERIFIED_CAPACITY: usize = 10_000;
/// The secret's length when labgate makes it.
const SECRET_BYTES: usize = 32;

pub struct ServiceTokenKeys {
    /// MACs with ring: every client-credentials grant and token exchange mints a token.
    mac: hmac::Key,
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
    /// A new secret key: what is sealed and stored.
    pub fn generate_secret() -> Vec<u8> {
        let mut secret = vec![0; SECRET_BYTES];
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the system's random number generator works");
        secret
    }

    /// The keys for a stored secret. A database made before service tokens were MACed holds
    /// an Ed25519 private key (PKCS#8) there: its bytes are as secret, and key it as well.
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < SECRET_BYTES {
            return Err(format!(
                "the service token key has {} bytes, fewer than {SECRET_BYTES}",
                secret.len()
            ));
        }
        // Names the key without revealing anything of it.
        let kid = Sha256::new()
            .chain_update(b"labgate service token kid\0")
            .chain_update(secret)
            .finalize();
        Ok(Self {
            mac: hmac::Key::new(hmac::HMAC_SHA256, secret),
            decoding: DecodingKey::from_secret(secret),
            kid: hex::encode(&kid[..8]),
            verified: Cache::new(VERIFIED_CAPACITY),
        })
    }

    /// A compact JWS (RFC 7515 §7.1): `header.claims.mac`, each base64url.
    pub fn sign(&self, claims: &ServiceClaims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let part = |value: &[u8]| URL_SAFE_NO_PAD.encode(value);
        let mut token = format!(
            "{}.{}",
            part(&serde_json::to_vec(&header).expect("a header serialises")),
            part(&serde_json::to_vec(claims).expect("claims serialise"))
        );
        let tag = hmac::sign(&self.mac, token.as_bytes());
        token.push('.');
        token.push_str(&part(tag.as_ref()));
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
        if header.alg != Algorithm::HS256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenRejected::WrongKey);
        }
        let mut validation = Validation::new(Algorithm::HS256);
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
        ServiceTokenKeys::from_secret(&ServiceTokenKeys::generate_secret()).unwrap()
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
    fn a_key_stored_before_tokens_were_maced_still_keys_them() {
        // Databases from before hold an Ed25519 private key (PKCS#8) under the same name.
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let keys = ServiceTokenKeys::from_secret(pkcs8.as_ref()).unwrap();
        let token = keys.sign(&claims(60));
        assert_eq!(
            keys.verify(&token, "https://labgate.test").unwrap().sub,
            "svc-1"
        );
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
        let foreign_secret = ServiceTokenKeys::generate_secret();
        let foreign = ServiceTokenKeys::from_secret(&foreign_secret).unwrap();
        let mut forged = foreign.sign(&claims(60));
        assert!(matches!(
            keys.verify(&forged, "https://labgate.test"),
            Err(TokenRejected::WrongKey)
        ));

        // Same kid, another key: the MAC check must catch it.
        forged = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(keys.kid.clone());
            jsonwebtoken::encode(
                &header,
                &claims(60),
                &jsonwebtoken::EncodingKey::from_secret(&foreign_secret),
            )
            .unwrap()
        };
        assert!(matches!(
            keys.verify(&forged, "https://labgate.test"),
            Err(TokenRejected::WrongKey)
        ));
        // Same kid, a public-key algorithm: refused before any key is tried.
        forged = {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(keys.kid.clone());
            let pkcs8 =
                ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            jsonwebtoken::encode(
                &header,
                &claims(60),
                &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            )
            .unwrap()
        };
        assert!(matches!(
            keys.verify(&forged, "https://labgate.test"),
            Err(TokenRejected::WrongKey)
        ));

        let short = ServiceTokenKeys::from_secret(&[7; 16]);
        assert!(short.is_err(), "a 16-byte key is refused");

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
