//! `/api/v1/access-grants`: services mint short-lived, project-bound tokens for the proxy;
//! administrators list them; either ends one.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Admin, Caller, ServiceBearer};
use super::fields::Fields;
use super::paging::PageQuery;
use super::{ApiError, method_not_allowed, timestamp};
use crate::domain::ProjectPath;
use crate::service::Context;
use crate::service::access_grants::{self, AccessGrant, GrantForm, GrantOwner, GrantQuery};
use crate::service::audit::ADMIN_TOKEN;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/access-grants")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/access-grants/{id}")
            .route(web::delete().to(end))
            .default_service(web::to(method_not_allowed)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/access-grants",
    tag = "access-grants",
    request_body = crate::http::openapi::schemas::AccessGrantRequest,
    responses(
        (status = 201, description = "The grant with its `lgp_` token, shown this once", body = crate::http::openapi::schemas::AccessGrantCreated),
        (status = 403, description = "Outside the service's policy, or no connection covers it", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::BodyRefusals,
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("service_token" = []))
)]
async fn create(
    caller: ServiceBearer,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::of(
        body.into_inner(),
        &["instance", "subject", "projects", "access", "ttl"],
    )?;
    let form = GrantForm {
        instance: fields.text("instance"),
        subject: fields.text("subject"),
        projects: fields.words("projects"),
        access: fields.text("access"),
        ttl: fields.integer("ttl"),
    };
    fields.finish()?;
    let (grant, token) = access_grants::create(&ctx, &caller.0, form).await?;
    let base = ctx.public_base();
    let mut answer = grant_body(&grant);
    answer["token"] = json!(token.expose_secret());
    answer["git"] = json!({
        "url_prefix": format!("{base}/git/{}/", grant.instance),
        "username": "labgate",
    });
    answer["api"] = json!({ "url": format!("{base}/gitlab/{}/api/v4", grant.instance) });
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    instance: Option<String>,
    subject: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/access-grants",
    tag = "access-grants",
    params(("instance" = Option<String>, Query), ("subject" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "Items per page, 1 to 1000 (default 100)"), ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before")),
    responses(
        (status = 200, description = "Live grants matching the filters, newest first", body = crate::http::openapi::schemas::AccessGrantList),
        (status = 422, description = "`limit` or `cursor` is refused", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn list(
    _: Admin,
    ctx: web::Data<Context>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let Filter {
        instance,
        subject,
        limit,
        cursor,
    } = filter.into_inner();
    let page = PageQuery { limit, cursor }.page()?;
    let query = GrantQuery {
        instance,
        subject,
        page: Some(page),
    };
    let found = access_grants::list(&ctx, query).await?;
    Ok(HttpResponse::Ok().json(json!({
        "access_grants": found.items.iter().map(grant_body).collect::<Vec<_>>(),
        "next_cursor": found.next_cursor,
    })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/access-grants/{id}",
    tag = "access-grants",
    params(("id" = String, Path, description = "The grant's id")),
    responses(
        (status = 204, description = "Ended at once, in every process"),
        (status = 404, description = "No such grant (or not the service's own)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []), ("service_token" = []))
)]
async fn end(
    caller: Caller,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let by = match &caller {
        Caller::Admin => GrantOwner::Admin(ADMIN_TOKEN),
        Caller::Service(service, binding) => GrantOwner::Service(service, binding),
    };
    access_grants::end(&ctx, by, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn grant_body(grant: &AccessGrant) -> Value {
    json!({
        "id": grant.id,
        "service": grant.service,
        "instance": grant.instance,
        "subject": grant.subject,
        "projects": grant.projects.iter().map(ProjectPath::as_str).collect::<Vec<_>>(),
        "access": grant.access.as_str(),
        "created_at": timestamp(grant.created_at),
        "expires_at": timestamp(grant.expires_at),
    })
}
