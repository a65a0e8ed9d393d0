//! `POST /api/v1/service-token`: the client credentials grant (RFC 6749 §4.4), answered in
//! OAuth's own shapes (§5.1, §5.2) rather than problem+json.

use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE,
};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;

use super::ApiError;
use crate::service::{Context, ServiceError, service_token};

#[utoipa::path(
    post,
    path = "/api/v1/service-token",
    tag = "service-token",
    request_body(content = crate::http::openapi::schemas::ServiceTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A service token (EdDSA JWT, 15 minutes)", body = crate::http::openapi::schemas::ServiceToken),
        (status = 400, description = "Not a client-credentials form request", body = crate::http::openapi::schemas::OAuthError),
        (status = 401, description = "Unknown client or wrong secret", body = crate::http::openapi::schemas::OAuthError)
    ),
    security(("client_basic" = []))
)]
pub(super) async fn grant(
    req: HttpRequest,
    ctx: web::Data<Context>,
    body: web::Bytes,
) -> HttpResponse {
    let Some((client_id, client_secret)) = basic_credentials(&req) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authenticate with HTTP Basic: base64(client_id:client_secret)",
        );
    };
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send grant_type=client_credentials as application/x-www-form-urlencoded",
        );
    }
    let grant_type = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "grant_type")
        .map(|(_, v)| v);
    match grant_type.as_deref() {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            );
        }
    }
    match service_token::issue(&ctx, &client_id, &client_secret).await {
        Ok(token) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"))
            .json(json!({"access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in})),
        Err(ServiceError::Unauthenticated(_)) => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client_id or wrong client_secret")
        }
        Err(other) => ApiError::from(other).error_response(),
    }
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
