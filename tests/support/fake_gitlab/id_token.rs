//! The fake GitLab's ID tokens: RS256, 120 s, signed with the OIDC key of the two it publishes
//! in its JWKS (GitLab's CI job key is the other), spoiled on demand for the attack tests.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use super::user::user_claims;
use super::{SUB_PATH, State, now};

/// How an issued ID token is spoiled, for the attack tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum IdTokenFault {
    #[default]
    None,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
    Expired,
    AlgNone,
    BadSignature,
    /// The issuer without GitLab's sub-path: what a client that drops the path would expect.
    IssuerWithoutSubPath,
    IssuerWithTrailingSlash,
}

pub(super) async fn keys() -> HttpResponse {
    let keys = signing_keys();
    // GitLab publishes the CI job JWT key beside the OIDC key: clients must pick by `kid`.
    HttpResponse::Ok().json(json!({"keys": [keys.ci.jwk(), keys.oidc.jwk()]}))
}

pub(super) fn id_token(state: &State, nonce: Option<&str>) -> String {
    let fault = state.behaviour.id_token_fault;
    let issued = if fault == IdTokenFault::Expired {
        now() - 600
    } else {
        now()
    };
    let mut claims = user_claims();
    if state.behaviour.id_token_without_username {
        let claims = claims.as_object_mut().unwrap();
        claims.remove("preferred_username");
        claims.remove("nickname");
    }
    claims["iss"] = json!(match fault {
        IdTokenFault::WrongIssuer => "https://gitlab.evil.example".to_owned(),
        IdTokenFault::IssuerWithoutSubPath => state.issuer.trim_end_matches(SUB_PATH).to_owned(),
        IdTokenFault::IssuerWithTrailingSlash => format!("{}/", state.issuer),
        _ => state.issuer.clone(),
    });
    claims["aud"] = json!(if fault == IdTokenFault::WrongAudience {
        "another-application".to_owned()
    } else {
        state.app.client_id.clone()
    });
    claims["iat"] = json!(issued);
    claims["auth_time"] = json!(issued);
    claims["exp"] = json!(issued + 120);
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(if fault == IdTokenFault::WrongNonce {
            "another-nonce"
        } else {
            nonce
        });
    }
    let keys = signing_keys();
    match fault {
        IdTokenFault::AlgNone => {
            let header = URL_SAFE_NO_PAD
                .encode(json!({"alg": "none", "typ": "JWT", "kid": keys.oidc.kid}).to_string());
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
        }
        IdTokenFault::BadSignature => {
            // Signed by the CI key but claiming the OIDC key's kid.
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(keys.oidc.kid.clone());
            jsonwebtoken::encode(&header, &claims, &keys.ci.encoding).unwrap()
        }
        _ => {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(keys.oidc.kid.clone());
            jsonwebtoken::encode(&header, &claims, &keys.oidc.encoding).unwrap()
        }
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "kid": self.kid, "e": self.e, "n": self.n, "use": "sig", "alg": "RS256"})
    }
}

pub(super) struct SigningKeys {
    oidc: SigningKey,
    ci: SigningKey,
}

/// Made once per test run: RSA key generation is the slowest thing the fake does.
pub(super) fn signing_keys() -> &'static SigningKeys {
    static KEYS: OnceLock<SigningKeys> = OnceLock::new();
    KEYS.get_or_init(|| SigningKeys {
        oidc: SigningKey::generate("oidc-key-1"),
        ci: SigningKey::generate("ci-jwt-key-1"),
    })
}
