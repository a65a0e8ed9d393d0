//! `GET /api/v1/audit?since=&limit=`: audit events, newest first.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

use super::auth::Admin;
use super::paging::PageQuery;
use super::{ApiError, method_not_allowed, timestamp};
use crate::service::{Context, FieldError, ServiceError, audit};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/audit")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed)),
    );
}

#[derive(Deserialize)]
struct Query {
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(("since" = Option<String>, Query, description = "RFC 3339"), ("limit" = Option<i64>, Query, description = "Items per page, 1 to 1000 (default 100)"), ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before")),
    responses(
        (status = 200, description = "Events, newest first", body = crate::http::openapi::schemas::AuditList),
        (status = 422, description = "`since`, `limit` or `cursor` is refused", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn list(
    _: Admin,
    ctx: web::Data<Context>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.naive_utc())
                .map_err(|_| {
                    ServiceError::Invalid(vec![FieldError::new(
                        "since",
                        "must be an RFC 3339 time, e.g. 2026-11-22T08:00:00Z",
                    )])
                })?,
        ),
    };
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .page()?;
    let events = audit::list(&ctx, since, page).await?;
    let body: Vec<_> = events
        .items
        .iter()
        .map(|event| {
            json!({
                "id": event.id,
                "at": timestamp(event.at),
                "kind": event.kind,
                "actor": event.actor,
                "instance": event.instance,
                "subject": event.subject,
                "connection_id": event.connection_id,
                "scopes": event.scopes.as_deref().map(|s| s.split_whitespace().collect::<Vec<_>>()),
                "detail": event.detail,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": body, "next_cursor": events.next_cursor })))
}
