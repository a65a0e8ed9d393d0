//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every `/api/v1` operation, generated
//! from the handlers' own annotations and the types they answer with.

pub(super) mod refusals;
pub(super) mod schemas;

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::services;
use super::{
    access_grants, audit, connect, connections, credentials, deliveries, instances, keys,
    service_token,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "labgate",
        description = "Self-hosted OAuth broker for GitLab installations: the admin and service API."
    ),
    paths(
        service_token::grant,
        instances::create,
        instances::list,
        instances::show,
        instances::change,
        instances::remove,
        instances::check,
        services::create,
        services::list,
        services::show,
        services::change,
        services::delete,
        services::rotate_secret,
        deliveries::list,
        connect::create,
        connections::list,
        connections::add_access_token,
        connections::revoke,
        connections::refreshes,
        credentials::fetch,
        access_grants::create,
        access_grants::list,
        access_grants::end,
        audit::list,
        keys::rotate,
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// How callers authenticate: the admin token, a service token from `/api/v1/service-token`,
/// and a service's client ID and secret, which only the token endpoint takes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let mut service = Http::new(HttpAuthScheme::Bearer);
        service.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("service_token", SecurityScheme::Http(service));
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The document, public like the API's shape itself: it holds no secret.
pub(super) async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
