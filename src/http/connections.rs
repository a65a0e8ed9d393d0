//! `/api/v1/connections`: what labgate holds, for administrators, and access tokens given to
//! hold (by an administrator, or a service for its subjects). No answer holds token material.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Admin, Caller};
use super::fields::Fields;
use super::paging::PageQuery;
use super::{ApiError, method_not_allowed, timestamp};
use crate::service::access_token_connections::{self, AccessTokenForm, Giver};
use crate::service::audit::ADMIN_TOKEN;
use crate::service::connections::{self, ConnectionQuery, ConnectionView};
use crate::service::{Context, revocation};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/connections")
            .route(web::get().to(list))
            .route(web::post().to(add_access_token))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/connections/{id}")
            .route(web::delete().to(revoke))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/connections/{id}/refreshes")
            .route(web::get().to(refreshes))
            .default_service(web::to(method_not_allowed)),
    );
}

/// Holds a GitLab access token as a connection, once GitLab has said what it is.
#[utoipa::path(
    post,
    path = "/api/v1/connections",
    tag = "connections",
    request_body = crate::http::openapi::schemas::AccessTokenConnectionRequest,
    responses(
        (status = 201, description = "The connection (`kind: access_token`), never the token", body = crate::http::openapi::schemas::Connection),
        (status = 403, description = "The instance or the token's scopes are outside the service's policy, or the subject is not the one the service token is bound to", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance or service", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused, or GitLab refuses the token (`token_rejected`): nothing stored", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "GitLab could not be asked about the token", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::BodyRefusals,
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []), ("service_token" = []))
)]
async fn add_access_token(
    caller: Caller,
    ctx: web::Data<Context>,
    request: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::of(
        request.into_inner(),
        &["service", "instance", "subject", "access_token"],
    )?;
    let form = AccessTokenForm {
        service: fields.text("service"),
        instance: fields.text("instance"),
        subject: fields.text("subject"),
        access_token: fields.text("access_token").map(SecretString::from),
    };
    fields.finish()?;
    let giver = match &caller {
        Caller::Admin => Giver::Admin { actor: ADMIN_TOKEN },
        Caller::Service(service, binding) => Giver::Service(service, binding),
    };
    let connection = access_token_connections::add(&ctx, giver, form).await?;
    Ok(HttpResponse::Created().json(body(&connection)))
}

/// The connection's rotation ledger: its last refresh attempts and how each ended.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{id}/refreshes",
    tag = "connections",
    params(("id" = String, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "The rotation ledger: the last refresh attempts, newest first", body = crate::http::openapi::schemas::RefreshList),
        (status = 404, description = "No such connection", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn refreshes(
    _: Admin,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let attempts = connections::refresh_history(&ctx, &id).await?;
    let listed: Vec<_> = attempts
        .iter()
        .map(|a| {
            json!({
                "started_at": timestamp(a.started_at),
                "finished_at": timestamp(a.finished_at),
                "outcome": a.outcome,
                "gitlab_request_id": a.gitlab_request_id,
                "process": a.process,
                "detail": a.detail,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "refreshes": listed })))
}

/// Revokes at GitLab; the connection stays, `revoked`, for the record.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{id}",
    tag = "connections",
    params(("id" = String, Path, description = "The connection's id")),
    responses(
        (status = 204, description = "Revoked at GitLab; kept as `revoked` for the record"),
        (status = 404, description = "No such connection", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn revoke(
    _: Admin,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revocation::revoke(&ctx, &id, ADMIN_TOKEN).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct Filter {
    service: Option<String>,
    instance: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/connections",
    tag = "connections",
    params(("service" = Option<String>, Query), ("instance" = Option<String>, Query), ("subject" = Option<String>, Query), ("status" = Option<String>, Query, description = "active, reauthorization_required or revoked"), ("limit" = Option<i64>, Query, description = "Items per page, 1 to 1000 (default 100)"), ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before")),
    responses(
        (status = 200, description = "Connections matching the filters, never token material", body = crate::http::openapi::schemas::ConnectionList),
        (status = 422, description = "A filter, `limit` or `cursor` is refused", body = crate::http::error::Problem, content_type = "application/problem+json"),
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
        service,
        instance,
        subject,
        status,
        limit,
        cursor,
    } = filter.into_inner();
    let page = PageQuery { limit, cursor }.page()?;
    let query = ConnectionQuery {
        service,
        instance,
        subject,
        status,
        page: Some(page),
    };
    let found = connections::list(&ctx, query).await?;
    Ok(HttpResponse::Ok().json(json!({
        "connections": found.items.iter().map(body).collect::<Vec<_>>(),
        "next_cursor": found.next_cursor,
    })))
}

fn body(connection: &ConnectionView) -> serde_json::Value {
    json!({
        "id": connection.id,
        "service": connection.service,
        "instance": connection.instance,
        "subject": connection.subject,
        "kind": connection.kind.as_str(),
        "scopes": connection.scopes.iter().collect::<Vec<_>>(),
        "status": connection.status.as_str(),
        "status_reason": connection.status_reason,
        "gitlab": {"user_id": connection.gitlab_user_id, "username": connection.gitlab_username},
        "expires_at": timestamp(connection.expires_at),
        "rotation_impossible": connection.rotation_impossible,
        "created_at": timestamp(connection.created_at),
        "updated_at": timestamp(connection.updated_at),
        "refreshed_at": connection.refreshed_at.map(timestamp),
    })
}
