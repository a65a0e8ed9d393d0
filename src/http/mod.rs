//! The HTTP edge: routes, request and response shapes, the one `ApiError`, authentication.
//! Handlers parse, call one use case, and render; they hold no rules of their own.

mod access_grants;
mod admin;
mod audit;
mod auth;
mod bodies;
mod connect;
mod connections;
mod credentials;
mod deliveries;
mod error;
mod fields;
mod health;
mod instances;
mod json_body;
mod keys;
mod openapi;
mod pages;
mod paging;
mod proxy;
mod request_metrics;
mod request_span;
mod scopes;
mod service_token;
mod services;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

pub use error::ApiError;
pub use request_metrics::time_answers;
pub use request_span::{RequestSpan, echo_request_id};

/// Request bodies larger than this are refused with 413 before they are parsed.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|error, _| ApiError::from_json_error(error).into()),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    // actix tries routes in order, and a route with a `{segment}` costs a regex match:
    // the hot routes (handouts, then the proxy) come first.
    .service(
        web::scope("/api/v1")
            .configure(credentials::routes)
            .service(
                web::resource("/service-token")
                    .route(web::post().to(service_token::grant))
                    .default_service(web::to(method_not_allowed)),
            )
            .configure(access_grants::routes)
            .service(
                web::resource("/openapi.json")
                    .route(web::get().to(openapi::document))
                    .default_service(web::to(method_not_allowed)),
            )
            .configure(instances::routes)
            .configure(services::routes)
            .configure(deliveries::routes)
            .configure(connect::api_routes)
            .configure(connections::routes)
            .configure(audit::routes)
            .configure(keys::routes),
    )
    .configure(proxy::routes)
    .configure(connect::browser_routes)
    .configure(admin::routes);
}

/// Answers any path that has no route.
pub async fn no_route() -> HttpResponse {
    ApiError::not_found("no_such_endpoint", "there is no endpoint at this path").error_response()
}

/// Answers a known path asked with a method it does not serve.
pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let detail = format!(
        "{} is not supported at {}",
        request.method(),
        request.path()
    );
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail).error_response()
}

/// Timestamps in responses: RFC 3339, UTC, whole seconds.
fn timestamp(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
