//! JSON Web Tokens as issuers sign them and as attackers forge them: the keys the fake issuers
//! publish (RS256 for GitLab, ES256 for Kubernetes), a key set that rotates, and a token builder
//! that changes any claim or header member, signs with another key, or does not sign at all.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

/// A signing key and what its issuer publishes of it.
pub(crate) struct JwtKey {
    pub kid: String,
    algorithm: Algorithm,
    signer: Signer,
    jwk: Value,
    public_pem: String,
}

enum Signer {
    /// RS256 through ring: many times faster than jsonwebtoken's pure-Rust RSA, so that the
    /// exchange benchmark can mint tens of thousands of CI tokens in a few seconds.
    Rsa(Box<ring::signature::RsaKeyPair>),
    Other(EncodingKey),
}

impl Signer {
    /// The signature, base64url.
    fn sign(&self, input: &str, algorithm: Algorithm) -> String {
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                URL_SAFE_NO_PAD.encode(signature)
            }
            Self::Other(key) => {
                jsonwebtoken::crypto::sign(input.as_bytes(), key, algorithm).unwrap()
            }
        }
    }
}

impl JwtKey {
    /// An RSA 2048 key for RS256, as GitLab signs with (slow to make: keep them few).
    pub(crate) fn rsa(kid: &str) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        let public = key.to_public_key();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            signer: Signer::Rsa(Box::new(
                ring::signature::RsaKeyPair::from_der(der.as_bytes()).unwrap(),
            )),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            }),
            public_pem: public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap(),
        }
    }

    /// A P-256 key for ES256, as a Kubernetes API server may sign with.
    pub(crate) fn es256(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        // The uncompressed point: 0x04, then x and y.
        let point = key.public_key_raw();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            signer: Signer::Other(EncodingKey::from_ec_der(&key.serialize_der())),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
            public_pem: key.public_key_pem(),
        }
    }

    /// The public key as the issuer's JWKS lists it.
    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as a `PUBLIC KEY` PEM: what an algorithm-confusion attack uses as an
    /// HMAC secret.
    pub(crate) fn public_pem(&self) -> &str {
        &self.public_pem
    }
}

/// What becomes of the key a rotation replaces.
#[derive(Clone, Copy)]
pub(crate) enum OldKey {
    /// Still published, for tokens it signed that have not expired yet.
    Kept,
    /// Gone from the JWKS at once.
    Dropped,
}

/// The keys an issuer publishes, and the one it signs new tokens with.
pub(crate) struct KeySet {
    current: Arc<JwtKey>,
    published: Vec<Arc<JwtKey>>,
}

impl KeySet {
    pub(crate) fn new(key: Arc<JwtKey>) -> Self {
        Self {
            current: key.clone(),
            published: vec![key],
        }
    }

    pub(crate) fn current(&self) -> Arc<JwtKey> {
        self.current.clone()
    }

    /// Signs with `key` from now on and publishes it first; keeps or drops the old key.
    pub(crate) fn rotate(&mut self, key: JwtKey, old: OldKey) {
        let key = Arc::new(key);
        if let OldKey::Dropped = old {
            self.published.clear();
        }
        self.published.insert(0, key.clone());
        self.current = key;
    }

    /// The published keys, as JWKS entries.
    pub(crate) fn jwks(&self) -> Vec<Value> {
        self.published.iter().map(|k| k.jwk.clone()).collect()
    }
}

/// A token on its way to being signed: the header names the key (`alg`, `typ`, `kid`); any
/// member of either part may be set or removed.
pub(crate) struct TokenBuilder {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    key: Arc<JwtKey>,
}

impl TokenBuilder {
    pub(crate) fn new(key: Arc<JwtKey>, claims: Value) -> Self {
        let header = json!({"alg": alg_name(key.algorithm), "typ": "JWT", "kid": key.kid});
        Self {
            header: into_map(header),
            claims: into_map(claims),
            key,
        }
    }

    pub(crate) fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    pub(crate) fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header member (`kid`, `jku`, `jwk`, ...).
    pub(crate) fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    pub(crate) fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Signed as the issuer signs: with its key, in its algorithm.
    pub(crate) fn sign(self) -> String {
        let key = self.key.clone();
        self.signed_with(&key)
    }

    /// Signed with `key` (and its algorithm), the header left as it is: a forger's token that
    /// names the issuer's key.
    pub(crate) fn signed_with(self, key: &JwtKey) -> String {
        let input = self.signing_input();
        let signature = key.signer.sign(&input, key.algorithm);
        format!("{input}.{signature}")
    }

    /// `alg: none` and no signature.
    pub(crate) fn unsigned(self) -> String {
        let input = self.header("alg", "none").signing_input();
        format!("{input}.")
    }

    /// HS256 with `secret`: the algorithm-confusion attack when the secret is the issuer's
    /// public key.
    pub(crate) fn hs256(self, secret: &[u8]) -> String {
        let input = self.header("alg", "HS256").signing_input();
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{signature}")
    }

    fn signing_input(&self) -> String {
        let part =
            |map: &Map<String, Value>| URL_SAFE_NO_PAD.encode(serde_json::to_vec(map).unwrap());
        format!("{}.{}", part(&self.header), part(&self.claims))
    }
}

fn alg_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        other => unreachable!("the fakes sign with RS256 or ES256, not {other:?}"),
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("JWT parts are JSON objects, not {other}"),
    }
}

/// Seconds since the epoch, as JWT times count.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
