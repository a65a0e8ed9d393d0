//! The fake GitLab's OpenID configuration, and the ways a badly set-up installation gets it wrong.

use actix_web::HttpResponse;
use serde_json::json;

use super::Shared;

/// How the discovery document deviates from a well-configured GitLab, for the failure tests.
#[derive(Clone, Default)]
pub(crate) enum Discovery {
    #[default]
    Correct,
    /// GitLab's `external_url` names another issuer than the URL it is reached at.
    Issuer(String),
    /// A reverse proxy answers an HTML page instead.
    Html,
    /// Discovery redirects elsewhere, as a moved installation would.
    Redirect(String),
    /// An old or crippled provider without PKCE S256.
    WithoutS256,
    /// A discovery document that sends the token endpoint to another host.
    ForeignTokenEndpoint(String),
}

pub(super) async fn openid_configuration(state: Shared) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.seen.discovery_requests += 1;
    let base = &state.issuer;
    let mode = &state.discovery;
    let issuer = match mode {
        Discovery::Issuer(other) => other.clone(),
        _ => base.clone(),
    };
    let pkce = match mode {
        Discovery::WithoutS256 => json!(["plain"]),
        _ => json!(["plain", "S256"]),
    };
    match mode {
        Discovery::Html => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body("<!DOCTYPE html><html><body>Sign in</body></html>"),
        Discovery::Redirect(to) => HttpResponse::Found().insert_header(("Location", to.as_str())).finish(),
        _ => HttpResponse::Ok().json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": match mode {
                Discovery::ForeignTokenEndpoint(url) => url.clone(),
                _ => format!("{base}/oauth/token"),
            },
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/discovery/keys"),
            "scopes_supported": ["api", "read_api", "read_user", "read_repository", "write_repository",
                                 "openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "password", "client_credentials",
                                      "device_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claim_types_supported": ["normal"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname",
                                 "preferred_username", "email", "email_verified", "website", "profile",
                                 "picture", "groups", "groups_direct"],
            "code_challenge_methods_supported": pkce,
        })),
    }
}
