//! `/api/v1/services/{name}/deliveries`: what became of a service's webhook events.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::auth::Admin;
use super::bodies::DeliveryBody;
use super::paging::PageQuery;
use super::{ApiError, method_not_allowed};
use crate::service::Context;
use crate::service::webhooks::deliveries;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services/{name}/deliveries")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    );
}

#[utoipa::path(
    get,
    path = "/api/v1/services/{name}/deliveries",
    tag = "services",
    params(
        ("name" = String, Path, description = "The service's name"),
        ("limit" = Option<i64>, Query, description = "Items per page, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before")
    ),
    responses(
        (status = 200, description = "Its webhook deliveries, newest first: one per event and URL, never a secret", body = crate::http::openapi::schemas::DeliveryList),
        (status = 404, description = "No such service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` or `cursor` is refused", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
pub(super) async fn list(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let found = deliveries::list_page(&ctx, &name, query.page()?).await?;
    Ok(HttpResponse::Ok().json(json!({
        "deliveries": found.items.iter().map(DeliveryBody::from).collect::<Vec<_>>(),
        "next_cursor": found.next_cursor,
    })))
}
