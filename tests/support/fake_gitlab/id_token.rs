//! The fake GitLab's ID tokens: RS256, 120 s, signed with the OIDC key of the two it publishes
//! in its JWKS (GitLab's CI job key is the other), spoiled on demand for the attack tests.

use std::sync::{Arc, OnceLock};

use actix_web::HttpResponse;
use serde_json::json;

use super::super::jwt::{JwtKey, TokenBuilder};
use super::user::user_claims;
use super::{SUB_PATH, Shared, State, now};

/// The `kid` of the CI/CD job key GitLab starts with.
const CI_KEY_ID: &str = "ci-jwt-key-1";

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

pub(super) async fn keys(state: Shared) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.seen.jwks_requests += 1;
    // GitLab publishes the CI job JWT key beside the OIDC key: clients must pick by `kid`.
    let mut keys = state.ci_keys.jwks();
    keys.push(signing_keys().oidc.jwk().clone());
    HttpResponse::Ok().json(json!({"keys": keys}))
}

pub(super) fn id_token(state: &State, nonce: Option<&str>) -> String {
    let fault = state.behaviour.id_token_fault;
    let issued = if fault == IdTokenFault::Expired {
        now() - 600
    } else {
        now()
    };
    let mut claims = user_claims();
    claims["preferred_username"] = json!(state.behaviour.username);
    claims["nickname"] = json!(state.behaviour.username);
    claims["groups_direct"] = json!(state.behaviour.groups_direct);
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
    let token = TokenBuilder::new(keys.oidc.clone(), claims);
    match fault {
        IdTokenFault::AlgNone => token.unsigned(),
        // Signed by the CI key but claiming the OIDC key's kid.
        IdTokenFault::BadSignature => token.signed_with(&keys.ci),
        _ => token.sign(),
    }
}

pub(super) struct SigningKeys {
    oidc: Arc<JwtKey>,
    /// The CI key every fake starts with; `rotate_ci_key` replaces it in one fake only.
    pub(super) ci: Arc<JwtKey>,
}

/// Made once per test run: RSA key generation is the slowest thing the fake does.
pub(super) fn signing_keys() -> &'static SigningKeys {
    static KEYS: OnceLock<SigningKeys> = OnceLock::new();
    KEYS.get_or_init(|| SigningKeys {
        oidc: Arc::new(JwtKey::rsa("oidc-key-1")),
        ci: Arc::new(JwtKey::rsa(CI_KEY_ID)),
    })
}
