//! `POST /api/v1/service-token`: the client credentials grant (RFC 6749 §4.4) and token
//! exchange (RFC 8693), answered in OAuth's own shapes (§5.1, §5.2) rather than problem+json.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;

use super::ApiError;
use crate::service::token_exchange::{self, ExchangeError};
use crate::service::{Context, ServiceError, service_token};

#[utoipa::path(
    post,
    path = "/api/v1/service-token",
    tag = "service-token",
    request_body(content = crate::http::openapi::schemas::ServiceTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A service token (HS256 JWT, at most 15 minutes; never past the subject token's expiry)", body = crate::http::openapi::schemas::ServiceToken),
        (status = 400, description = "Not a form request, an unsupported grant, or a subject token refused (`error_description` names the failed check)", body = crate::http::openapi::schemas::OAuthError),
        (status = 401, description = "Unknown client or wrong secret", body = crate::http::openapi::schemas::OAuthError),
        (status = 503, description = "The subject token's issuer cannot be reached for its keys", body = crate::http::openapi::schemas::OAuthError)
    ),
    security(("client_basic" = []), ())
)]
pub(super) async fn grant(
    req: HttpRequest,
    ctx: web::Data<Context>,
    body: web::Bytes,
) -> HttpResponse {
    let arrived = Instant::now();
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the grant as application/x-www-form-urlencoded",
        );
    }
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(repeated) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{repeated} is sent more than once"),
            );
        }
    };
    match params.get("grant_type") {
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
        Some("client_credentials") => client_credentials(&req, &ctx).await,
        Some(TOKEN_EXCHANGE) => token_exchange(&ctx, &params, arrived).await,
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type must be client_credentials or {TOKEN_EXCHANGE}"),
        ),
    }
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The form's parameters; RFC 6749 §3.2 forbids sending one twice.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(body) {
            if params.iter().any(|(seen, _)| *seen == key) {
                return Err(key.into_owned());
            }
            params.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self(params))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// RFC 6749 §4.4: the client authenticates with its ID and secret.
async fn client_credentials(req: &HttpRequest, ctx: &Context) -> HttpResponse {
    let Some((client_id, client_secret)) = basic_credentials(req) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authenticate with HTTP Basic: base64(client_id:client_secret)",
        );
    };
    match service_token::issue(ctx, &client_id, &client_secret).await {
        Ok(token) => issued(&json!({
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
        })),
        Err(ServiceError::Unauthenticated(_)) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id or wrong client_secret",
        ),
        Err(other) => ApiError::from(other).error_response(),
    }
}

/// RFC 8693: a workload's signed token, for a service that trusts the workload's identity. The
/// client is public (its client ID names the service); the subject token is the proof.
async fn token_exchange(ctx: &Context, params: &Params, arrived: Instant) -> HttpResponse {
    let refuse =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description);
    let Some(client_id) = params.get("client_id") else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required: the client ID of the service to act as",
        );
    };
    let Some(subject_token) = params.get("subject_token") else {
        return refuse("subject_token: is required (the workload's JWT)");
    };
    if params.get("subject_token_type") != Some(JWT_TOKEN_TYPE) {
        return refuse(&format!("subject_token_type: must be {JWT_TOKEN_TYPE}"));
    }
    if let Some(wanted) = params.get("requested_token_type")
        && wanted != ACCESS_TOKEN_TYPE
    {
        return refuse(&format!(
            "requested_token_type: only {ACCESS_TOKEN_TYPE} is issued"
        ));
    }
    match token_exchange::exchange(ctx, client_id, subject_token, arrived).await {
        Ok(token) => issued(&json!({
            "access_token": token.access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
        })),
        Err(ExchangeError::UnknownClient) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no service has this client_id",
        ),
        Err(ExchangeError::Refused { check, why, .. }) => refuse(&format!("{check}: {why}")),
        Err(ExchangeError::IssuerUnavailable(_)) => {
            let mut answer = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the subject token's issuer could not be reached for its keys; try again shortly",
            );
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("10"));
            answer
        }
        Err(ExchangeError::Service(other)) => ApiError::from(other).error_response(),
    }
}

/// A token answer: never cached (RFC 6749 §5.1).
fn issued(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(body)
}

/// `Authorization: Basic`, each part form-urlencoded first as RFC 6749 §2.3.1 asks.
fn basic_credentials(req: &HttpRequest) -> Option<(String, SecretString)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), SecretString::from(unescape(secret)))).filter(|(id, _)| !id.is_empty())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((WWW_AUTHENTICATE, "Basic realm=\"labgate\""));
    }
    response.json(json!({"error": error, "error_description": description}))
}
