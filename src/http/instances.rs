//! `/api/v1/instances`: the admin API for registered GitLab instances.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::auth::{Admin, Caller};
use super::bodies::{CheckBody, InstanceBody};
use super::fields::Fields;
use super::{ApiError, timestamp};
use crate::service::Context;
use crate::service::audit::ADMIN_TOKEN;
use crate::service::instances::{self, InstanceForm};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/instances")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}")
            .route(web::get().to(show))
            .route(web::patch().to(change))
            .route(web::delete().to(remove))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}/check")
            .route(web::post().to(check))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/instances",
    tag = "instances",
    request_body = crate::http::openapi::schemas::InstanceRequest,
    responses(
        (status = 201, description = "Registered after every check step passed", body = InstanceBody),
        (status = 409, description = "An instance of that name exists", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused, or a check step failed: `steps` is the report (code = the failing step's code)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn create(
    _: Admin,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let instance =
        instances::register(&ctx, instance_form(body.into_inner())?, ADMIN_TOKEN).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/instances/{}", instance.name)))
        .json(InstanceBody::from(&instance)))
}

/// Administrators see every instance in full; a service sees the ones it may use.
#[utoipa::path(
    get,
    path = "/api/v1/instances",
    tag = "instances",
    responses(
        (status = 200, description = "In full for an administrator; name and base URL of those a service may use", body = crate::http::openapi::schemas::InstanceList),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []), ("service_token" = []))
)]
async fn list(caller: Caller, ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let all = instances::list(&ctx).await?;
    let body = match caller {
        Caller::Admin => {
            json!({ "instances": all.iter().map(InstanceBody::from).collect::<Vec<_>>() })
        }
        Caller::Service(service, _) => json!({
            "instances": all
                .iter()
                .filter(|instance| service.instances.allows(&instance.name))
                .map(|instance| json!({"name": instance.name.as_str(), "base_url": instance.base_url.as_str()}))
                .collect::<Vec<_>>()
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/instances/{name}",
    tag = "instances",
    params(("name" = String, Path, description = "The instance's name")),
    responses(
        (status = 200, description = "The instance, never its secret", body = InstanceBody),
        (status = 404, description = "No such instance", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn show(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(InstanceBody::from(&instances::get(&ctx, &name).await?)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/instances/{name}",
    tag = "instances",
    request_body = crate::http::openapi::schemas::InstanceRequest,
    params(("name" = String, Path, description = "The instance's name")),
    responses(
        (status = 200, description = "Saved after the changed instance passed every check step", body = InstanceBody),
        (status = 404, description = "No such instance", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed by someone else meanwhile", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused, or a check step failed: `steps` is the report", body = crate::http::error::Problem, content_type = "application/problem+json"),
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
    let instance =
        instances::change(&ctx, &name, instance_form(body.into_inner())?, ADMIN_TOKEN).await?;
    Ok(HttpResponse::Ok().json(InstanceBody::from(&instance)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/instances/{name}",
    tag = "instances",
    params(("name" = String, Path, description = "The instance's name")),
    responses(
        (status = 204, description = "Its connections revoked at GitLab, then it and they removed"),
        (status = 404, description = "No such instance", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn remove(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    instances::remove(&ctx, &name, ADMIN_TOKEN).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/instances/{name}/check",
    tag = "instances",
    params(("name" = String, Path, description = "The instance's name")),
    responses(
        (status = 200, description = "The report, passed or failed, as recorded", body = CheckBody),
        (status = 404, description = "No such instance", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn check(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (report, instance) = instances::check(&ctx, &name).await?;
    Ok(HttpResponse::Ok().json(CheckBody {
        name: instance.name.as_str(),
        ok: report.failure().is_none(),
        checked_at: timestamp(instance.last_check.at),
        steps: &report.steps,
    }))
}

/// Reads an instance's fields; what each must be is the service's to say.
fn instance_form(body: Value) -> Result<InstanceForm, ApiError> {
    let mut fields = Fields::of(
        body,
        &[
            "name",
            "base_url",
            "client_id",
            "client_secret",
            "ca_pem",
            "scopes",
        ],
    )?;
    let form = InstanceForm {
        name: fields.text("name"),
        base_url: fields.text("base_url"),
        client_id: fields.text("client_id"),
        client_secret: fields.text("client_secret").map(SecretString::from),
        ca_pem: fields.nullable_text("ca_pem"),
        scopes: fields.words("scopes"),
    };
    fields.finish()?;
    Ok(form)
}
