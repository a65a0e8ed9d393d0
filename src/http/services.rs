//! `/api/v1/services`: the admin API for internal consumers.

use std::collections::HashMap;

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::auth::Admin;
use super::bodies::ServiceBody;
use super::fields::Fields;
use super::paging::PageQuery;
use super::{ApiError, method_not_allowed};
use crate::domain::WebhookSecrets;
use crate::service::Context;
use crate::service::audit::ADMIN_TOKEN;
use crate::service::principal::Service;
use crate::service::services::{self, ServiceForm};
use crate::service::webhooks;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}")
            .route(web::get().to(show))
            .route(web::patch().to(change))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/rotate-secret")
            .route(web::post().to(rotate_secret))
            .default_service(web::to(method_not_allowed)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/services",
    tag = "services",
    request_body = crate::http::openapi::schemas::ServiceRequest,
    responses(
        (status = 201, description = "Created; its client secret is shown this once", body = crate::http::openapi::schemas::ServiceWithSecret),
        (status = 409, description = "A service of that name exists", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::BodyRefusals,
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn create(
    _: Admin,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let form = service_form(body.into_inner())?;
    let (service, secret) = services::create(&ctx, form, ADMIN_TOKEN).await?;
    answer(&ctx, HttpResponse::Created(), &service, Some(&secret)).await
}

#[utoipa::path(
    get,
    path = "/api/v1/services",
    tag = "services",
    params(("limit" = Option<i64>, Query, description = "Items per page, 1 to 1000 (default 100)"), ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before")),
    responses(
        (status = 200, description = "Services by name, never a secret", body = crate::http::openapi::schemas::ServiceList),
        (status = 422, description = "`limit` or `cursor` is refused", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn list(
    _: Admin,
    ctx: web::Data<Context>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let found = services::list_page(&ctx, query.page()?).await?;
    let ids = found.items.iter().map(|s| s.id.clone()).collect();
    let urls = webhooks::urls_of(&ctx, ids).await?;
    let body = |service| ServiceBody::new(service, hooks_of(&urls, service));
    Ok(HttpResponse::Ok().json(json!({
        "services": found.items.iter().map(body).collect::<Vec<_>>(),
        "next_cursor": found.next_cursor,
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name")),
    responses(
        (status = 200, description = "The service and its policy, never its secret", body = ServiceBody),
        (status = 404, description = "No such service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn show(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = services::get(&ctx, &name).await?;
    answer(&ctx, HttpResponse::Ok(), &service, None).await
}

#[utoipa::path(
    patch,
    path = "/api/v1/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name")),
    request_body(content = crate::http::openapi::schemas::ServiceRequest, description = "Any policy fields; the name cannot change"),
    responses(
        (status = 200, description = "Changed: narrowing applies at the next request in every process, and live access grants outside the new policy end", body = ServiceBody),
        (status = 404, description = "No such service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused: `errors` names each", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn change(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let service =
        services::change(&ctx, &name, service_form(body.into_inner())?, ADMIN_TOKEN).await?;
    answer(&ctx, HttpResponse::Ok(), &service, None).await
}

/// Reads a service's fields; what each must be is the service layer's to say.
fn service_form(body: Value) -> Result<ServiceForm, ApiError> {
    let mut fields = Fields::of(
        body,
        &[
            "name",
            "instances",
            "scopes",
            "return_origins",
            "projects",
            "max_access",
            "identities",
            "webhooks",
        ],
    )?;
    let form = ServiceForm {
        name: fields.text("name"),
        instances: fields.words("instances"),
        scopes: fields.words("scopes"),
        return_origins: fields.words("return_origins"),
        projects: fields.words("projects"),
        max_access: fields.text("max_access"),
        identities: fields.value("identities"),
        webhooks: fields.value("webhooks"),
        // Each webhook with its secret: the list given replaces the stored one.
        webhook_secrets: WebhookSecrets::Required,
    };
    fields.finish()?;
    Ok(form)
}

#[utoipa::path(
    delete,
    path = "/api/v1/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name")),
    responses(
        (status = 204, description = "Its connections revoked at GitLab, then it and they removed"),
        (status = 404, description = "No such service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn delete(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    services::delete(&ctx, &name, ADMIN_TOKEN).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{name}/rotate-secret",
    tag = "services",
    params(("name" = String, Path, description = "The service's name")),
    responses(
        (status = 200, description = "A new client secret, shown this once; tokens issued before are refused", body = crate::http::openapi::schemas::ServiceWithSecret),
        (status = 404, description = "No such service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn rotate_secret(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (service, secret) = services::rotate_secret(&ctx, &name, ADMIN_TOKEN).await?;
    answer(&ctx, HttpResponse::Ok(), &service, Some(&secret)).await
}

/// A service with its webhooks' URLs; with a client secret (shown once, never cached) after a
/// creation or rotation.
async fn answer(
    ctx: &Context,
    mut response: actix_web::HttpResponseBuilder,
    service: &Service,
    secret: Option<&SecretString>,
) -> Result<HttpResponse, ApiError> {
    let urls = webhooks::urls_of(ctx, vec![service.id.clone()]).await?;
    let body = ServiceBody::new(service, hooks_of(&urls, service));
    let Some(secret) = secret else {
        return Ok(response.json(body));
    };
    let mut body = serde_json::to_value(body).unwrap_or_default();
    body["client_secret"] = json!(secret.expose_secret());
    Ok(response
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body))
}

fn hooks_of<'a>(urls: &'a HashMap<String, Vec<String>>, service: &Service) -> &'a [String] {
    urls.get(&service.id).map_or(&[], Vec::as_slice)
}
