//! `/api/v1/services`: the admin API for internal consumers.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::Admin;
use super::fields::Fields;
use super::{ApiError, method_not_allowed, timestamp};
use crate::domain::ReturnOrigin;
use crate::service::Context;
use crate::service::principal::Service;
use crate::service::services::{self, ServiceForm};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}")
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/rotate-secret")
            .route(web::post().to(rotate_secret))
            .default_service(web::to(method_not_allowed)),
    );
}

async fn create(
    _: Admin,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::of(
        body.into_inner(),
        &[
            "name",
            "instances",
            "scopes",
            "return_origins",
            "projects",
            "max_access",
        ],
    )?;
    let form = ServiceForm {
        name: fields.text("name"),
        instances: fields.words("instances"),
        scopes: fields.words("scopes"),
        return_origins: fields.words("return_origins"),
        projects: fields.words("projects"),
        max_access: fields.text("max_access"),
    };
    fields.finish()?;
    let (service, secret) = services::create(&ctx, form).await?;
    Ok(with_secret(HttpResponse::Created(), &service, &secret))
}

async fn list(_: Admin, ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let all = services::list(&ctx).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "services": all.iter().map(ServiceBody::from).collect::<Vec<_>>() })))
}

async fn delete(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    services::delete(&ctx, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate_secret(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (service, secret) = services::rotate_secret(&ctx, &name).await?;
    Ok(with_secret(HttpResponse::Ok(), &service, &secret))
}

/// The one answer that carries a client secret: shown once, never cached.
fn with_secret(
    mut response: actix_web::HttpResponseBuilder,
    service: &Service,
    secret: &SecretString,
) -> HttpResponse {
    let mut body = serde_json::to_value(ServiceBody::from(service)).unwrap_or_default();
    body["client_secret"] = json!(secret.expose_secret());
    response
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body)
}

#[derive(Serialize)]
struct ServiceBody<'a> {
    name: &'a str,
    client_id: &'a str,
    instances: Vec<String>,
    scopes: Vec<&'a str>,
    return_origins: Vec<&'a str>,
    projects: Vec<String>,
    max_access: &'static str,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a Service> for ServiceBody<'a> {
    fn from(service: &'a Service) -> Self {
        Self {
            name: service.name.as_str(),
            client_id: &service.client_id,
            instances: service
                .instances
                .to_string()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            scopes: service.scopes.iter().collect(),
            return_origins: service
                .return_origins
                .iter()
                .map(ReturnOrigin::as_str)
                .collect(),
            projects: service.projects.as_strings(),
            max_access: service.max_access.as_str(),
            created_at: timestamp(service.created_at),
            updated_at: timestamp(service.updated_at),
        }
    }
}
